// Metric names and formats, and the primary metric of an eval block or of a job's metrics.
// Reports and jobs from before there were several tasks name no primary metric: it is accuracy.

export const DEFAULT_METRIC = "accuracy";

// percent: a fraction shown as a percentage; otherwise a number to 3 decimals.
export const METRICS = {
  accuracy: { label: "Accuracy", percent: true },
  macro_f1: { label: "Macro-F1", percent: true },
  entity_f1: { label: "Entity F1", percent: true },
  entity_precision: { label: "Entity precision", percent: true },
  entity_recall: { label: "Entity recall", percent: true },
  precision: { label: "Precision", percent: true },
  recall: { label: "Recall", percent: true },
  token_accuracy: { label: "Token accuracy", percent: true },
  f1: { label: "F1", percent: true },
  exact_match: { label: "Exact match", percent: true },
  spearman: { label: "Spearman", percent: false },
  pearson: { label: "Pearson", percent: false },
  mse: { label: "MSE", percent: false },
};

export const metricFormat = (name) =>
  Object.hasOwn(METRICS, name) ? METRICS[name] : { label: String(name), percent: false };

export function formatMetric(name, value) {
  if (typeof value !== "number" || !Number.isFinite(value)) return "—";
  return metricFormat(name).percent ? `${(value * 100).toFixed(1)}%` : value.toFixed(3);
}

// A {name, value} entry: a block's `primary_metric`, a job's `dense_primary_metric`...
export const isNamedMetric = (v) =>
  v !== null && typeof v === "object" && typeof v.name === "string";

// {name, label, value, formatted} of a block's `primary_metric`, else of its `accuracy`.
export function primaryMetric(block) {
  const b = block && typeof block === "object" ? block : {};
  const named = isNamedMetric(b.primary_metric) ? b.primary_metric : null;
  const name = named ? named.name : DEFAULT_METRIC;
  const value = named ? named.value : b[DEFAULT_METRIC];
  return { name, label: metricFormat(name).label, value, formatted: formatMetric(name, value) };
}

// A job's metrics name the compressed model's primary metric `primary_metric` and the other
// models' `<prefix>primary_metric` (prefix "dense_", "int8_", "onnx_"...); older jobs have
// `accuracy`, `dense_accuracy`, `int8_accuracy`...
export function jobMetric(metrics, prefix = "") {
  const m = metrics || {};
  return primaryMetric({
    primary_metric: m[`${prefix}primary_metric`],
    accuracy: m[`${prefix}accuracy`],
  });
}
