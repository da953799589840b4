// A job's artifacts: plots as images and downloads, both fetched with the key (blob URLs).

import { getBlob, getJSON } from "./api.js";
import { fmtNumber, h } from "./dom.js";

export const isPlot = (a) => a.media_type === "image/png" || a.kind.startsWith("plot_");
export const isReport = (a) => a.kind === "report" || a.filename === "report.json";

export class BlobUrls {
  constructor() {
    this.urls = [];
  }
  make(blob) {
    const url = URL.createObjectURL(blob);
    this.urls.push(url);
    return url;
  }
  revokeAll() {
    this.urls.forEach((u) => URL.revokeObjectURL(u));
    this.urls = [];
  }
}

export function plotFigure(artifact, urls, onError) {
  const img = h("img", { alt: artifact.filename, "data-artifact-id": artifact.id });
  getBlob(artifact.download_url, "image/png")
    .then((blob) => { img.src = urls.make(blob); })
    .catch(onError);
  return h("figure", { class: "plot" }, img, h("figcaption", {}, artifact.filename));
}

async function download(artifact, onError) {
  try {
    const blob = await getBlob(artifact.download_url);
    const url = URL.createObjectURL(blob);
    const a = h("a", { href: url, download: artifact.filename, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (err) {
    onError(err);
  }
}

export function downloadList(artifacts, onError) {
  if (artifacts.length === 0) return h("p", { class: "empty" }, "No artifacts yet.");
  return h("ul", { class: "downloads" }, artifacts.map((a) =>
    h(
      "li",
      { "data-artifact-id": a.id, "data-kind": a.kind },
      h("a", {
        href: a.download_url,
        class: "download",
        onclick: (e) => { e.preventDefault(); download(a, onError); },
      }, a.filename),
      " ",
      h("span", { class: "muted" }, `${a.kind}, ${fmtNumber(a.size_bytes / 1024, 1)} KiB`),
      " ",
      h("code", { class: "url", title: `sha256 ${a.sha256}` }, a.download_url),
    )));
}

export const loadReport = (artifact) => getJSON(artifact.download_url);
