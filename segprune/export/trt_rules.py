"""Check an ONNX graph against the rules TensorRT's parser and strongly typed builder impose, on any CPU.

TensorRT cannot be installed on every machine segprune runs on, so a graph TensorRT would
refuse must be caught before anyone tries to build it. This module reads the graph with
onnx alone and reports every violation of a *published* rule, naming the node, the rule
and where the rule comes from (:data:`segprune.export.trt_ops.SOURCES`):

* opset and IR version within what TensorRT 10.0+ parses;
* every node in the default ONNX domain and in onnx-tensorrt's supported-operator list,
  with the documented input types;
* Q/DQ pairs in the form explicit quantization needs: 8-bit (not int32, not uint8)
  DequantizeLinear inputs, float QuantizeLinear inputs, constant all-zero zero points,
  constant positive scales, per-channel scales only on constant weights and only along
  the weight's output axis (Conv axis 0, ConvTranspose axis 1, right-hand MatMul constant
  its last axis, left-hand MatMul constant its second-to-last);
* Resize modes, coordinate modes and attributes the parser implements;
* shape arithmetic that survives dynamic H/W: constant ``axes`` inputs, and no constant
  matrix contracted against a dimension that varies with the input;
* MatMul operands of rank >= 1 and floating type;
* network inputs and outputs of types TensorRT has; a graph that type-checks (a strongly
  typed network runs every tensor in the type the graph gives it).

It is a check of published rules, not a substitute for building an engine: a graph that
passes can still fail in TensorRT for reasons no document lists (a missing kernel for a
shape, workspace), and only a build on a GPU (``segprune export --tensorrt``) settles it.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from segprune.export import trt_ops as T
from segprune.export.trt_graph import GraphFacts, attr, dtype_name
from segprune.export.trt_qdq_rules import QdqRules


@dataclass(frozen=True)
class Violation:
    """One broken rule: which node, which rule, what to do, and the document that states the rule."""

    rule: str
    node: str
    op: str
    message: str
    source: str

    def __str__(self) -> str:
        where = f"node {self.node!r} ({self.op})" if self.node else "the model"
        return f"{where} breaks TensorRT rule {self.rule}: {self.message} [{self.source}]"

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


class _Checker(QdqRules):
    def __init__(self, model) -> None:
        self.g = GraphFacts(model)
        self.found: list[Violation] = []
        dims = [self.g.shapes.get(i.name) or [] for i in model.graph.input]
        self.dynamic_input = any(not isinstance(d, int) for shape in dims for d in shape[2:])

    def add(self, rule: str, node, message: str, source: str) -> None:
        name = (node.name or f"#{list(self.g.model.graph.node).index(node)}") if node is not None else ""
        self.found.append(Violation(rule, name, node.op_type if node is not None else "", message, T.SOURCES[source]))

    # ------------------------------------------------------------------ model level
    def model_rules(self) -> None:
        model = self.g.model
        opset = next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        if not T.MIN_OPSET <= opset <= T.MAX_OPSET:
            self.add("opset", None, f"default-domain opset {opset} is outside {T.MIN_OPSET}..{T.MAX_OPSET}: "
                                    f"re-export with --opset {min(max(opset, T.MIN_OPSET), T.MAX_OPSET)}", "opset")
        if model.ir_version > T.MAX_IR_VERSION:
            self.add("ir-version", None, f"IR version {model.ir_version} is newer than {T.MAX_IR_VERSION}: set "
                                         f"model.ir_version = {T.MAX_IR_VERSION} (or export with onnx<=1.16)", "ir")
        if self.g.type_error:
            self.add("type-check", None, f"the graph fails onnx.checker's full check ({self.g.type_error}); a "
                                         "strongly typed network needs every tensor's type fixed by the graph",
                     "typing")
        for info in list(model.graph.input) + list(model.graph.output):
            code = info.type.tensor_type.elem_type
            if code not in T.IO_TYPES:
                self.add("io-type", None, f"network input/output {info.name!r} is {dtype_name(code)}, which TensorRT "
                                          "has no tensors of: cast it to FLOAT in the graph", "operators")

    # ------------------------------------------------------------------ node level
    def node_rules(self) -> None:
        for node in self.g.model.graph.node:
            if node.domain not in ("", "ai.onnx"):
                self.add("custom-domain", node, f"op {node.domain}::{node.op_type} is outside the ONNX domain: "
                                                "TensorRT parses it only through a plugin of that name", "operators")
                continue
            if node.op_type not in T.SUPPORTED_OPS:
                self.add("unsupported-op", node, f"{node.op_type} has no TensorRT importer: replace it with "
                                                 "supported ops before export", "operators")
                continue
            if node.op_type in T.FLOAT_ONLY_OPS and node.input:
                code = self.g.types.get(node.input[0])
                if code and code not in T.FLOATS:
                    self.add("op-type", node, f"input {node.input[0]!r} is {dtype_name(code)}; TensorRT runs "
                                              f"{node.op_type} on FP32/FP16/BF16 only", "operators")
            axes_index = T.CONSTANT_AXES_OPS.get(node.op_type)
            if axes_index is not None and len(node.input) > axes_index and node.input[axes_index]:
                if not self.g.is_const(node.input[axes_index]):
                    self.add("constant-axes", node, f"its axes input {node.input[axes_index]!r} is computed; "
                                                    "TensorRT needs it constant (an initializer)", "operators")
            method = getattr(self, f"rule_{node.op_type}", None)
            if method is not None:
                method(node)

    def rule_Resize(self, node) -> None:
        mode = attr(node, "mode", "nearest")
        if mode not in T.RESIZE_MODES:
            self.add("resize-mode", node, f"mode {mode!r}; TensorRT documents nearest and linear only", "resize")
        coord = attr(node, "coordinate_transformation_mode", "half_pixel")
        if coord not in T.RESIZE_COORDINATE_MODES:
            self.add("resize-coordinates", node, f"coordinate_transformation_mode {coord!r} is not one of "
                                                 f"{', '.join(sorted(T.RESIZE_COORDINATE_MODES))}", "resize")
        nearest = attr(node, "nearest_mode", "round_prefer_floor")
        if mode == "nearest" and nearest not in T.RESIZE_NEAREST_MODES:
            self.add("resize-nearest-mode", node, f"nearest_mode {nearest!r} is not supported", "resize")
        if coord == "tf_half_pixel_for_nn" and nearest != "round_prefer_floor":
            self.add("resize-nearest-mode", node, "tf_half_pixel_for_nn needs nearest_mode round_prefer_floor",
                     "resize")
        if attr(node, "antialias", 0):
            self.add("resize-antialias", node, "antialias=1 is not supported: resize without antialiasing",
                     "resize")
        if attr(node, "keep_aspect_ratio_policy", "stretch") != "stretch":
            self.add("resize-aspect", node, "keep_aspect_ratio_policy must be stretch", "resize")
        axes = attr(node, "axes", None)
        if axes is not None and len(set(axes)) != len(axes):
            self.add("resize-axes", node, f"axes {list(axes)} repeat an axis", "resize")
        if axes is not None and len(node.input) > 2 and node.input[2] and list(axes) != list(range(len(axes))):
            self.add("resize-axes", node, "scales given as an input need axes 0..rank-1 in order", "resize")

    def rule_MatMul(self, node) -> None:
        for index, name in enumerate(node.input[:2]):
            dims = self.g.shapes.get(name)
            if dims is not None and len(dims) == 0:
                self.add("matmul-rank", node, f"operand #{index} {name!r} is a scalar; MatMul needs rank >= 1",
                         "matmul")
            code = self.g.types.get(name)
            if code and code not in T.FLOATS:
                self.add("matmul-type", node, f"operand #{index} {name!r} is {dtype_name(code)}; TensorRT multiplies "
                                              "FP32/FP16/BF16 matrices only", "matmul")
        a, b = (self._weight_source(n) for n in node.input[:2])
        da, db = self.g.shapes.get(node.input[0]), self.g.shapes.get(node.input[1])
        if da and db and len(da) >= 1 and len(db) >= 1:
            ka, kb = da[-1], db[-2] if len(db) >= 2 else db[0]
            for const, k in ((a, kb), (b, ka)):
                if const and self.dynamic_input and not isinstance(k, int):
                    self.add("matmul-dynamic-constant", node, f"a constant matrix is contracted against dimension "
                                                              f"{k!r}, which varies with the input: the product fails "
                                                              "at any other size; export at a fixed --input-size",
                             "dynamic")

    def _weight_source(self, name: str) -> bool:
        """Whether ``name`` is a constant, directly or through a DequantizeLinear of a constant."""
        if self.g.is_const(name):
            return True
        node = self.g.producer.get(name)
        return node is not None and node.op_type == "DequantizeLinear" and self.g.is_const(node.input[0])

    def rule_MaxPool(self, node) -> None:
        self._pool(node)
        if len(node.output) > 1 and node.output[1]:
            self.add("pool-indices", node, "MaxPool's Indices output is not supported", "operators")

    def rule_AveragePool(self, node) -> None:
        self._pool(node)

    def _pool(self, node) -> None:
        kernel = attr(node, "kernel_shape", [])
        if len(kernel) not in (2, 3):
            self.add("pool-dims", node, f"{len(kernel)}-D pooling; TensorRT pools in 2-D or 3-D only", "operators")
        dilations = attr(node, "dilations", None)
        if dilations and any(d != 1 for d in dilations):
            self.add("pool-dilations", node, f"dilations {list(dilations)}; TensorRT needs them all 1", "operators")


def check_model(model) -> list[Violation]:
    """Every violation in an ONNX ``ModelProto`` (empty when it passes)."""
    checker = _Checker(model)
    checker.model_rules()
    checker.node_rules()
    return checker.found


def check_file(path: str | os.PathLike) -> list[Violation]:
    """:func:`check_model` on an ONNX file."""
    from segprune.export.onnx_export import load_onnx

    return check_model(load_onnx(Path(path)))


def summary(violations: list[Violation], name: str) -> str:
    """One line: the first violation and how many more there are."""
    if not violations:
        return f"{name}: TensorRT rules ok"
    more = f" (and {len(violations) - 1} more, listed in export.json)" if len(violations) > 1 else ""
    return f"{name}: {violations[0]}{more}"


def main(argv: list[str] | None = None) -> int:
    """``python -m segprune.export.trt_rules MODEL.onnx ...``: print every violation; exit 1 if any."""
    import sys

    from segprune.errors import SegpruneError

    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print("usage: python -m segprune.export.trt_rules MODEL.onnx [...]", file=sys.stderr)
        return 2
    worst = 0
    for path in paths:
        try:
            violations = check_file(path)
        except SegpruneError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return exc.exit_code
        for violation in violations:
            print(f"{path}: {violation}")
        print(f"{path}: {'FAILED' if violations else 'PASSED'} ({len(violations)} TensorRT rule violations)")
        worst = max(worst, 1 if violations else 0)
    return worst


if __name__ == "__main__":
    raise SystemExit(main())
