// Units, the same everywhere: ms for latency, MB for sizes (MiB, as the worker measures them),
// % for sparsity and accuracy-like metrics, "2 min 05 s" for durations.

import { fmtNumber, fmtPercent } from "./dom.js";
import { METRICS, formatMetric, isNamedMetric, metricFormat } from "./metrics.js";

const MB = 1024 * 1024;
const pad2 = (n) => String(n).padStart(2, "0");

// 0.25 -> "250 ms", 7.5 -> "7.5 s", 42 -> "42 s", 125.034 -> "2 min 05 s", 3725 -> "1 h 02 min".
export function fmtDuration(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds) || seconds < 0) return "—";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 9.95) return `${seconds.toFixed(1)} s`;
  if (seconds < 59.5) return `${Math.round(seconds)} s`;
  const total = Math.round(seconds);
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  if (hours > 0) return `${hours} h ${pad2(minutes)} min`;
  return `${minutes} min ${pad2(total % 60)} s`;
}

// A running job's eta_seconds (the training it has left): 30 -> "less than a minute left",
// 250 -> "about 4 min left", 3725 -> "about 1 h 02 min left"; "" when not known.
export function fmtTimeLeft(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds) || seconds < 0) return "";
  const minutes = Math.round(seconds / 60);
  if (minutes < 1) return "less than a minute left";
  if (minutes < 60) return `about ${minutes} min left`;
  return `about ${Math.floor(minutes / 60)} h ${pad2(minutes % 60)} min left`;
}

export const fmtMs = (v) => (typeof v === "number" ? `${fmtNumber(v, 2)} ms` : "—");

export function fmtMB(v) {
  if (typeof v !== "number" || !Number.isFinite(v)) return "—";
  return v > 0 && v < 0.01 ? "< 0.01 MB" : `${fmtNumber(v, 2)} MB`;
}

export const fmtBytes = (bytes) => fmtMB(typeof bytes === "number" ? bytes / MB : undefined);

// The metric a job metric's key names: dense_accuracy, int8_f1, onnx_int8_f1 -> accuracy, f1.
const PREFIXES = ["onnx_int8_", "onnx_", "int8_", "dense_", "dev_"];
export function baseName(key) {
  const prefix = PREFIXES.find((p) => key.startsWith(p));
  return prefix ? key.slice(prefix.length) : key;
}

const FRACTIONS = new Set(["sparsity", "agreement", "encoder_sparsity", "target_sparsity"]);

// A job metric's value, in its unit by its key (`latency_b1_ms`, `model_size_mb`...).
export function formatByKey(key, value) {
  if (isNamedMetric(value)) {
    return `${metricFormat(value.name).label} ${formatMetric(value.name, value.value)}`;
  }
  if (typeof value === "string") return value;
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (typeof value !== "number") return value === null || value === undefined ? "—"
    : JSON.stringify(value);
  const base = baseName(key);
  if (key.endsWith("_ms")) return fmtMs(value);
  if (key.endsWith("_mb")) return fmtMB(value);
  if (key.endsWith("_seconds")) return fmtDuration(value);
  if (key.includes("speedup")) return `${fmtNumber(value, 2)}x`;
  if (FRACTIONS.has(base)) return fmtPercent(value);
  if (Object.hasOwn(METRICS, base)) return formatMetric(base, value);
  if (Number.isInteger(value)) return value.toLocaleString("en-US");
  return fmtNumber(value, 4);
}
