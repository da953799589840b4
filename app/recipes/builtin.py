"""The built-in recipes: partial job specs (no model or dataset), each at a version.

A published version never changes; a changed recipe gets the next version and keeps the old
one, so "name@1" always means the same spec."""

from __future__ import annotations

from typing import Any

# (name, version, description, partial spec)
BUILTIN: list[tuple[str, int, str, dict[str, Any]]] = [
    (
        "obert-80",
        1,
        "oBERT (second-order) gradual pruning to 80% unstructured sparsity, "
        "with distillation from the dense teacher.",
        {
            "pruning": {
                "method": "obert",
                "sparsity": 0.8,
                "structure": "unstructured",
                "scope": "global",
                "schedule": {
                    "kind": "gradual",
                    "epochs": 2.0,
                    "pruning_steps": 8,
                    "init_sparsity": 0.3,
                },
                "obert": {"num_recomputations": 1},
            },
            "distillation": {"enabled": True, "hardness": 1.0, "temperature": 2.0},
            "training": {"recovery_epochs": 2.0, "learning_rate": 5e-5},
        },
    ),
    (
        "obert-90",
        1,
        "oBERT gradual pruning to 90% unstructured sparsity, with distillation; "
        "a longer schedule than obert-80.",
        {
            "pruning": {
                "method": "obert",
                "sparsity": 0.9,
                "structure": "unstructured",
                "scope": "global",
                "schedule": {
                    "kind": "gradual",
                    "epochs": 3.0,
                    "pruning_steps": 12,
                    "init_sparsity": 0.3,
                },
                "obert": {"num_recomputations": 1},
            },
            "distillation": {"enabled": True, "hardness": 1.0, "temperature": 2.0},
            "training": {"recovery_epochs": 3.0, "learning_rate": 5e-5},
        },
    ),
    (
        "gmp-80",
        1,
        "Gradual magnitude pruning (GMP) to 80% unstructured sparsity.",
        {
            "pruning": {
                "method": "magnitude",
                "sparsity": 0.8,
                "structure": "unstructured",
                "scope": "global",
                "schedule": {
                    "kind": "gradual",
                    "epochs": 2.0,
                    "pruning_steps": 8,
                    "init_sparsity": 0.0,
                },
            },
            "distillation": {"enabled": False},
            "training": {"recovery_epochs": 2.0},
        },
    ),
    (
        "gmp-90",
        1,
        "Gradual magnitude pruning (GMP) to 90% unstructured sparsity.",
        {
            "pruning": {
                "method": "magnitude",
                "sparsity": 0.9,
                "structure": "unstructured",
                "scope": "global",
                "schedule": {
                    "kind": "gradual",
                    "epochs": 3.0,
                    "pruning_steps": 12,
                    "init_sparsity": 0.0,
                },
            },
            "distillation": {"enabled": False},
            "training": {"recovery_epochs": 3.0},
        },
    ),
    (
        "compound-3l-80-int8",
        1,
        "Compound compression: keep 3 encoder layers, oBERT gradual pruning to 80% in "
        "blocks of 4 with distillation, then int8 quantization-aware fine-tuning.",
        {
            "layers": {"keep": 3},
            "pruning": {
                "method": "obert",
                "sparsity": 0.8,
                "structure": "block4",
                "scope": "global",
                "schedule": {
                    "kind": "gradual",
                    "epochs": 2.0,
                    "pruning_steps": 8,
                    "init_sparsity": 0.3,
                },
                "obert": {"block_size": 4, "num_recomputations": 1},
            },
            "distillation": {"enabled": True, "hardness": 1.0, "temperature": 2.0},
            "quantization": {"method": "qat_int8"},
            "training": {"recovery_epochs": 2.0},
        },
    ),
]
