"""The types of the architecture table (torch-free: the API and the worker both read it).

An `Architecture` says, for one encoder family, everything the service assumes about its
models: the config keys for the sizes, where the base model and its layer list live, the
prunable Linear matrices of a layer with their roles (from which their shapes follow), which
rows and columns form an attention head or a feed-forward neuron, how layers are dropped, the
task heads' parameters and the tokenizer files it may come with. `parameters(config)` is the
base model's full parameter set by name and shape, which the upload check and the worker's
load check hold the weights to.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from app.catalog import TaskName

Shape = tuple[int, ...]
Role = Literal[
    "query", "key", "value", "qkv", "attention_output", "pos_key", "pos_query", "ffn_in", "ffn_out"
]
ATTENTION_ROLES: frozenset[Role] = frozenset(
    {"query", "key", "value", "qkv", "attention_output", "pos_key", "pos_query"}
)


def _always(_: Config) -> bool:
    return True


@dataclass(frozen=True)
class ConfigKeys:
    """What the family's config.json calls each size (DistilBERT: dim, n_layers, ...)."""

    hidden: str = "hidden_size"
    layers: str = "num_hidden_layers"
    heads: str = "num_attention_heads"
    ffn: str = "intermediate_size"
    vocab: str = "vocab_size"
    positions: str = "max_position_embeddings"


class Config:
    """A config.json read with the family's keys and its config class's defaults."""

    def __init__(self, raw: Mapping[str, Any], keys: ConfigKeys, defaults: Mapping[str, Any]):
        self.raw = raw
        self.keys = keys
        self.defaults = defaults

    def get(self, key: str) -> Any:
        value = self.raw.get(key)
        return self.defaults.get(key) if value is None else value

    def num(self, key: str) -> int:
        return int(self.get(key))

    def flag(self, key: str) -> bool:
        return bool(self.get(key))

    @property
    def hidden(self) -> int:
        return self.num(self.keys.hidden)

    @property
    def layers(self) -> int:
        return self.num(self.keys.layers)

    @property
    def heads(self) -> int:
        return self.num(self.keys.heads)

    @property
    def ffn(self) -> int:
        return self.num(self.keys.ffn)

    @property
    def vocab(self) -> int:
        return self.num(self.keys.vocab)

    @property
    def positions(self) -> int:
        return self.num(self.keys.positions)


@dataclass(frozen=True)
class Matrix:
    """One prunable Linear of a layer: its path under the layer and its role. `bias` is a
    constant or the config key saying whether it has one; `present` says whether the config
    gives the layer this matrix at all (DeBERTa's separate position projections)."""

    path: str
    role: Role
    bias: bool | str = True
    present: Callable[[Config], bool] = _always

    def has_bias(self, config: Config) -> bool:
        return self.bias if isinstance(self.bias, bool) else config.flag(self.bias)

    def shape(self, config: Config, gated: bool) -> Shape:
        h, f = config.hidden, config.ffn
        if self.role == "qkv":
            return (3 * h, h)
        if self.role == "ffn_in":
            return (2 * f if gated else f, h)
        if self.role == "ffn_out":
            return (h, f)
        return (h, h)


@dataclass(frozen=True)
class AttentionHeads:
    """Head i is rows [i*d, (i+1)*d) of `query`, `key` and `value` (of each third of `qkv`
    when they are fused) and columns [i*d, (i+1)*d) of `output`, d = hidden / heads.

    For removing heads from a layer: `module` is the attention module under the layer whose
    forward splits the projections into heads, `count` and `width` the attributes of it that
    hold the head count and the all-heads width (None where the forward infers them from the
    projections' shapes), and `shared_bias` the forward argument carrying a per-head bias of
    shape (batch, heads, query, key) computed once for all layers (MPNet's position_bias),
    which a layer with fewer heads takes sliced to its own."""

    output: str
    query: str | None = None
    key: str | None = None
    value: str | None = None
    qkv: str | None = None
    module: str | None = None
    count: str | None = None
    width: str | None = None
    shared_bias: str | None = None


@dataclass(frozen=True)
class FeedForward:
    """Neuron j is row j of `fc1` (and row ffn + j, the gate, when `gated`: act(x_j) * g_j)
    and column j of `fc2`; `activation` is the path of the activation under the layer."""

    fc1: str
    fc2: str
    activation: str
    gated: bool = False


