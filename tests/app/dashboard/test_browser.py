"""The dashboard in headless Chromium against a real API server process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.app.dashboard.pages import login, no_script_errors, row
from tests.app.dashboard.seed import MODEL_BYTES, XSS_ERROR, XSS_NAME, Seeded
from tests.client.server import Server

expect = pytest.importorskip(
    "playwright.sync_api", reason="playwright not installed: pip install -e '.[dev]'"
).expect


def test_job_list_statuses_and_live_progress(page: Any, server: Server, seeded: Seeded) -> None:
    login(page, server)
    for job_id, status in ((seeded.queued, "queued"), (seeded.running, "running"),
                           (seeded.succeeded, "succeeded"), (seeded.evil, "failed")):  # fmt: skip
        expect(row(page, job_id).locator(".badge")).to_have_text(status)
    running = row(page, seeded.running)
    expect(running.locator(".progress-text")).to_have_text("30%")
    expect(running.locator(".job-stage")).to_have_text("train")
    server.finish_job(seeded.running, "running", stage="export", progress=0.75)
    expect(running.locator(".progress-text")).to_have_text("75%", timeout=8_000)
    expect(running.locator(".job-stage")).to_have_text("export")
    assert running.locator("progress").evaluate("p => p.value") == 0.75
    page.reload()  # the key is kept for the tab
    expect(row(page, seeded.queued)).to_be_visible()
    assert page.locator("#login").is_hidden()
    no_script_errors(page)


def test_job_page_figures_plot_and_download(
    page: Any, server: Server, seeded: Seeded, tmp_path: Path
) -> None:
    login(page, server, hash_=f"#/jobs/{seeded.succeeded}")
    expect(page.locator(".summary .badge")).to_have_text("succeeded")
    figures = page.locator("#figures")
    expect(figures.locator('[data-figure="accuracy"] .figure-value')).to_have_text("91.2%")
    expect(figures.locator('[data-figure="accuracy"] .figure-note')).to_contain_text("93.5%")
    expect(figures.locator('[data-figure="sparsity"] .figure-value')).to_have_text("50%")
    expect(figures.locator('[data-figure="size"] .figure-value')).to_have_text("43.21 MB")
    expect(figures.locator('[data-figure="latency"] .figure-value')).to_have_text("6.25 ms")
    expect(page.locator('#metrics tr[data-metric="accuracy"] td')).to_have_text("91.2%")
    page.wait_for_function(
        "() => { const i = document.querySelector('#plots img');"
        " return i && i.complete && i.naturalWidth > 0; }"
    )
    assert page.locator("#plots img").get_attribute("src").startswith("blob:")
    link = page.locator(f'li[data-artifact-id="{seeded.model_artifact}"] a.download')
    with page.expect_download() as info:
        link.click()
    download = info.value
    assert download.suggested_filename == "model.tar.gz"
    target = tmp_path / "model.tar.gz"
    download.save_as(target)
    assert target.read_bytes() == MODEL_BYTES
    no_script_errors(page)


def test_job_list_names_each_jobs_primary_metric(page: Any, server: Server, seeded: Seeded) -> None:
    login(page, server)
    for job_id, metric, text in (
        (seeded.succeeded, "accuracy", "Accuracy 91.2%"),  # a job from before the tasks
        (seeded.qa, "f1", "F1 81.3%"),
        (seeded.regression, "spearman", "Spearman 0.871"),
        (seeded.ner, "entity_f1", "Entity F1 84.7%"),
    ):
        cell = row(page, job_id).locator(".job-metric")
        expect(cell).to_have_text(text)
        assert cell.get_attribute("data-metric") == metric
    expect(row(page, seeded.queued).locator(".job-metric")).to_have_text("—")
    no_script_errors(page)


def test_job_pages_show_the_primary_metric_by_name(
    page: Any, server: Server, seeded: Seeded
) -> None:
    login(page, server, hash_=f"#/jobs/{seeded.qa}")  # from report.json
    card = page.locator('#figures [data-figure="f1"]')
    expect(card.locator(".figure-label")).to_have_text("F1")
    expect(card.locator(".figure-value")).to_have_text("81.3%")
    expect(card.locator(".figure-note")).to_have_text("dense 85.0%, int8 79.0%")
    assert page.locator('#figures [data-figure="accuracy"]').count() == 0
    expect(page.locator('#metrics tr[data-metric="primary_metric"] td')).to_have_text("F1 81.3%")
    expect(page.locator('#metrics tr[data-metric="exact_match"] td')).to_have_text("72.0%")
    page.goto(f"{server.url}/dashboard/#/jobs/{seeded.regression}")  # from the job's metrics
    card = page.locator('#figures [data-figure="spearman"]')
    expect(card.locator(".figure-label")).to_have_text("Spearman")
    expect(card.locator(".figure-value")).to_have_text("0.871")
    expect(card.locator(".figure-note")).to_have_text("dense 0.880")
    page.goto(f"{server.url}/dashboard/#/jobs/{seeded.ner}")
    card = page.locator('#figures [data-figure="entity_f1"]')
    expect(card.locator(".figure-label")).to_have_text("Entity F1")
    expect(card.locator(".figure-note")).to_have_text("dense 90.0%, int8 83.0%")
    no_script_errors(page)


def test_metric_helpers_read_every_task_and_old_blocks(page: Any, server: Server) -> None:
    login(page, server)
    got = page.evaluate(
        """async () => {
          const m = await import("/dashboard/static/metrics.js");
          const blocks = [
            {accuracy: 0.9123, macro_f1: 0.9},
            {primary_metric: {name: "accuracy", value: 0.5}, accuracy: 0.5},
            {primary_metric: {name: "spearman", value: 0.87149}, mse: 0.5},
            {primary_metric: {name: "entity_f1", value: 0.8471}},
            {primary_metric: {name: "f1", value: 0.81}, exact_match: 0.72},
            {primary_metric: {name: "bleu", value: 0.25}},
            null,
          ];
          return [
            ...blocks.map((b) => { const p = m.primaryMetric(b); return [p.label, p.formatted]; }),
            [m.metricFormat("exact_match").label, m.formatMetric("exact_match", 0.72)],
            [m.metricFormat("mse").label, m.formatMetric("mse", 0.51264)],
            [m.jobMetric({dense_accuracy: 0.93}, "dense_").formatted,
             m.jobMetric({int8_primary_metric: {name: "f1", value: 0.7}}, "int8_").formatted],
          ];
        }"""
    )
    assert got == [
        ["Accuracy", "91.2%"], ["Accuracy", "50.0%"], ["Spearman", "0.871"],
        ["Entity F1", "84.7%"], ["F1", "81.0%"], ["bleu", "0.250"], ["Accuracy", "—"],
        ["Exact match", "72.0%"], ["MSE", "0.513"], ["93.0%", "70.0%"],
    ]  # fmt: skip


def test_user_strings_are_shown_as_text(page: Any, server: Server, seeded: Seeded) -> None:
    login(page, server)
    expect(row(page, seeded.evil).locator(".job-name a")).to_have_text(XSS_NAME)
    expect(row(page, seeded.evil).locator(".label-chip")).to_have_text(f"xss={XSS_NAME}")
    row(page, seeded.evil).locator(".job-name a").click()
    expect(page.locator("h1.job-name")).to_have_text(XSS_NAME)
    expect(page.locator(".job-error")).to_have_text(f"bad_input: {XSS_ERROR}")
    expect(page.locator(".summary .label-chip")).to_have_text(f"xss={XSS_NAME}")
    assert page.locator("main script, main img[src=x], main b").count() == 0
    no_script_errors(page)


def test_a_wrong_key_asks_again(page: Any, server: Server) -> None:
    login(page, server, key="sk_wrong")
    expect(page.locator("#login-error")).to_have_text("That key was not accepted.")
    assert page.evaluate("sessionStorage.getItem('scalpel.apiKey')") is None
