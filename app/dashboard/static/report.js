// The report's headline figures (from report.json, else the job's metrics); the first card
// is the task's primary metric (its `data-figure` is the metric's name).

import { fmtPercent, h } from "./dom.js";
import { jobMetric, primaryMetric } from "./metrics.js";
import { fmtDuration, fmtMB, fmtMs, formatByKey } from "./units.js";

const dig = (obj, ...path) =>
  path.reduce((o, k) => (o && typeof o === "object" ? o[k] : undefined), obj);

export function figuresFromReport(report) {
  const c = report.compressed || {};
  const d = report.dense || {};
  return {
    metric: primaryMetric(c),
    dense_metric: primaryMetric(d),
    int8_metric: report.int8 ? primaryMetric(report.int8) : null,
    sparsity: dig(c, "sparsity", "overall"),
    target_sparsity: dig(report, "pruning", "target_sparsity"),
    size_mb: dig(c, "file_size", "raw_mb"),
    gzip_mb: dig(c, "file_size", "gzip_mb"),
    dense_size_mb: dig(d, "file_size", "raw_mb"),
    latency_b1_ms: dig(c, "latency_cpu_ms", "batch_1_ms"),
    latency_b32_ms: dig(c, "latency_cpu_ms", "batch_32_ms"),
    dense_latency_b1_ms: dig(d, "latency_cpu_ms", "batch_1_ms"),
  };
}

export function figuresFromMetrics(m) {
  return {
    metric: jobMetric(m),
    dense_metric: jobMetric(m, "dense_"),
    int8_metric: jobMetric(m, "int8_"),
    sparsity: m.sparsity,
    size_mb: m.model_size_mb,
    gzip_mb: m.model_gzip_mb,
    latency_b1_ms: m.latency_b1_ms,
    latency_b32_ms: m.latency_b32_ms,
    dense_latency_b1_ms: m.dense_latency_b1_ms,
  };
}

function card(key, label, value, note) {
  return h(
    "div",
    { class: "figure", "data-figure": key },
    h("div", { class: "figure-label" }, label),
    h("div", { class: "figure-value" }, value),
    note ? h("div", { class: "figure-note" }, note) : null,
  );
}

export function figureCards(f) {
  const ms = fmtMs;
  const mb = fmtMB;
  return h(
    "div",
    { class: "figures" },
    card(f.metric.name, f.metric.label, f.metric.formatted, `dense ${f.dense_metric.formatted}` +
      (f.int8_metric && typeof f.int8_metric.value === "number"
        ? `, int8 ${f.int8_metric.formatted}` : "")),
    card("sparsity", "Sparsity", fmtPercent(f.sparsity),
      typeof f.target_sparsity === "number" ? `target ${fmtPercent(f.target_sparsity)}` : null),
    card("size", "Size", mb(f.size_mb), `gzip ${mb(f.gzip_mb)}` +
      (typeof f.dense_size_mb === "number" ? `, dense ${mb(f.dense_size_mb)}` : "")),
    card("latency", "Latency (CPU, batch 1)", ms(f.latency_b1_ms),
      `batch 32 ${ms(f.latency_b32_ms)}, dense ${ms(f.dense_latency_b1_ms)}`),
  );
}

// Shown in their own table (stageTimes), not among the metrics.
const TIMING_KEYS = new Set(["stage_seconds", "total_seconds"]);

export function metricsTable(metrics) {
  const entries = Object.entries(metrics || {}).filter(([k]) => !TIMING_KEYS.has(k));
  if (entries.length === 0) return h("p", { class: "empty" }, "No metrics yet.");
  return h(
    "table",
    { class: "metrics" },
    h("tbody", {}, entries.map(([k, v]) =>
      h("tr", { "data-metric": k }, h("th", {}, k), h("td", {}, formatByKey(k, v))))),
  );
}

// Each stage's wall time in run order (the job's `stage_seconds`), and the total.
export function stageTimes(metrics) {
  const m = metrics || {};
  const stages = m.stage_seconds && typeof m.stage_seconds === "object"
    ? Object.entries(m.stage_seconds).filter(([, v]) => typeof v === "number") : [];
  if (stages.length === 0) return null;
  const total = typeof m.total_seconds === "number" ? m.total_seconds
    : stages.reduce((sum, [, v]) => sum + v, 0);
  return h(
    "table",
    { class: "stage-times" },
    h("tbody", {},
      stages.map(([stage, secs]) => h("tr", { "data-stage": stage }, h("th", {}, stage),
        h("td", { class: "duration", title: `${secs} s` }, fmtDuration(secs)))),
      h("tr", { "data-stage": "total", class: "total" }, h("th", {}, "total"),
        h("td", { class: "duration", title: `${total} s` }, fmtDuration(total)))),
  );
}