CLASSIFIER_HEADS: Mapping[TaskName, tuple[str, ...]] = {
    "sequence_classification": ("classifier.",),
    "regression": ("classifier.",),
    "token_classification": ("classifier.",),
    "question_answering": ("qa_outputs.",),
}


@dataclass(frozen=True)
class Architecture:
    family: str  # the table's key, e.g. "deberta-v2"
    display: str  # "DeBERTa-v2/v3"
    model_types: tuple[str, ...]  # config.json model_type values
    class_prefix: str  # transformers' class names: f"{class_prefix}ForQuestionAnswering"
    base_prefix: str  # the base model's parameters in a task model: "roberta."
    layers_path: str  # the layer list under the base model: "encoder.layer"
    matrices: tuple[Matrix, ...]
    attention: AttentionHeads
    ffn: FeedForward
    parameters: Callable[[Config], dict[str, Shape]]  # the base model's, without base_prefix
    keys: ConfigKeys = field(default_factory=ConfigKeys)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    # Config lists indexed by layer, kept in step when layers are dropped (ModernBERT)
    per_layer_keys: tuple[str, ...] = ()
    # Each task head's parameters (model root), which alone may be initialised at random
    heads: Mapping[TaskName, tuple[str, ...]] = field(default_factory=lambda: CLASSIFIER_HEADS)
    # The Linear whose rows are the task's outputs, per task: its rows count the labels
    head_outputs: Mapping[TaskName, str] = field(default_factory=dict)
    # Base-model parameters a sequence classifier may initialise when the checkpoint has none
    optional_pooler: tuple[str, ...] = ()
    # Tokenizer file sets: one set must be present in full
    tokenizer_files: tuple[tuple[str, ...], ...] = (("tokenizer.json",),)
    # Class suffixes a checkpoint's `architectures` may name besides the standard ones
    extra_classes: tuple[str, ...] = ()
    # Positions are numbered from pad_token_id + 1 (RoBERTa, XLM-R, MPNet): fewer fit
    positions_after_pad: bool = False

    def config(self, raw: Mapping[str, Any]) -> Config:
        return Config(raw, self.keys, self.defaults)

    def usable_positions(self, config: Config) -> int:
        """The longest input the position embeddings hold."""
        if not self.positions_after_pad:
            return config.positions
        return config.positions - int(config.get("pad_token_id") or 0) - 1

    def layer_matrices(self, config: Config) -> tuple[Matrix, ...]:
        """The prunable matrices every layer of a model with this config has."""
        return tuple(m for m in self.matrices if m.present(config))

    def head_output(self, task: TaskName) -> str:
        return self.head_outputs.get(task, CLASSIFIER_HEADS[task][0].rstrip("."))

    def task_heads(self, task: TaskName) -> tuple[str, ...]:
        return self.heads.get(task, CLASSIFIER_HEADS[task])

    @property
    def classes(self) -> frozenset[str]:
        suffixes = (*STANDARD_CLASS_SUFFIXES, *self.extra_classes)
        return frozenset(f"{self.class_prefix}{s}" for s in suffixes)


STANDARD_CLASS_SUFFIXES = (
    "Model",
    "ForMaskedLM",
    "ForSequenceClassification",
    "ForTokenClassification",
    "ForQuestionAnswering",
    "ForMultipleChoice",
)


def matrix_parameters(
    matrices: tuple[Matrix, ...], config: Config, layer: str, *, gated: bool = False
) -> dict[str, Shape]:
    """The prunable matrices' weights and biases of one layer (`layer`: its name prefix), those
    the config gives it."""
    out: dict[str, Shape] = {}
    for m in matrices:
        if not m.present(config):
            continue
        shape = m.shape(config, gated)
        out[f"{layer}{m.path}.weight"] = shape
        if m.has_bias(config):
            out[f"{layer}{m.path}.bias"] = (shape[0],)
    return out


def norm(name: str, width: int, bias: bool = True) -> dict[str, Shape]:
    out: dict[str, Shape] = {f"{name}.weight": (width,)}
    if bias:
        out[f"{name}.bias"] = (width,)
    return out
