// The job list: polled every 2 s while shown.

import { listJobs } from "./api.js";
import { clear, fmtTime, h } from "./dom.js";
import { jobMetric } from "./metrics.js";
import {
  badge, jobHref, jobName, labelChips, modelAndData, progressBar, timeLeft,
} from "./widgets.js";

export const POLL_MS = 2000;

// The compressed model's primary metric by name ("F1 81.0%"), once the job has one; a failed
// job's error code.
function result(job) {
  const m = jobMetric(job.metrics);
  if (typeof m.value === "number") {
    return h("td", { class: "job-metric", "data-metric": m.name }, `${m.label} ${m.formatted}`);
  }
  if (job.error) {
    return h("td", { class: "job-metric" }, h("span", { class: "error" }, job.error.code));
  }
  return h("td", { class: "job-metric" }, "—");
}

function row(job) {
  return h(
    "tr",
    { "data-job-id": job.id, "data-status": job.status },
    h("td", { class: "job-name" }, h("a", { href: jobHref(job.id) }, jobName(job)),
      labelChips(job.labels)),
    h("td", { class: "job-model" }, modelAndData(job.spec)),
    h("td", {}, badge(job.status),
      job.cancel_requested && job.status === "running"
        ? h("span", { class: "muted cancel-note" }, " canceling") : null),
    h("td", { class: "job-stage" }, job.stage ?? "—"),
    h("td", { class: "job-progress" }, progressBar(job.progress), timeLeft(job)),
    result(job),
    h("td", {}, fmtTime(job.created_at)),
  );
}

function table(jobs) {
  if (jobs.length === 0) return h("p", { class: "empty" }, "No jobs yet.");
  const head = ["Job", "Model · data set", "Status", "Stage", "Progress", "Result", "Created"]
    .map((t) => h("th", {}, t));
  return h(
    "table",
    { class: "jobs" },
    h("thead", {}, h("tr", {}, head)),
    h("tbody", {}, jobs.map(row)),
  );
}

export function showJobs(view, onError) {
  const body = h("div", { id: "jobs-body" }, h("p", {}, "Loading…"));
  const status = h("p", { class: "updated", id: "jobs-updated" });
  clear(view).append(h("h1", {}, "Jobs"), status, body);
  let stopped = false;
  let timer = null;
  const tick = async () => {
    try {
      const page = await listJobs();
      if (stopped) return;
      clear(body).append(table(page.items));
      status.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    } catch (err) {
      if (!stopped) onError(err);
    }
    if (!stopped) timer = setTimeout(tick, POLL_MS);
  };
  tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
