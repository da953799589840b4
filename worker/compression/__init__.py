"""Scalpel's pure compression algorithms (torch and transformers only).

Targets, masks and sparsity; magnitude and oBERT pruning behind one registry-dispatched
:func:`prune`; the cubic sparsity schedule; dynamic int8 quantization with a safetensors-ready
state dict.
"""

from worker.compression.config import MagnitudeConfig, OBertConfig, PruningConfig
from worker.compression.fisher import (
    BlockFisherInverse,
    WoodburyFisherInverse,
    batched_spd_inverse,
    woodbury_fisher_inverse,
)
from worker.compression.gradients import GradientSource
from worker.compression.magnitude import magnitude_prune, magnitude_scores
from worker.compression.masks import (
    MaskHold,
    SparsityReport,
    apply_masks,
    hold_masks,
    masks_from_weights,
    sparsity_of,
)
from worker.compression.obert import (
    FisherMemoryError,
    collect_fisher,
    fisher_memory_estimate,
    obert_prune,
    obert_scores,
    plan_groups,
)
from worker.compression.prune import PRUNERS, prune
from worker.compression.quantize import (
    int8_state_dict,
    load_int8_state_dict,
    quantize_dynamic_int8,
)
from worker.compression.schedule import cubic_sparsity
from worker.compression.targets import TargetsMismatch, layer_linear_targets

__all__ = [
    "PRUNERS",
    "BlockFisherInverse",
    "FisherMemoryError",
    "GradientSource",
    "MagnitudeConfig",
    "MaskHold",
    "OBertConfig",
    "PruningConfig",
    "SparsityReport",
    "TargetsMismatch",
    "WoodburyFisherInverse",
    "apply_masks",
    "batched_spd_inverse",
    "collect_fisher",
    "cubic_sparsity",
    "fisher_memory_estimate",
    "hold_masks",
    "int8_state_dict",
    "layer_linear_targets",
    "load_int8_state_dict",
    "magnitude_prune",
    "magnitude_scores",
    "masks_from_weights",
    "obert_prune",
    "obert_scores",
    "plan_groups",
    "prune",
    "quantize_dynamic_int8",
    "sparsity_of",
    "woodbury_fisher_inverse",
]
