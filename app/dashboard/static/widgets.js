// Pieces shared by the job list and the job page.

import { getDataset, getModel } from "./api.js";
import { fmtPercent, fmtTime, h } from "./dom.js";
import { fmtTimeLeft } from "./units.js";

export const TERMINAL = new Set(["succeeded", "failed", "canceled"]);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const shortId = (id) => String(id ?? "?").slice(0, 8);

// The job's name; a job without one is its short id.
export function jobName(job) {
  if (typeof job.name === "string" && job.name) return job.name;
  const spec = job.spec || {};
  if (typeof spec.name === "string" && spec.name) return spec.name; // jobs named in the spec
  return shortId(job.id);
}

export function labelChips(labels) {
  const entries = Object.entries(labels || {});
  if (entries.length === 0) return null;
  return h("ul", { class: "labels" }, entries.map(([k, v]) =>
    h("li", { class: "label-chip", "data-label": k, title: `label ${k}` }, `${k}=${v}`)));
}

// Uploaded models and data sets by id: their names, once read (a failed read: the short id).
const names = new Map();

function resourceName(kind, id) {
  const el = h("span", { class: `${kind}-name`, title: String(id) });
  if (typeof id !== "string" || !UUID.test(id)) {
    el.textContent = id ?? "?"; // a built-in, by its name
    return el;
  }
  const key = `${kind}:${id}`;
  if (!names.has(key)) {
    const read = kind === "model" ? getModel(id) : getDataset(id);
    names.set(key, read.then((r) => r.name, () => shortId(id)).then((name) => {
      names.set(key, name);
      return name;
    }));
  }
  const known = names.get(key);
  if (typeof known === "string") {
    el.textContent = known;
  } else {
    el.textContent = shortId(id);
    known.then((name) => { el.textContent = name; });
  }
  return el;
}

// "minilm-l6 · tweets", an uploaded model or data set by its name.
export function modelAndData(spec) {
  const s = spec || {};
  return h("span", { class: "model-data" }, resourceName("model", s.model), " · ",
    resourceName("dataset", s.dataset ? s.dataset.name : undefined));
}

export function badge(status) {
  const known = ["queued", "running", "succeeded", "failed", "canceled"];
  const cls = known.includes(status) ? status : "unknown";
  return h("span", { class: `badge badge-${cls}`, "data-status": status }, status);
}

export function progressBar(progress) {
  const value = typeof progress === "number" ? Math.min(Math.max(progress, 0), 1) : 0;
  return h(
    "span",
    { class: "progress" },
    h("progress", { max: 1, value, "aria-label": "progress" }),
    h("span", { class: "progress-text" }, fmtPercent(value, 0)),
  );
}

// "about 4 min left": a running job's training time left (its eta_seconds, until eta_at);
// null while it is not running or not yet measured.
export function timeLeft(job) {
  const text = job.status === "running" ? fmtTimeLeft(job.eta_seconds) : "";
  if (!text) return null;
  return h("span", {
    class: "job-eta",
    title: `Training done about ${fmtTime(job.eta_at)}; evaluation and export come after.`,
  }, text);
}

export function jobHref(id) {
  return `#/jobs/${encodeURIComponent(id)}`;
}
