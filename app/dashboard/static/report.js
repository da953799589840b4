// The report's headline figures (from report.json, else the job's metrics).

import { fmtNumber, fmtPercent, h } from "./dom.js";

const dig = (obj, ...path) =>
  path.reduce((o, k) => (o && typeof o === "object" ? o[k] : undefined), obj);

export function figuresFromReport(report) {
  const c = report.compressed || {};
  const d = report.dense || {};
  return {
    accuracy: c.accuracy,
    dense_accuracy: d.accuracy,
    int8_accuracy: dig(report, "int8", "accuracy"),
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
    accuracy: m.accuracy,
    dense_accuracy: m.dense_accuracy,
    int8_accuracy: m.int8_accuracy,
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
  const ms = (v) => (typeof v === "number" ? `${fmtNumber(v, 2)} ms` : "—");
  const mb = (v) => (typeof v === "number" ? `${fmtNumber(v, 2)} MB` : "—");
  const pct = (v) => (typeof v === "number" ? `${fmtNumber(v * 100, 1)}%` : "—");
  return h(
    "div",
    { class: "figures" },
    card("accuracy", "Accuracy", pct(f.accuracy), `dense ${pct(f.dense_accuracy)}` +
      (typeof f.int8_accuracy === "number" ? `, int8 ${pct(f.int8_accuracy)}` : "")),
    card("sparsity", "Sparsity", fmtPercent(f.sparsity),
      typeof f.target_sparsity === "number" ? `target ${fmtPercent(f.target_sparsity)}` : null),
    card("size", "Size", mb(f.size_mb), `gzip ${mb(f.gzip_mb)}` +
      (typeof f.dense_size_mb === "number" ? `, dense ${mb(f.dense_size_mb)}` : "")),
    card("latency", "Latency (CPU, batch 1)", ms(f.latency_b1_ms),
      `batch 32 ${ms(f.latency_b32_ms)}, dense ${ms(f.dense_latency_b1_ms)}`),
  );
}

export function metricsTable(metrics) {
  const entries = Object.entries(metrics || {});
  if (entries.length === 0) return h("p", { class: "empty" }, "No metrics yet.");
  const value = (v) => (v !== null && typeof v === "object" ? JSON.stringify(v) : fmtNumber(v, 4));
  return h(
    "table",
    { class: "metrics" },
    h("tbody", {}, entries.map(([k, v]) =>
      h("tr", { "data-metric": k }, h("th", {}, k),
        h("td", {}, typeof v === "string" ? v : value(v))))),
  );
}
