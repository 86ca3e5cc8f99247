"""A planted slowdown: the same ONNX model with extra work that leaves its outputs bit-identical.

A gate that has never failed proves nothing. This makes a model that must fail the latency
check and pass the accuracy check: ``pairs`` of convolutions inserted after the input,
3 -> ``width`` channels and back, with kernels that copy the image exactly (a 1 at the
centre tap of one input channel, zeros elsewhere). onnxruntime cannot fold them (they act
on the input, not on constants), so each pair costs ``2 * 9 * 3 * width`` MACs per pixel
and the logits do not change by a single bit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segprune.export.onnx_export import load_onnx, save_onnx


def plant_slowdown(src: str | Path, dst: str | Path, pairs: int = 2, width: int = 64) -> Path:
    """Write ``src`` with ``pairs`` identity conv pairs before its first layer to ``dst``."""
    import onnx
    from onnx import helper, numpy_helper

    model = load_onnx(src)
    graph = model.graph
    image = graph.input[0].name
    expand = np.zeros((width, 3, 3, 3), np.float32)
    for k in range(3):
        expand[k, k, 1, 1] = 1.0  # channels 3.. stay zero: they only cost time
    contract = np.zeros((3, width, 3, 3), np.float32)
    for k in range(3):
        contract[k, k, 1, 1] = 1.0
    graph.initializer.extend([numpy_helper.from_array(expand, "planted_expand"),
                              numpy_helper.from_array(contract, "planted_contract")])
    nodes, current = [], image
    for i in range(pairs):
        wide, back = f"planted_wide_{i}", f"planted_back_{i}"
        nodes.append(helper.make_node("Conv", [current, "planted_expand"], [wide], pads=[1, 1, 1, 1],
                                      name=f"planted_expand_{i}"))
        nodes.append(helper.make_node("Conv", [wide, "planted_contract"], [back], pads=[1, 1, 1, 1],
                                      name=f"planted_contract_{i}"))
        current = back
    for node in graph.node:
        node.input[:] = [current if name == image else name for name in node.input]
    old = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + old)
    onnx.checker.check_model(model)
    save_onnx(model, dst)
    return Path(dst)
