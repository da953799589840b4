"""Benchmark: the built-in recipes run end to end by the real pipeline, MiniLM-L6 on a task's
built-in data set (`--task`: sequence_classification on SST-2 by default, regression on STS-B,
token_classification on CoNLL-2003, question_answering on SQuAD v1.1).

For each configuration this runs `worker.pipelines.compress.run_pipeline` in-process (no
database, no Celery: an in-memory reporter and a local artifact store under a temporary
folder), on the built-in MiniLM-L6 and a seeded SST-2 train subset, with a step budget that
replaces the recipes' epochs, and prints ONE JSON line per configuration taken from the
job's report.json, i.e. measured from the exported ONNX files by ONNX Runtime on the CPU:
the task's primary dev metric (accuracy, Spearman, entity F1, SQuAD F1) of the exported
artifact (int8 ONNX for a quantized recipe, fp32 ONNX otherwise) vs the dense fp32 ONNX model
and the fraction of it kept, encoder sparsity, batch-1 latency at --max-length
(128 by default) and the artifact's gzip size.

The configurations:

  obert-80, obert-90, gmp-80, gmp-90   the built-in recipes of those names
  compound-3l-80-block4-int8           the `compound-3l-80-int8` recipe: keep 3 of 6 layers,
                                       oBERT gradual pruning to 80% in blocks of 4, QAT int8
  structured-1.5x, -2x, -3x, -4x      structured pruning (heads and FFN neurons, ZipLM) to that
                                       measured speedup (recipes structured-2x / -3x with the
                                       target set), 3 steps; structured-2x-int8 adds QAT int8

The budget. The dense model is fine-tuned once (`--dense-steps` steps, batch 16, on the
`--train-examples` subset) by a pipeline job with pruning "none", and its model.tar.gz is
cached under bench/.cache/ and handed to every configuration as an uploaded model (the
pipeline then skips its own dense fine-tuning: the model has a trained head, and it becomes
the distillation teacher and the dense baseline). Each configuration then recovers for its
recipe's recovery epochs over the subset (or `--steps` optimizer steps, the same for all);
the gradual schedule spans the same fraction of them as in the recipe (the first 3/4 for the
version 2 recipes); QAT (compound) runs `--qat-steps` more (default: the recovery length, as
the pipeline does). `--override JSON` merges job-spec fields over every recipe, for
what-if runs (the line records it and its file name says `override`).

Default budget: 8000 train examples at batch 16 (500 steps an epoch); the dense model 1000
steps (2 epochs); recovery 1000 steps for the 80% recipes and the compound (2 epochs) and
1500 for the 90% ones (3 epochs), plus 1000 QAT steps for the compound; the full dev split
(872); latency over 50 batch-1 runs at length 128, taken in rounds that alternate between
the dense, fp32 and int8 files. On 2 cores a training step is about 0.35 s (more with the
teacher), an oBERT pruning step 20-60 s, so a configuration takes roughly 12-30 minutes,
and the one-off dense fine-tune about 9. See `machine.loadavg` in each line for what else
the machine was doing; bench/latency.py times a job kept with `--keep` again on its own.

The `dense` configuration is the line of the dense fine-tuned model itself (its own job's
report: the fp32 ONNX file it exported).

Usage: ``python bench/recipe.py --out bench/results`` (all five), ``--configs gmp-80``, a
task: ``--task question_answering --max-length 256 --doc-stride 128 --configs dense obert-80
gmp-80``, or a smoke run of a couple of minutes: ``--smoke --configs gmp-80``.

This module runs the jobs; what each configuration runs and reports (its job body and its
result line) is bench/recipe_jobs.py.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.reports import Report
from bench.common import CACHE, data_dir, machine
from bench.recipe_jobs import (
    CONFIGS,
    DEFAULT_DENSE_EPOCHS,
    DEFAULT_TRAIN_EXAMPLES,
    SMOKE,
    TASK_DATASETS,
    config_body,
    dense_body,
    result_line,
    steps_per_epoch,
    write_line,
)
from worker.pipelines.progress import MemoryReporter

log = logging.getLogger("bench.recipe")


class Uploads:
    """The uploads lookup the pipeline is given: the cached dense model, no data sets."""

    def __init__(self) -> None:
        self.models: dict[uuid.UUID, Any] = {}

    def get_uploaded_model(self, model_id: uuid.UUID) -> Any:
        return self.models.get(model_id)

    def get_uploaded_dataset(self, dataset_id: uuid.UUID) -> Any:
        return None


class Env:
    """Settings, store and artifact sink for in-process jobs under one root folder."""

    def __init__(
        self, root: Path, latency_iters: tuple[int, int], teacher_cache_bytes: int | None = None
    ) -> None:
        from app.settings import Settings
        from app.storage import LocalStore

        self.root = root
        self.settings = Settings(
            data_dir=data_dir(),
            storage_dir=root / "store",
            work_dir=root / "work",
            device="cpu",
            **(
                {}
                if teacher_cache_bytes is None
                else {"teacher_cache_max_bytes": teacher_cache_bytes}
            ),
        )
        self.store = LocalStore(self.settings.storage_dir)
        self.uploads = Uploads()
        self.latency_iters = latency_iters

    def upload_model(self, archive: Path, task: str = "sequence_classification") -> uuid.UUID:
        from app.catalog import TASK_FACTS
        from worker.job_store import ModelRecord

        stored = self.store.put_file(archive)
        rec = ModelRecord(
            id=uuid.uuid4(),
            sha256=stored.sha256,
            storage_key=stored.key,
            archive_format="tar.gz",
            architecture="Bert" + TASK_FACTS[task].head_suffix,  # type: ignore[index]
            num_labels=2,
            config={},
        )
        self.uploads.models[rec.id] = rec
        return rec.id

    def run(self, name: str, body: dict[str, Any]) -> tuple[Report, dict[str, Path]]:
        """Run one job spec; returns its report.json and {artifact kind: local file}."""
        from app.schemas.job_spec import JobSpec
        from worker.pipelines.compress import run_pipeline
        from worker.pipelines.context import PipelineContext

        spec = JobSpec.model_validate(body)
        artifacts: dict[str, Path] = {}

        def add_artifact(kind: str, path: Path, filename: str, media_type: str) -> str:
            obj = self.store.put_file(path)
            artifacts[kind] = self.store.local_path(obj.key)
            return obj.sha256

        scratch = self.root / "scratch" / name
        scratch.mkdir(parents=True, exist_ok=True)
        ctx = PipelineContext(
            settings=self.settings,
            device=torch.device("cpu"),
            reporter=StageLog(name),
            uploads=self.uploads,
            store=self.store,
            scratch=scratch,
            add_artifact=add_artifact,
            job_id="",  # no checkpoints
            latency_iters=self.latency_iters,
        )
        run_pipeline(spec, ctx)
        report = Report.model_validate(json.loads(artifacts["report"].read_text(encoding="utf-8")))
        shutil.rmtree(scratch, ignore_errors=True)
        return report, artifacts


class StageLog(MemoryReporter):
    """An in-memory reporter that also logs each stage and pruning step as it starts."""

    def __init__(self, job: str) -> None:
        super().__init__(min_interval_s=30.0)
        self.job = job
        self.t0 = time.monotonic()

    def _write_stage(self, stage: str, progress: float) -> bool:
        log.info("[%s] %6.0fs stage %s", self.job, time.monotonic() - self.t0, stage)
        return super()._write_stage(stage, progress)

    def _write_progress(self, stage: str | None, progress: float) -> bool:
        elapsed = time.monotonic() - self.t0
        log.info("[%s] %6.0fs %s %.0f%%", self.job, elapsed, stage, 100 * progress)
        return super()._write_progress(stage, progress)

    def _write_step_metrics(self, stage: str | None, values: dict[str, Any]) -> None:
        log.info("[%s] %s", self.job, json.dumps(values))
        super()._write_step_metrics(stage, values)


def dense_model(args: argparse.Namespace, env: Env) -> dict[str, Any]:
    """The dense fine-tuned model.tar.gz (cached by budget), its report and cost."""
    name = (
        f"recipe-dense-{args.dataset}-n{args.train_examples}-s{args.dense_steps}"
        f"-b{args.batch_size}-l{args.max_length}-d{args.doc_stride or 0}-seed{args.seed}"
        f"-e{args.eval_examples or 'all'}-lr{args.dense_lr or 'task'}"
    )
    folder = CACHE / name
    archive, report_path = folder / "model.tar.gz", folder / "report.json"
    if archive.is_file() and report_path.is_file() and not args.no_cache:
        report = Report.model_validate(json.loads(report_path.read_text(encoding="utf-8")))
        log.info("dense model from cache %s", folder)
        cached = True
    else:
        log.info("fine-tuning the dense model (%d steps)", args.dense_steps)
        report, artifacts = env.run("dense", dense_body(args))
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(artifacts["model"], archive)
        text = json.dumps(report.model_dump(mode="json"), indent=2) + "\n"
        report_path.write_text(text, encoding="utf-8")
        cached = False
    return {
        "archive": archive,
        "report": report,
        "cached": cached,
        "path": str(folder),
        "fine_tune_seconds": report.stage_seconds.get("finetune_dense"),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--task", choices=list(TASK_DATASETS), default="sequence_classification")
    p.add_argument("--dataset", default=None, help="default: the task's built-in data set")
    p.add_argument("--doc-stride", type=int, default=None, help="question answering windows")
    p.add_argument(
        "--teacher-cache-mb", type=int, default=None, help="0: no teacher cache (default: on)"
    )
    p.add_argument("--dense-lr", type=float, default=None, help="dense fine-tune learning rate")
    p.add_argument(
        "--configs",
        nargs="+",
        choices=list(CONFIGS),
        default=[c for c in CONFIGS if c != "dense"],
    )
    p.add_argument(
        "--train-examples",
        type=int,
        default=None,
        help=f"seeded SST-2 train subset (default {DEFAULT_TRAIN_EXAMPLES})",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="recovery steps for every configuration (default: each recipe's recovery epochs "
        "over the train subset)",
    )
    p.add_argument("--dense-steps", type=int, default=None, help="default: --steps, or 2 epochs")
    p.add_argument("--qat-steps", type=int, default=None, help="compound QAT; default: --steps")
    p.add_argument("--max-length", type=int, default=128, help="training cap and latency length")
    p.add_argument("--eval-examples", type=int, default=None, help="dev subset (default all 872)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--latency-iters",
        type=int,
        nargs=2,
        default=None,
        metavar=("B1", "B32"),
        help="timed iterations at batch 1 and 32 (default 50 3; smoke 3 1)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch/ORT threads (default: cores)")
    p.add_argument("--out", type=Path, default=None, help="also write each line to a file here")
    p.add_argument("--keep", type=Path, default=None, help="keep the jobs' store/work here")
    p.add_argument("--no-cache", action="store_true", help="fine-tune the dense model again")
    p.add_argument("--smoke", action="store_true", help="tiny budgets: a couple of minutes")
    p.add_argument("--quiet", action="store_true", help="no progress log on stderr")
    p.add_argument(
        "--override",
        type=json.loads,
        default={},
        metavar="JSON",
        help="job-spec fields merged over every configuration's recipe (recorded in the line), "
        'e.g. \'{"pruning": {"obert": {"num_grads": 256}}}\'',
    )
    args = p.parse_args(argv)
    if not isinstance(args.override, dict):
        p.error("--override must be a JSON object")
    for key, value in SMOKE.items() if args.smoke else ():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.dataset is None:
        args.dataset = TASK_DATASETS[args.task]
    if args.train_examples is None:
        args.train_examples = DEFAULT_TRAIN_EXAMPLES
    if args.dense_steps is None:
        args.dense_steps = (
            args.steps
            if args.steps is not None
            else round(DEFAULT_DENSE_EPOCHS * steps_per_epoch(args))
        )
    if args.latency_iters is None:
        args.latency_iters = [3, 1] if args.smoke else [50, 3]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(  # others (onnxruntime's quantizer logs per tensor) at WARNING
        level=logging.WARNING, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr
    )
    for name in ("bench", "worker"):
        logging.getLogger(name).setLevel(logging.WARNING if args.quiet else logging.INFO)
    if args.threads:
        torch.set_num_threads(args.threads)
    log.info("machine %s", json.dumps(machine()))
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        root = args.keep
        tmp = None
    else:
        tmp = tempfile.TemporaryDirectory(prefix="scalpel-bench-recipe-")
        root = Path(tmp.name)
    cache = None if args.teacher_cache_mb is None else args.teacher_cache_mb * 2**20
    env = Env(root, (args.latency_iters[0], args.latency_iters[1]), cache)
    failed = 0
    try:
        dense = dense_model(args, env)
        model_id = env.upload_model(dense["archive"], args.task)
        for config in args.configs:
            start = time.monotonic()
            if config == "dense":
                write_line(
                    result_line(config, args, dense["report"], dense, 0.0), args.out, args.smoke
                )
                continue
            body = config_body(args, config, model_id)
            log.info("[%s] spec overrides %s", config, json.dumps(body))
            try:
                report, _ = env.run(config, copy.deepcopy(body))
            except Exception as e:  # one failed configuration does not stop the others
                failed += 1
                traceback.print_exc()
                line = {
                    "config": config,
                    "error": f"{type(e).__name__}: {e}"[:2000],
                    "wall_seconds": round(time.monotonic() - start, 1),
                    "machine": machine(),
                }
                write_line(line, None, args.smoke)
                continue
            write_line(
                result_line(config, args, report, dense, time.monotonic() - start),
                args.out,
                args.smoke,
            )
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
