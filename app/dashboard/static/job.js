// One job: its summary (with cancel), the metric after each pruning step while it runs, the
// report's figures, plots, stage times, metrics, its resolved spec and downloads.

import { getJob, listArtifacts } from "./api.js";
import { BlobUrls, downloadList, isPlot, isReport, loadReport, plotFigure } from "./artifacts.js";
import { clear, h } from "./dom.js";
import { POLL_MS } from "./jobs.js";
import {
  figureCards, figuresFromMetrics, figuresFromReport, metricsTable, stageTimes,
} from "./report.js";
import { specTree } from "./spec.js";
import { StepFeed, stepsPanel } from "./steps.js";
import { summary } from "./summary.js";
import { TERMINAL } from "./widgets.js";

const section = (id, title) => h("section", { id, "data-title": title, hidden: true });

function fill(el, title, ...content) {
  clear(el).append(h("h2", {}, title), ...content);
  el.hidden = false;
}

const ENDED = { failed: "the job failed", canceled: "the job was canceled" };

export function showJob(view, id, onError) {
  const urls = new BlobUrls();
  const feed = new StepFeed(id);
  const top = h("div", {}, h("p", {}, "Loading…"));
  const steps = section("steps");
  const figures = section("figures");
  const plots = section("plots");
  const timing = section("timing");
  const metrics = section("metrics");
  const spec = section("spec");
  const downloads = section("downloads");
  clear(view).append(h("p", {}, h("a", { href: "#/" }, "← all jobs")),
    top, figures, steps, plots, timing, metrics, spec, downloads);
  let stopped = false;
  let timer = null;
  let artifactKey = null;
  let busy = false;
  let again = false;
  let stepsLive = null;

  const renderArtifacts = async (job, all) => {
    const key = `${job.status}|${all.map((a) => `${a.id}:${a.expired_at ?? ""}`).join(",")}`;
    if (key === artifactKey) return;
    const artifacts = all.filter((a) => !a.expired_at); // an expired file is a 410
    const report = artifacts.find(isReport);
    const ended = ENDED[job.status];
    let cards = null;
    if (report) cards = figureCards(figuresFromReport(await loadReport(report)));
    else if (job.status === "succeeded") cards = figureCards(figuresFromMetrics(job.metrics));
    if (stopped) return;
    urls.revokeAll();
    if (cards) fill(figures, "Report", cards);
    else if (ended) figures.hidden = true; // the notice at the top says why
    else {
      fill(figures, "Report",
        h("p", { class: "empty" }, "The report shows here once the job has succeeded."));
    }
    const pngs = artifacts.filter(isPlot);
    let noPlots = "This job made no plots.";
    if (ended) noPlots = `No plots: ${ended}, so none will be made.`;
    else if (!TERMINAL.has(job.status)) noPlots = "Plots show here once the job has succeeded.";
    fill(plots, "Plots", pngs.length
      ? h("div", { class: "plots" }, pngs.map((a) => plotFigure(a, urls, onError)))
      : h("p", { class: `empty${ended ? " final" : ""}`, "data-final": ended ? job.status : null },
        noPlots));
    fill(downloads, "Downloads", downloadList(all, onError));
    artifactKey = key;
  };

  const render = (job) => {
    clear(top).append(summary(job, (canceled) => {
      if (canceled && !stopped) render(canceled);
      refresh();
    }, onError));
    const times = stageTimes(job.metrics);
    if (times) fill(timing, "Stage times", times);
    fill(metrics, "Metrics", metricsTable(job.metrics));
    if (spec.hidden) fill(spec, "Resolved spec", specTree(job.spec)); // once: keeps it as opened
  };

  // Returns true once the job has finished (nothing more to poll).
  const tick = async () => {
    const job = await getJob(id);
    if (stopped) return true;
    render(job);
    const live = !TERMINAL.has(job.status);
    const changed = await feed.poll();
    if (stopped) return true;
    if (!live && feed.steps.length === 0) steps.hidden = true; // it never pruned
    else if (changed || live !== stepsLive) {
      fill(steps, "Metric after each pruning step", stepsPanel(feed.steps, live));
    }
    stepsLive = live;
    await renderArtifacts(job, await listArtifacts(id));
    return !live;
  };

  async function refresh() {
    clearTimeout(timer);
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    let done = false;
    try {
      done = await tick();
    } catch (err) {
      if (!stopped) onError(err);
      done = err.status === 404 || err.status === 401;
    } finally {
      busy = false;
    }
    if (stopped) return;
    if (again) {
      again = false;
      refresh();
    } else if (!done) {
      timer = setTimeout(refresh, POLL_MS);
    }
  }
  refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
    urls.revokeAll();
  };
}
