"""POST /v1/jobs's answers: the job as submitted (its webhook says when the tenant has no
signing secret yet), or with ?dry_run=true what a submission would do: every check it runs
(app.services.jobs.check: recipe, task, data set, model and head, spec limits, the memory
and time estimates against the worker's budget and the time limit), the spec as it would be
stored and the estimates with what they are made of. A dry run writes nothing, queues
nothing and leaves an Idempotency-Key unused; a spec it refuses gets the submission's 422."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.db.models import Job
from app.schemas.job_submission import (
    JobDryRun,
    JobSubmission,
    MemoryEstimate,
    MemoryTerm,
    TimeEstimate,
    TimeStep,
)
from app.schemas.jobs import JobOut
from app.schemas.webhooks import JobWebhook
from app.services import job_estimate
from app.services import jobs as jobs_service
from app.services.webhooks import signing_notice
from app.settings import Settings
from app.tenancy import Caller

FIXED_PART = "loading, measuring and packaging"


def submit(session: Session, spec: JobSubmission, settings: Settings, caller: Caller) -> JobOut:
    """Submit the job; its answer's webhook carries the notice of a missing secret."""
    job = jobs_service.submit(
        session, spec, settings, caller, name=spec.name, labels=spec.labels,
        webhook_events=spec.webhook_events,
    )  # fmt: skip
    return submitted(session, job)


def submitted(session: Session, job: Job) -> JobOut:
    out = JobOut.of(job)
    if out.webhook is not None:
        out.webhook.notice = signing_notice(session, job.tenant_id)
    return out


def dry_run(session: Session, spec: JobSubmission, settings: Settings, caller: Caller) -> JobDryRun:
    """The submission's checks alone; raises what the submission would."""
    checked = jobs_service.check(session, spec, settings, caller)
    webhook = None
    if checked.webhook_url is not None:
        webhook = JobWebhook(
            url=checked.webhook_url, events=list(spec.webhook_events),
            notice=signing_notice(session, caller.tenant_id),
        )  # fmt: skip
    est, config = checked.estimate, checked.config
    return JobDryRun(
        spec=checked.stored, name=spec.name, labels=spec.labels, webhook=webhook,
        memory_estimate=memory_estimate(est, settings) if est is not None else None,
        time_estimate=(
            time_estimate(est, config, settings) if est is not None and config is not None
            else None
        ),
    )  # fmt: skip


def memory_estimate(est: job_estimate.Estimate, settings: Settings) -> MemoryEstimate:
    return MemoryEstimate(
        peak_bytes=est.peak_bytes, phase=est.phase,
        terms=[MemoryTerm(what=p.what, bytes=int(p.bytes), field=p.field) for p in est.parts],
        overhead_factor=job_estimate.OVERHEAD, budget_bytes=settings.worker_memory_budget_bytes,
        budget_setting="WORKER_MEMORY_BUDGET_BYTES",
    )  # fmt: skip


def time_estimate(
    est: job_estimate.Estimate, config: dict[str, Any], settings: Settings
) -> TimeEstimate:
    """job_estimate.estimate's seconds, part by part: each counted part's operations at
    ESTIMATE_TRAIN_FLOPS_PER_S, the fixed part, and the export's per parameter."""
    rate = settings.estimate_train_flops_per_s
    steps = [
        TimeStep(
            name=name,
            flops=flops,
            seconds=flops / rate,
            source=f"{flops:.3g} FLOP at ESTIMATE_TRAIN_FLOPS_PER_S ({rate:.3g} FLOP/s)",
        )
        for name, flops in est.steps.items()
    ]
    steps.append(
        TimeStep(
            name=FIXED_PART,
            flops=None,
            seconds=job_estimate.FIXED_SECONDS,
            source="a fixed part (job_estimate.FIXED_SECONDS, measured in bench/results)",
        )
    )
    params = job_estimate.Shape.of(config).params()
    per_param = job_estimate.EXPORT_SECONDS_PER_PARAM
    steps.append(
        TimeStep(
            name="export",
            flops=None,
            seconds=per_param * params,
            source=f"{per_param:.3g} s a parameter (job_estimate.EXPORT_SECONDS_PER_PARAM) x "
            f"{params:,} parameters",
        )
    )
    return TimeEstimate(
        seconds=est.seconds, steps=steps, flops_per_s=rate,
        flops_per_s_setting="ESTIMATE_TRAIN_FLOPS_PER_S", limit_s=settings.job_time_limit_s,
        limit_setting="JOB_TIME_LIMIT_S", field=est.time_field,
    )  # fmt: skip
