"""Selection of the prunable Linear layers of an encoder, by layer list and paths."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


class TargetsMismatch(Exception):
    """A layer does not hold a Linear at every path it should."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def layer_linear_targets(
    layers: Sequence[nn.Module], prefix: str, paths: Sequence[str]
) -> dict[str, nn.Linear]:
    """The Linear at each of `paths` (dotted, under a layer) in every one of `layers`, keyed
    `f"{prefix}{i}.{path}"`, in layer order then path order. Raises TargetsMismatch naming
    the layer and the paths it lacks (or holds as something other than a Linear)."""
    found: dict[str, nn.Linear] = {}
    for i, layer in enumerate(layers):
        missing: list[str] = []
        for path in paths:
            try:
                module = layer.get_submodule(path)
            except AttributeError:
                module = None
            if not isinstance(module, nn.Linear):
                missing.append(path)
                continue
            found[f"{prefix}{i}.{path}"] = module
        if missing:
            raise TargetsMismatch(
                f"layer {i} ({type(layer).__name__}) yields {len(paths) - len(missing)} of the "
                f"{len(paths)} prunable matrices its architecture has; missing: "
                + ", ".join(missing)
            )
    return found
