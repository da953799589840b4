// The top of a job's page: its name, labels, model and data set, status and times, the cancel
// button while it is queued or running, and what a failed or canceled job will not have.

import { cancelJob } from "./api.js";
import { fmtTime, h } from "./dom.js";
import { fmtDuration } from "./units.js";
import {
  TERMINAL, badge, jobName, labelChips, modelAndData, progressBar, timeLeft,
} from "./widgets.js";

function duration(job) {
  const start = Date.parse(job.started_at);
  if (Number.isNaN(start)) return "—";
  const end = job.finished_at ? Date.parse(job.finished_at) : Date.now();
  const text = fmtDuration(Math.max(0, (end - start) / 1000));
  return job.finished_at ? text : `${text} so far`;
}

// Asks first; then a queued job is canceled at once, a running one stops at its next step.
function cancelControl(job, onCanceled, onError) {
  if (TERMINAL.has(job.status)) return null;
  if (job.cancel_requested) {
    return h("p", { class: "cancel-requested" },
      "Cancel requested: the job stops at its next step.");
  }
  const button = h("button", { type: "button", class: "cancel" }, "Cancel job");
  button.addEventListener("click", async () => {
    const what = job.status === "queued" ? "It has not started: it is canceled at once."
      : "It stops at its next step, and what it made so far is deleted.";
    if (!window.confirm(`Cancel job ${jobName(job)}? ${what}`)) return;
    button.disabled = true;
    button.textContent = "Canceling…";
    try {
      onCanceled(await cancelJob(job.id));
    } catch (err) {
      onError(err);
      onCanceled(null); // read the job again: it may have finished meanwhile (409)
    }
  });
  return button;
}

// A finished job that did not succeed: it will have no report or plots; a failed one's error.
export function finalState(job) {
  if (job.status !== "failed" && job.status !== "canceled") {
    return job.error
      ? h("p", { class: "error job-error" }, `${job.error.code}: ${job.error.message}`) : null;
  }
  const said = job.status === "failed" ? "This job failed" : "This job was canceled";
  return h(
    "div",
    { class: `final-state final-${job.status}`, "data-final": job.status, role: "status" },
    h("p", { class: "final-text" }, `${said}: there will be no report or plots.`),
    job.error ? h("p", { class: "error job-error" }, `${job.error.code}: ${job.error.message}`)
      : null,
  );
}

export function summary(job, onCanceled, onError) {
  const dl = (label, value) => [h("dt", {}, label), h("dd", {}, value)];
  const eta = timeLeft(job);
  return h(
    "div",
    { class: "summary" },
    h("div", { class: "title" }, h("h1", { class: "job-name" }, jobName(job)),
      cancelControl(job, onCanceled, onError)),
    labelChips(job.labels),
    h("dl", {},
      dl("Model · data set", modelAndData(job.spec)),
      dl("Status", badge(job.status)),
      dl("Stage", h("span", { class: "job-stage" }, job.stage ?? "—")),
      dl("Progress", progressBar(job.progress)),
      eta ? dl("Time left", eta) : null,
      dl("Duration", h("span", { class: "job-duration" }, duration(job))),
      dl("Id", h("code", {}, job.id)),
      dl("Created", fmtTime(job.created_at)),
      dl("Finished", fmtTime(job.finished_at))),
    finalState(job),
  );
}
