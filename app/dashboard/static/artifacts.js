// A job's artifacts: plots as images and downloads, both fetched with the key (blob URLs).

import { getBlob, getJSON } from "./api.js";
import { h } from "./dom.js";
import { fmtBytes } from "./units.js";

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

// What each kind of artifact is, and how to use it.
const KIND_NOTES = {
  model: "PyTorch fp32: a Hugging Face folder (from_pretrained)",
  model_onnx: "ONNX fp32: runs in ONNX Runtime alone",
  model_int8_onnx: "ONNX int8: runs in ONNX Runtime alone",
  report: "the full report (JSON)",
  report_md: "the report (Markdown)",
};
// The PyTorch int8 archive holds plain int8 tensors that only Scalpel rebuilds into a model.
export const INT8_PYTORCH_NOTE = "PyTorch int8: needs Scalpel's code to load " +
  "(worker.compression.load_int8_state_dict; its quantization.json says how). " +
  "For int8 inference elsewhere use the ONNX int8 file.";
export const RECOMMENDED_INT8 = "model_int8_onnx";

function notes(a) {
  if (a.kind === "model_int8") {
    return h("span", { class: "artifact-note needs-scalpel" }, INT8_PYTORCH_NOTE);
  }
  const note = KIND_NOTES[a.kind];
  return [
    a.kind === RECOMMENDED_INT8
      ? h("span", { class: "chip recommended", title: "the int8 artifact to deploy" },
        "recommended int8")
      : null,
    note ? h("span", { class: "artifact-note" }, note) : null,
  ];
}

export function downloadList(artifacts, onError) {
  if (artifacts.length === 0) return h("p", { class: "empty" }, "No artifacts.");
  return h("ul", { class: "downloads" }, artifacts.map((a) =>
    h(
      "li",
      { "data-artifact-id": a.id, "data-kind": a.kind },
      a.expired_at
        ? h("span", { class: "expired" }, a.filename)
        : h("a", {
          href: a.download_url,
          class: "download",
          onclick: (e) => { e.preventDefault(); download(a, onError); },
        }, a.filename),
      " ",
      h("span", { class: "muted artifact-size" },
        `${a.kind}, ${fmtBytes(a.size_bytes)}${a.expired_at ? ", expired" : ""}`),
      " ",
      notes(a),
      " ",
      h("code", { class: "url", title: `sha256 ${a.sha256}` }, a.download_url),
    )));
}

export const loadReport = (artifact) => getJSON(artifact.download_url);
