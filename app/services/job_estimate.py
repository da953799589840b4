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
- structured calibration (each of pruning.structured.steps, between recoveries; see
  structured_state): the student's weights (no optimizer state), per layer a structured OBS
  of the attention output and of the FFN output projection, every layer's held at once, the
  workspace of one greedy pass and the activations of a no-grad calibration forward; the
  latency table's timed blocks are a few MB (not counted);
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
3,380 s measured (1.3x: that VM ran 20% faster per core than this one). Structured pruning
adds each step's calibration forwards, X^T X updates and greedy passes (structured_flops;
the latency table's measurement, cached per CPU and shape, is not counted). Memory assumes
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

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.architectures import (
    ARCHITECTURES,
    Architecture,
    Config,
    UnsupportedArchitecture,
    architecture_for,
)
from app.catalog import TASK_FACTS
from app.schemas.job_spec import GradualSchedule, JobSpec, StructuredSpec
from app.services.job_data_sizes import (
    DataSizes,
)

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
# Time: AdamW reads and writes about 4 arrays per parameter per step; a QAT step costs about
# a recovery step (bench/results/recipe-*compound*: 408 s against 429 s for 1,000 steps);
# loading, measuring, exporting and packaging MiniLM-L6 took 75-180 s in bench/results.
# The structured OBS greedy pass (one small step per structure, float64) ran its counted
# operations (structured_flops) at 8.2 GFLOP/s on one core of this machine for MiniLM's and
# BERT-base's FFN output projections (1.8 s and 14.0 s), a fifth of the training rate.
GREEDY_COST = 5.0
OPTIMIZER_FLOPS_PER_PARAM = 20.0
QAT_STEP_COST = 1.0
FIXED_SECONDS = 60.0
EXPORT_SECONDS_PER_PARAM = 150.0 / 22_713_986
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


def structured_options(spec: JobSpec) -> StructuredSpec:
    """pruning.structured, or its defaults when the spec leaves it out."""
    return spec.pruning.structured or StructuredSpec()


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
    if spec.pruning.method == "structured":
        return structured_options(spec).steps
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


def _projections(shape: Shape) -> list[tuple[int, int]]:
    """(out, n) of the two projections a structured calibration holds per layer: the attention
    output (in = hidden, a column group per head) and the FFN output (in = ffn, a column per
    neuron), n = in + 1 for the bias column (counted whether or not the family has one)."""
    return [(shape.hidden, shape.hidden + 1), (shape.hidden, shape.intermediate + 1)]


def structured_state(shape: Shape) -> tuple[int, int]:
    """worker.pipelines.structured_calibrate.StructuredCalibration's float64 state once its
    levels are computed: per projection X^T X and its damped copy H, (n x n) each, and the
    working weights (out x n), for every layer at once; and the transient workspace of the
    largest projection's greedy pass (prune_levels: H^-1, its Cholesky factor and a compacted
    copy, 3 n^2, and the updated weights, out x n). Returns (resident, workspace) bytes."""
    per = [(2 * n * n + out * n) * FLOAT64 for out, n in _projections(shape)]
    work = max((3 * n * n + out * n) * FLOAT64 for out, n in _projections(shape))
    return shape.layers * sum(per), work


def structured_flops(shape: Shape, tokens: int, length: int) -> tuple[float, float]:
    """One structured step's floating-point operations: (calibration, greedy passes).

    calibration = tokens * (fwd + layers * sum_p 2 n_p^2): the no-grad forward passes of the
    calibration batches (tokens = calibration_batches * batch_size * length) and each
    projection's X^T X update. greedy = GREEDY_COST * layers * sum_p (2 in_p n_p^2 +
    4 in_p out n_p + n_p^3): StructuredOBS.prune_levels removes G structures of g columns
    (G * g = in_p), each a rank-g downdate of the n x n inverse (2 g n^2), the update of the
    out x n weights and the saliency scan (at most 4 g out n), after H's Cholesky
    factorisation and inverse (n^3). An upper bound on the operations (the pass compacts as
    structures go; later steps start from a smaller model), not on the time (GREEDY_COST)."""
    proj = _projections(shape)
    calibration = tokens * (shape.forward_flops_per_token(length)
                            + shape.layers * sum(2.0 * n * n for _, n in proj))  # fmt: skip
    greedy = sum(2.0 * (n - 1) * n * n + 4.0 * (n - 1) * out * n + n**3 for out, n in proj)
    return calibration, GREEDY_COST * shape.layers * greedy


def _structured_parts(spec: JobSpec, student: Shape) -> list[Part]:
    resident, work = structured_state(student)
    batch, length = spec.training.batch_size, spec.dataset.max_length
    return [
        Part(f"structured OBS state of {student.layers} layers (float64 X^T X, H, weights)",
             resident, "layers.keep"),
        Part("structured OBS greedy-pass workspace", work, "layers.keep"),
        Part(f"calibration forward activations at {batch} x {length}",
             student.eval_activation_bytes(batch, length), "training.batch_size"),
    ]  # fmt: skip


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
    if spec.pruning.method == "structured":
        # each step's recovery is a training run of its own: its optimizer state is gone
        # before the next step's calibration (worker.pipelines.stages.structured)
        held = Part("the student's weights", w_student, "model")
        phases["structured calibration"] = [base, held, teacher, *_structured_parts(spec, student)]
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
    if spec.pruning.method == "structured":
        st = structured_options(spec)
        calibration, greedy = structured_flops(student, st.calibration_batches * tokens, length)
        flops["structured calibration"] = st.steps * calibration
        fields["structured calibration"] = "pruning.structured.calibration_batches"
        flops["structured OBS passes"] = st.steps * greedy
        fields["structured OBS passes"] = "pruning.structured.steps"
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
