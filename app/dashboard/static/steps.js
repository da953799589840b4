// The primary dev metric after each pruning step, from the job's `metrics` events
// ({step, sparsity, dev_<metric>}), read page by page after the last event seen.

import { listEvents } from "./api.js";
import { fmtPercent, h, svg } from "./dom.js";
import { formatMetric, metricFormat } from "./metrics.js";

const MAX_PAGES = 20; // per poll; the rest comes on the next one

// {step, sparsity, name, value} of a pruning step's metrics event, else null.
export function stepOf(event) {
  const d = event && event.data;
  if (event.kind !== "metrics" || !d || typeof d.step !== "number") return null;
  const key = Object.keys(d).find((k) => k.startsWith("dev_") && typeof d[k] === "number");
  if (!key) return null;
  return { step: d.step, sparsity: d.sparsity, name: key.slice(4), value: d[key] };
}

export class StepFeed {
  constructor(jobId) {
    this.jobId = jobId;
    this.after = 0;
    this.byKey = new Map(); // a resumed job repeats a step: the later one counts
  }

  // True when new steps came in.
  async poll() {
    let changed = false;
    for (let pages = 0; pages < MAX_PAGES; pages += 1) {
      const page = await listEvents(this.jobId, this.after);
      for (const event of page.items) {
        this.after = Math.max(this.after, event.id);
        const s = stepOf(event);
        if (s) {
          this.byKey.set(`${s.step}:${s.sparsity}`, s);
          changed = true;
        }
      }
      if (page.next_after === null || page.next_after === undefined) break;
    }
    return changed;
  }

  get steps() {
    return [...this.byKey.values()].sort((a, b) => a.step - b.step || a.sparsity - b.sparsity);
  }
}

const W = 520;
const H = 150;
const PAD = { left: 48, right: 12, top: 10, bottom: 26 };

// The metric against the training step: a line through every step so far.
function chart(steps, name) {
  const xs = steps.map((s) => s.step);
  const ys = steps.map((s) => s.value);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (y1 - y0 < 1e-9) [y0, y1] = [y0 - 0.01, y1 + 0.01];
  const px = (x) => PAD.left + (x1 === x0 ? 0.5 : (x - x0) / (x1 - x0)) * (W - PAD.left - PAD.right);
  const py = (y) => H - PAD.bottom - ((y - y0) / (y1 - y0)) * (H - PAD.top - PAD.bottom);
  const points = steps.map((s) => `${px(s.step).toFixed(1)},${py(s.value).toFixed(1)}`);
  const label = (x, y, text, anchor = "end") =>
    svg("text", { x, y, "text-anchor": anchor, class: "axis-label" }, text);
  return svg(
    "svg",
    { class: "step-chart", viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img",
      "aria-label": `${metricFormat(name).label} after each pruning step` },
    svg("line", { x1: PAD.left, y1: H - PAD.bottom, x2: W - PAD.right, y2: H - PAD.bottom,
      class: "axis" }),
    svg("line", { x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: H - PAD.bottom, class: "axis" }),
    label(PAD.left - 6, py(y1) + 4, formatMetric(name, y1)),
    label(PAD.left - 6, py(y0) + 4, formatMetric(name, y0)),
    label(px(x0), H - 8, `step ${x0}`, "start"),
    x1 !== x0 ? label(px(x1), H - 8, `step ${x1}`) : null,
    svg("polyline", { points: points.join(" "), class: "step-line" }),
    steps.map((s) => svg("circle", { cx: px(s.step).toFixed(1), cy: py(s.value).toFixed(1), r: 3,
      class: "step-point" }, svg("title", {}, `step ${s.step}: ${formatMetric(name, s.value)}`))),
  );
}

export function stepsPanel(steps, live) {
  if (steps.length === 0) {
    return h("p", { class: "empty" }, live
      ? "The metric after each pruning step shows here as the job prunes."
      : "No pruning steps were recorded.");
  }
  const name = steps[steps.length - 1].name;
  const fmt = metricFormat(name);
  return h(
    "div",
    { class: "steps", "data-metric": name },
    live ? h("p", { class: "updated" }, "Live: a row comes in after each pruning step.") : null,
    chart(steps, name),
    h("table", { class: "step-table" },
      h("thead", {}, h("tr", {}, h("th", {}, "Step"), h("th", {}, "Sparsity"),
        h("th", {}, `Dev ${fmt.label}`))),
      h("tbody", {}, steps.map((s) => h("tr", { "data-step": s.step },
        h("td", {}, String(s.step)), h("td", {}, fmtPercent(s.sparsity)),
        h("td", { class: "step-value" }, formatMetric(s.name, s.value)))))),
  );
}
