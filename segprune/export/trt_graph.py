"""The facts about an ONNX graph the TensorRT rules read: constants, producers, readers, inferred types and shapes.

Read with onnx alone (shape inference with data propagation, and ``onnx.checker``'s full
check for type consistency), so the rules in :mod:`segprune.export.trt_rules` run on any CPU.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from segprune.export import trt_ops as T


class GraphFacts:
    """The facts the rules need: initializers, constants, producers, consumers, inferred types and shapes."""

    def __init__(self, model) -> None:
        import onnx
        from onnx import numpy_helper

        self.model = model
        graph = model.graph
        self.inits = {i.name: i for i in graph.initializer}
        self.constants: dict[str, np.ndarray] = {}
        for node in graph.node:
            if node.op_type == "Constant" and node.output:
                for attribute in node.attribute:
                    if attribute.name == "value":
                        self.constants[node.output[0]] = numpy_helper.to_array(attribute.t)
        self.producer = {name: node for node in graph.node for name in node.output}
        self.readers: dict[str, list] = {}
        for node in graph.node:
            for index, name in enumerate(node.input):
                if name:
                    self.readers.setdefault(name, []).append((node, index))
        self.type_error: str | None = None
        if all(node.domain in ("", "ai.onnx") for node in graph.node):  # the checker knows no custom op
            try:  # full check: every op's type constraints, with strict shape inference
                onnx.checker.check_model(model, full_check=True)
            except Exception as exc:  # ValidationError, InferenceError: one long message each
                self.type_error = " ".join(str(exc).split())[:300]
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
        self.types: dict[str, int] = {}
        self.shapes: dict[str, list] = {}
        for info in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
            tensor = info.type.tensor_type
            self.types[info.name] = tensor.elem_type
            if tensor.HasField("shape"):
                self.shapes[info.name] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                                          for d in tensor.shape.dim]
        for name, init in self.inits.items():
            self.types[name] = init.data_type
            self.shapes[name] = list(init.dims)

    def const(self, name: str) -> np.ndarray | None:
        """The value of a constant tensor (initializer or Constant node), else None."""
        from onnx import numpy_helper

        if name in self.inits:
            return numpy_helper.to_array(self.inits[name])
        return self.constants.get(name)

    def is_const(self, name: str) -> bool:
        return name in self.inits or name in self.constants


def attr(node, name: str, default: Any = None) -> Any:
    """A node attribute's value (strings decoded), or ``default``."""
    from onnx import helper

    for attribute in node.attribute:
        if attribute.name == name:
            value = helper.get_attribute_value(attribute)
            return value.decode() if isinstance(value, bytes) else value
    return default


def dtype_name(code: int | None) -> str:
    """``1`` -> ``FLOAT``: the ONNX type names messages use."""
    return T.DTYPE_NAMES.get(code or 0, f"type {code}")
