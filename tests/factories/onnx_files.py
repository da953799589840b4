"""What tests read off exported ONNX files."""

from __future__ import annotations

import math
from pathlib import Path


def onnx_parameters(path: Path) -> int:
    """The number of weight elements (initializers) in the ONNX file at `path`."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return sum(math.prod(t.dims) for t in graph.initializer)
