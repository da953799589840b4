// One job: status, progress, metrics, the report's figures, plots and downloads.

import { getJob, listArtifacts } from "./api.js";
import { BlobUrls, downloadList, isPlot, isReport, loadReport, plotFigure } from "./artifacts.js";
import { clear, fmtTime, h } from "./dom.js";
import { POLL_MS } from "./jobs.js";
import { figureCards, figuresFromMetrics, figuresFromReport, metricsTable } from "./report.js";
import { TERMINAL, badge, jobName, progressBar } from "./widgets.js";

function summary(job) {
  const dl = (label, value) => [h("dt", {}, label), h("dd", {}, value)];
  return h(
    "div",
    { class: "summary" },
    h("h1", { class: "job-name" }, jobName(job)),
    h("dl", {},
      dl("Status", badge(job.status)),
      dl("Stage", h("span", { class: "job-stage" }, job.stage ?? "—")),
      dl("Progress", progressBar(job.progress)),
      dl("Id", h("code", {}, job.id)),
      dl("Created", fmtTime(job.created_at)),
      dl("Finished", fmtTime(job.finished_at))),
    job.error
      ? h("p", { class: "error job-error" }, `${job.error.code}: ${job.error.message}`)
      : null,
  );
}

export function showJob(view, id, onError) {
  const urls = new BlobUrls();
  const top = h("div", {}, h("p", {}, "Loading…"));
  const metrics = h("section", { id: "metrics" });
  const figures = h("section", { id: "figures" });
  const plots = h("section", { id: "plots" });
  const downloads = h("section", { id: "downloads" });
  clear(view).append(h("p", {}, h("a", { href: "#/" }, "← all jobs")),
    top, figures, plots, metrics, downloads);
  let stopped = false;
  let timer = null;
  let artifactKey = null;

  const renderArtifacts = async (job, artifacts) => {
    const key = artifacts.map((a) => a.id).join(",");
    if (key === artifactKey) return;
    urls.revokeAll();
    const report = artifacts.find(isReport);
    const f = report
      ? figuresFromReport(await loadReport(report))
      : figuresFromMetrics(job.metrics);
    if (stopped) return;
    clear(figures).append(h("h2", {}, "Report"), figureCards(f));
    const pngs = artifacts.filter(isPlot);
    clear(plots).append(h("h2", {}, "Plots"),
      pngs.length ? h("div", { class: "plots" }, pngs.map((a) => plotFigure(a, urls, onError)))
        : h("p", { class: "empty" }, "No plots yet."));
    clear(downloads).append(h("h2", {}, "Downloads"), downloadList(artifacts, onError));
    artifactKey = key;
  };

  const tick = async () => {
    try {
      const job = await getJob(id);
      if (stopped) return;
      clear(top).append(summary(job));
      clear(metrics).append(h("h2", {}, "Metrics"), metricsTable(job.metrics));
      await renderArtifacts(job, await listArtifacts(id));
      if (TERMINAL.has(job.status) || stopped) return;
    } catch (err) {
      if (stopped) return;
      onError(err);
      if (err.status === 404 || err.status === 401) return;
    }
    timer = setTimeout(tick, POLL_MS);
  };
  tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
    urls.revokeAll();
  };
}
