// Pieces shared by the job list and the job page.

import { h, fmtPercent } from "./dom.js";

export const TERMINAL = new Set(["succeeded", "failed", "canceled"]);

export function jobName(job) {
  const spec = job.spec || {};
  if (typeof job.name === "string" && job.name) return job.name;
  if (typeof spec.name === "string" && spec.name) return spec.name;
  const dataset = spec.dataset && spec.dataset.name ? spec.dataset.name : "?";
  return `${spec.model ?? "?"} · ${dataset}`;
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
    h("span", { class: "progress-text" }, fmtPercent(value)),
  );
}

export function jobHref(id) {
  return `#/jobs/${encodeURIComponent(id)}`;
}
