"""The Q/DQ rules of TensorRT's explicit quantization, as a mixin of the rule checker.

Sources: onnx-tensorrt ``docs/operators.md`` (DequantizeLinear reads INT8/FP8/INT4, zero
points must be 0) and its Q/DQ importer ``QuantDequantLinearHelper`` (scales constant and
positive, per-axis scales only for weights, scale count equal to the axis length); the
TensorRT developer guide's "Explicit Quantization" chapter for the weight axis that
indexes the output channels.
"""

from __future__ import annotations

import numpy as np

from segprune.export import trt_ops as T
from segprune.export.trt_graph import attr, dtype_name


class QdqRules:
    """Rules for QuantizeLinear/DequantizeLinear nodes; mixed into the checker (needs ``self.g``, ``self.add``)."""

    def rule_QuantizeLinear(self, node) -> None:
        code = self.g.types.get(node.input[0])
        if code and code not in T.FLOATS:
            self.add("q-input-type", node, f"quantizes a {dtype_name(code)} tensor; TensorRT quantizes FP32/FP16/BF16 "
                                           "only", "operators")
        self._qdq_common(node)

    def rule_DequantizeLinear(self, node) -> None:
        code = self.g.types.get(node.input[0])
        if code and code not in T.DQ_INPUT_TYPES:
            hint = (" (an int32 bias: quantize with QuantizeBias=False and leave biases float)" if code == 6 else
                    " (uint8: use symmetric int8)" if code == 2 else "")
            self.add("dq-input-type", node, f"dequantizes a {dtype_name(code)} tensor{hint}; TensorRT dequantizes "
                                            "INT8, FP8 and INT4 only", "operators")
        self._qdq_common(node)

    def _qdq_common(self, node) -> None:
        scale_name = node.input[1] if len(node.input) > 1 else ""
        scale = self.g.const(scale_name)
        if scale is None:
            self.add("qdq-scale", node, f"scale {scale_name!r} is not a constant; TensorRT needs static, "
                                        "positive scales", "qdq")
        elif not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
            self.add("qdq-scale", node, f"scale {scale_name!r} has values <= 0 or non-finite (min {float(scale.min()):g}); "
                                        "TensorRT requires every scale to be positive", "qdq")
        if len(node.input) > 2 and node.input[2]:
            zero = self.g.const(node.input[2])
            code = self.g.types.get(node.input[2])
            if zero is None:
                self.add("qdq-zero-point", node, f"zero point {node.input[2]!r} is not a constant; TensorRT needs a "
                                                 "constant zero point of 0 (symmetric quantization)", "operators")
            elif np.any(zero != 0):
                self.add("qdq-zero-point", node, f"zero point {node.input[2]!r} is not all 0 (max {int(np.abs(zero).max())}): "
                                                 "TensorRT quantizes symmetrically only; calibrate with symmetric "
                                                 "activations and weights", "operators")
            if node.op_type == "QuantizeLinear" and code == 2:
                self.add("qdq-zero-point", node, "zero point is UINT8; TensorRT quantizes to INT8 (FP8, INT4): use "
                                                 "QuantType.QInt8", "qdq")
        if scale is not None and scale.size > 1:
            self._per_channel(node, scale)

    def _per_channel(self, node, scale: np.ndarray) -> None:
        data = node.input[0]
        rank = len(self.g.shapes.get(data) or [])
        axis = int(attr(node, "axis", 1))
        axis = axis + rank if axis < 0 and rank else axis
        if scale.ndim != 1:
            return  # blocked quantization: not written by segprune, checked by TensorRT itself
        producer = self.g.producer.get(data)
        weight = self.g.is_const(data) or (producer is not None and producer.op_type == "QuantizeLinear"
                                           and self.g.is_const(producer.input[0]))
        if not weight:
            self.add("qdq-per-channel-activation", node, f"per-channel scales on {data!r}, which is not a constant "
                                                         "weight; TensorRT quantizes activations per tensor", "qdq")
            return
        dims = self.g.shapes.get(data) or []
        if dims and 0 <= axis < len(dims) and isinstance(dims[axis], int) and dims[axis] != scale.size:
            self.add("qdq-axis", node, f"{scale.size} scales for axis {axis} of size {dims[axis]}", "qdq")
        if node.op_type != "DequantizeLinear":
            return
        for reader, index in self.g.readers.get(node.output[0], []):
            want = self._output_axis(reader, index, rank)
            if want is not None and axis != want:
                self.add("qdq-axis", node, f"per-channel scales along axis {axis} of the {reader.op_type} operand "
                                           f"#{index} ({reader.name!r}); its output axis is {want}: quantize it "
                                           "per tensor or along the output axis", "qdq-guide")

    @staticmethod
    def _output_axis(reader, index: int, rank: int) -> int | None:
        """The axis of a weight operand that indexes the op's output channels (None: no rule for this use)."""
        if reader.op_type == "Conv" and index == 1:
            return 0
        if reader.op_type == "ConvTranspose" and index == 1:
            return 1
        if reader.op_type == "MatMul" and rank >= 2:
            return rank - 1 if index == 1 else rank - 2
        if reader.op_type == "Gemm" and index == 1:
            return 0 if attr(reader, "transB", 0) else 1
        return None
