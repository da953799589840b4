"""The dashboard's job names and labels, cancel, resolved spec, live step metrics, units,
final states and artifact notes, in headless Chromium against a real API server process."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.app.dashboard.pages import login, no_script_errors, row
from tests.app.dashboard.seed import (
    JOB_LABELS,
    JOB_NAME,
    STEPS,
    UPLOADED_DATASET_NAME,
    UPLOADED_MODEL_NAME,
    Seeded,
    add_event,
    auth,
    submit,
    train,
)
from tests.client.server import Server

expect = pytest.importorskip(
    "playwright.sync_api", reason="playwright not installed: pip install -e '.[dev]'"
).expect


def api_status(server: Server, job_id: str) -> dict[str, Any]:
    r = httpx.get(f"{server.url}/v1/jobs/{job_id}", headers=auth(server), timeout=10)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_jobs_by_name_with_labels_and_their_model_and_data_by_name(
    page: Any, server: Server, seeded: Seeded
) -> None:
    login(page, server)
    named = row(page, seeded.succeeded)
    expect(named.locator(".job-name a")).to_have_text(JOB_NAME)
    expect(named.locator(".label-chip")).to_have_text([f"{k}={v}" for k, v in JOB_LABELS.items()])
    expect(named.locator(".model-data")).to_have_text("minilm-l6 · tweets")
    expect(row(page, seeded.queued).locator(".job-name a")).to_have_text(seeded.queued[:8])
    assert row(page, seeded.queued).locator(".label-chip").count() == 0
    uploaded = row(page, seeded.uploaded)
    expect(uploaded.locator(".model-name")).to_have_text(UPLOADED_MODEL_NAME)
    expect(uploaded.locator(".dataset-name")).to_have_text(UPLOADED_DATASET_NAME)
    uploaded.locator(".job-name a").click()
    expect(page.locator("h1.job-name")).to_have_text(seeded.uploaded[:8])
    expect(page.locator(".summary .model-data")).to_have_text(
        f"{UPLOADED_MODEL_NAME} · {UPLOADED_DATASET_NAME}"
    )
    page.goto(f"{server.url}/dashboard/#/jobs/{seeded.succeeded}")
    expect(page.locator("h1.job-name")).to_have_text(JOB_NAME)
    expect(page.locator(".summary .label-chip")).to_have_count(len(JOB_LABELS))
    no_script_errors(page)


def test_cancel_a_queued_job_after_confirming(page: Any, server: Server, seeded: Seeded) -> None:
    job = submit(server, name="to cancel")
    login(page, server, hash_=f"#/jobs/{job}")
    button = page.locator("button.cancel")
    expect(button).to_be_visible()
    page.once("dialog", lambda d: d.dismiss())
    button.click()
    expect(page.locator(".summary .badge")).to_have_text("queued")
    assert api_status(server, job)["status"] == "queued"  # dismissed: nothing sent
    messages: list[str] = []

    def accept(dialog: Any) -> None:
        messages.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    button.click()
    expect(page.locator(".summary .badge")).to_have_text("canceled")
    assert "to cancel" in messages[0]
    assert api_status(server, job)["status"] == "canceled"
    expect(page.locator("button.cancel")).to_have_count(0)
    expect(page.locator('.final-state[data-final="canceled"]')).to_contain_text(
        "no report or plots"
    )
    no_script_errors(page)


def test_cancel_a_running_job_then_it_stops(page: Any, server: Server, seeded: Seeded) -> None:
    job = submit(server)
    server.finish_job(job, "running", stage="recover", progress=0.5)
    login(page, server, hash_=f"#/jobs/{job}")
    page.once("dialog", lambda d: d.accept())
    page.locator("button.cancel").click()
    expect(page.locator(".cancel-requested")).to_contain_text("stops at its next step")
    assert api_status(server, job)["cancel_requested"] is True
    expect(page.locator(".summary .badge")).to_have_text("running")
    server.finish_job(job, "canceled")  # the worker stops at its next step
    expect(page.locator(".summary .badge")).to_have_text("canceled", timeout=8_000)
    expect(page.locator(".cancel-requested")).to_have_count(0)
    expect(page.locator('#plots [data-final="canceled"]')).to_contain_text("none will be made")
    no_script_errors(page)


def test_no_cancel_on_a_finished_job(page: Any, server: Server, seeded: Seeded) -> None:
    login(page, server, hash_=f"#/jobs/{seeded.succeeded}")
    expect(page.locator(".summary .badge")).to_have_text("succeeded")
    assert page.locator("button.cancel").count() == 0


def test_the_resolved_spec_collapses(page: Any, server: Server, seeded: Seeded) -> None:
    login(page, server, hash_=f"#/jobs/{seeded.succeeded}")
    spec = page.locator("#spec")
    expect(spec.locator('[data-path="task"] .json-value')).to_have_text('"sequence_classification"')
    pruning = spec.locator('details[data-path="pruning"]')
    assert pruning.evaluate("d => d.open") is False  # nested objects start closed
    sparsity = spec.locator('[data-path="pruning.sparsity"] .json-value')
    expect(sparsity).to_be_hidden()
    pruning.locator(":scope > summary").click()
    expect(sparsity).to_have_text("0.5")  # a default filled in on submission, too:
    expect(spec.locator('[data-path="pruning.scope"] .json-value')).to_have_text('"global"')
    page.wait_for_timeout(2500)  # a poll later it is still as opened
    assert pruning.evaluate("d => d.open") is True
    no_script_errors(page)


def test_live_metric_after_each_pruning_step(page: Any, server: Server, seeded: Seeded) -> None:
    login(page, server, hash_=f"#/jobs/{seeded.running}")
    steps = page.locator("#steps")
    expect(steps.locator("th").nth(2)).to_have_text("Dev Accuracy")
    expect(steps.locator("tbody tr")).to_have_count(2)
    expect(steps.locator('tr[data-step="40"] td')).to_have_text(["40", "30%", "91.0%"])
    expect(steps.locator("svg circle")).to_have_count(2)
    add_event(server, seeded.running, "metrics", stage="recover", data=STEPS[2])
    expect(steps.locator("tbody tr")).to_have_count(3, timeout=8_000)
    expect(steps.locator('tr[data-step="80"] .step-value')).to_have_text("89.6%")
    expect(steps.locator("svg circle")).to_have_count(3)
    page.goto(f"{server.url}/dashboard/#/jobs/{seeded.succeeded}")  # a finished job keeps them
    expect(page.locator("#steps tbody tr")).to_have_count(3)
    page.goto(f"{server.url}/dashboard/#/jobs/{seeded.qa}")  # none recorded: no panel
    expect(page.locator("#figures .figure")).not_to_have_count(0)
    expect(page.locator("#steps")).to_be_hidden()
    no_script_errors(page)


def test_stage_times_and_units(page: Any, server: Server, seeded: Seeded) -> None:
    login(page, server, hash_=f"#/jobs/{seeded.succeeded}")
    timing = page.locator("#timing")
    expect(timing.locator('tr[data-stage="recover"] td')).to_have_text("2 min 05 s")
    expect(timing.locator('tr[data-stage="finetune_dense"] td')).to_have_text("1 min 02 s")
    expect(timing.locator('tr[data-stage="prune"] td')).to_have_text("410 ms")
    expect(timing.locator('tr[data-stage="load"] td')).to_have_text("3.2 s")
    expect(timing.locator('tr[data-stage="total"] td')).to_have_text("3 min 19 s")
    expect(page.locator(".summary .job-duration")).to_have_text("3 min 19 s")  # start to finish
    metrics = page.locator("#metrics")
    for key, text in (("latency_b1_ms", "6.25 ms"), ("model_size_mb", "43.21 MB"),
                      ("sparsity", "50%"), ("accuracy", "91.2%"),
                      ("onnx_int8_speedup_b1", "3.66x")):  # fmt: skip
        expect(metrics.locator(f'tr[data-metric="{key}"] td')).to_have_text(text)
    assert metrics.locator('tr[data-metric="stage_seconds"]').count() == 0
    expect(page.locator('li[data-kind="model_int8_onnx"] .artifact-size')).to_have_text(
        "model_int8_onnx, 2.19 MB"
    )
    expect(page.locator('li[data-kind="model"] .artifact-size')).to_have_text("model, < 0.01 MB")
    no_script_errors(page)


def test_a_running_jobs_time_left_on_its_page_and_in_the_list(
    page: Any, server: Server, seeded: Seeded
) -> None:
    job = submit(server, name="training now")
    train(server, job, remaining_steps=600, steps_per_s=1.0)  # 10 min of training left
    assert 570 < api_status(server, job)["eta_seconds"] <= 600
    login(page, server)
    left = re.compile(r"^about (9|10) min left$")
    expect(row(page, job).locator(".job-eta")).to_have_text(left)
    title = row(page, job).locator(".job-eta").get_attribute("title")
    assert title.startswith("Training done about ")
    expect(row(page, seeded.queued).locator(".job-progress")).to_have_count(1)
    assert row(page, seeded.queued).locator(".job-eta").count() == 0  # not running
    assert row(page, seeded.running).locator(".job-eta").count() == 0  # not measured yet
    row(page, job).locator(".job-name a").click()
    expect(page.locator(".summary .job-eta")).to_have_text(left)
    expect(page.locator(".summary dt", has_text="Time left")).to_have_count(1)
    server.finish_job(job, "succeeded", stage="package", progress=1.0)
    expect(page.locator(".summary .badge")).to_have_text("succeeded", timeout=8_000)
    expect(page.locator(".summary .job-eta")).to_have_count(0)  # finished: none left
    expect(page.locator(".summary dt", has_text="Time left")).to_have_count(0)
    no_script_errors(page)


def test_unit_helpers(page: Any, server: Server) -> None:
    login(page, server)
    got = page.evaluate(
        """async () => {
          const u = await import("/dashboard/static/units.js");
          return [
            [0.25, 7.5, 42, 59.7, 125.034, 3725, -1, null].map(u.fmtDuration),
            [u.fmtMs(12.5), u.fmtMB(86.7), u.fmtBytes(3 * 1024 * 1024), u.fmtMB(0.004)],
            [0, 29, 30, 250, 3569, 3725, 90000, null, -1].map(u.fmtTimeLeft),
            [["dense_accuracy", 0.9345], ["int8_f1", 0.79], ["dev_exact_match", 0.7],
             ["mse", 0.51264], ["onnx_agreement", 0.9977], ["parameters", 22713216],
             ["total_seconds", 90], ["task", "regression"],
             ["primary_metric", {name: "spearman", value: 0.87149}]]
              .map(([k, v]) => u.formatByKey(k, v)),
          ];
        }"""
    )
    assert got == [
        ["250 ms", "7.5 s", "42 s", "1 min 00 s", "2 min 05 s", "1 h 02 min", "—", "—"],
        ["12.50 ms", "86.70 MB", "3 MB", "< 0.01 MB"],
        ["less than a minute left", "less than a minute left", "about 1 min left",
         "about 4 min left", "about 59 min left", "about 1 h 02 min left",
         "about 25 h 00 min left", "", ""],
        ["93.5%", "79.0%", "70.0%", "0.513", "99.8%", "22,713,216", "1 min 30 s", "regression",
         "Spearman 0.871"],
    ]  # fmt: skip


def test_failed_and_canceled_jobs_say_there_will_be_no_plots(
    page: Any, server: Server, seeded: Seeded
) -> None:
    login(page, server, hash_=f"#/jobs/{seeded.evil}")
    final = page.locator('.final-state[data-final="failed"]')
    expect(final.locator(".final-text")).to_have_text(
        "This job failed: there will be no report or plots."
    )
    expect(final.locator(".job-error")).to_contain_text("bad_input: ")
    expect(page.locator('#plots [data-final="failed"]')).to_have_text(
        "No plots: the job failed, so none will be made."
    )
    expect(page.locator("#figures")).to_be_hidden()  # no empty report panel
    page.goto(f"{server.url}/dashboard/#/jobs/{seeded.canceled}")
    final = page.locator('.final-state[data-final="canceled"]')
    expect(final.locator(".final-text")).to_have_text(
        "This job was canceled: there will be no report or plots."
    )
    expect(page.locator('#plots [data-final="canceled"]')).to_be_visible()
    expect(page.locator('#timing tr[data-stage="recover"] td')).to_have_text("12 s")
    page.goto(f"{server.url}/dashboard/#/jobs/{seeded.queued}")  # still to come
    expect(page.locator("#plots .empty")).to_have_text(
        "Plots show here once the job has succeeded."
    )
    assert page.locator(".final-state").count() == 0
    no_script_errors(page)


def test_int8_artifacts_say_which_to_use(page: Any, server: Server, seeded: Seeded) -> None:
    login(page, server, hash_=f"#/jobs/{seeded.succeeded}")
    pytorch = page.locator('li[data-kind="model_int8"]')
    expect(pytorch.locator(".needs-scalpel")).to_contain_text("needs Scalpel's code to load")
    assert pytorch.locator(".recommended").count() == 0
    onnx = page.locator('li[data-kind="model_int8_onnx"]')
    expect(onnx.locator(".recommended")).to_have_text("recommended int8")
    expect(page.locator(".recommended")).to_have_count(1)
    no_script_errors(page)
