"""The TensorRT rule check: each rule caught in a small planted graph whose clean twin passes.

Every graph here is built with onnx.helper in a few lines; for each rule the test builds the
same graph with and without the violation, so a check that reported nothing (or everything)
would fail it.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from segprune.export.trt_rules import Violation, check_model, main

F, F16, I8, I32, U8 = TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.INT8, TensorProto.INT32, TensorProto.UINT8


def _model(nodes, inputs, outputs, inits=(), opset=18, ir=10, domains=()):
    graph = helper.make_graph(nodes, "planted", inputs, outputs, initializer=list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset),
                                                    *[helper.make_opsetid(d, 1) for d in domains]])
    model.ir_version = ir
    return model


def _io(name, elem=F, shape=(1, 3, 8, 8)):
    return helper.make_tensor_value_info(name, elem, list(shape))


def _t(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def _rules(model) -> set[str]:
    return {v.rule for v in check_model(model)}


def _relu(**kw):
    return _model([helper.make_node("Relu", ["x"], ["y"], name="act")], [_io("x")], [_io("y")], **kw)


def test_opset_and_ir_version():
    assert _rules(_relu()) == set()
    assert _rules(_relu(opset=21)) == {"opset"}
    assert _rules(_relu(opset=8)) == {"opset"}
    assert _rules(_relu(ir=11)) == {"ir-version"}


def test_unsupported_and_custom_ops_are_named():
    det = _model([helper.make_node("Det", ["x"], ["y"], name="det0")], [_io("x", shape=(2, 4, 4))],
                 [_io("y", shape=(2,))])
    (violation,) = check_model(det)
    assert (violation.rule, violation.node, violation.op) == ("unsupported-op", "det0", "Det")
    assert "operators.md" in violation.source and "det0" in str(violation)
    custom = _model([helper.make_node("Fancy", ["x"], ["y"], name="f0", domain="com.example")], [_io("x")],
                    [_io("y")], domains=("com.example",))
    assert {v.rule for v in check_model(custom)} == {"custom-domain"}


def test_network_io_types():
    assert _rules(_model([helper.make_node("Relu", ["x"], ["y"])], [_io("x", TensorProto.DOUBLE)],
                         [_io("y", TensorProto.DOUBLE)])) == {"io-type"}


def test_graph_that_does_not_type_check():
    bad = _model([helper.make_node("Add", ["x", "h"], ["y"], name="mix")], [_io("x"), _io("h", F16)], [_io("y")])
    assert "type-check" in _rules(bad)
    good = _model([helper.make_node("Add", ["x", "h"], ["y"], name="mix")], [_io("x"), _io("h")], [_io("y")])
    assert _rules(good) == set()


def _conv_qdq(*, weight_axis=0, zero=0, scale=0.02, bias_int32=False, act_zero_type=I8, act_per_channel=False):
    """x -> Q -> DQ -> Conv(DQ(w int8), [DQ(b int32)]) -> y: the form onnxruntime writes."""
    w = np.ones((4, 3, 3, 3), np.int8)
    w_scale = np.full(w.shape[weight_axis], 0.01, np.float32)
    act_scale = np.full(3, scale, np.float32) if act_per_channel else np.float32(scale)
    act_zero = np.zeros(3 if act_per_channel else (), np.int8 if act_zero_type == I8 else np.uint8) + zero
    inits = [_t("w_q", w), _t("w_s", w_scale), _t("w_z", np.zeros_like(w_scale, np.int8)), _t("a_s", act_scale),
             _t("a_z", act_zero)]
    axis = {"axis": 1} if act_per_channel else {}
    nodes = [helper.make_node("QuantizeLinear", ["x", "a_s", "a_z"], ["xq"], name="q_x", **axis),
             helper.make_node("DequantizeLinear", ["xq", "a_s", "a_z"], ["xd"], name="dq_x", **axis),
             helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["wd"], name="dq_w", axis=weight_axis)]
    conv_in = ["xd", "wd"]
    if bias_int32:
        inits += [_t("b_q", np.ones(4, np.int32)), _t("b_s", np.full(4, 2e-4, np.float32)),
                  _t("b_z", np.zeros(4, np.int32))]
        nodes.append(helper.make_node("DequantizeLinear", ["b_q", "b_s", "b_z"], ["bd"], name="dq_bias", axis=0))
        conv_in.append("bd")
    nodes.append(helper.make_node("Conv", conv_in, ["y"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
    return _model(nodes, [_io("x")], [_io("y", shape=(1, 4, 8, 8))], inits)


def test_clean_qdq_conv_passes():
    assert check_model(_conv_qdq()) == []


def test_int32_bias_dequantize_is_refused_with_the_fix():
    violations = [v for v in check_model(_conv_qdq(bias_int32=True)) if v.rule == "dq-input-type"]
    assert [v.node for v in violations] == ["dq_bias"]
    assert "INT32" in violations[0].message and "QuantizeBias=False" in violations[0].message


def test_zero_point_must_be_zero_and_int8():
    assert "qdq-zero-point" in _rules(_conv_qdq(zero=3))
    uint8 = _rules(_conv_qdq(act_zero_type=U8))
    assert {"qdq-zero-point", "dq-input-type"} <= uint8


def test_scales_must_be_positive():
    assert "qdq-scale" in _rules(_conv_qdq(scale=0.0))
    assert "qdq-scale" in _rules(_conv_qdq(scale=-1.0))


def test_conv_weight_scales_on_the_output_axis_only():
    v = [v for v in check_model(_conv_qdq(weight_axis=1)) if v.rule == "qdq-axis"]
    assert v and v[0].node == "dq_w" and "output axis is 0" in v[0].message


def test_per_channel_activation_quantization_is_refused():
    assert "qdq-per-channel-activation" in _rules(_conv_qdq(act_per_channel=True))


def _matmul(axis: int | None, left: bool = True, dynamic: bool = False):
    """A_h @ X (left constant, spectral truncation's first product) or X @ B, the constant int8 with Q/DQ."""
    a = np.ones((4, 8), np.int8) if left else np.ones((8, 4), np.int8)
    scale = np.full(a.shape[axis], 0.01, np.float32) if axis is not None else np.float32(0.01)
    attrs = {"axis": axis} if axis is not None else {}
    nodes = [helper.make_node("DequantizeLinear", ["a_q", "a_s"], ["a"], name="dq_a", **attrs),
             helper.make_node("MatMul", ["a", "x"] if left else ["x", "a"], ["y"], name="mm")]
    hw = ("H", "W") if dynamic else (8, 8)
    out = (1, 3, 4, hw[1]) if left else (1, 3, hw[0], 4)
    return _model(nodes, [_io("x", shape=(1, 3, *hw))], [_io("y", shape=out)], [_t("a_q", a), _t("a_s", scale)])


def test_left_matmul_constant_per_channel_on_the_reduction_axis_is_refused():
    # onnxruntime's default for a MatMul constant is axis 1: for A in A @ X that is the reduction axis
    v = [v for v in check_model(_matmul(axis=1)) if v.rule == "qdq-axis"]
    assert v and v[0].node == "dq_a" and "operand #0" in v[0].message
    assert check_model(_matmul(axis=None)) == []  # per tensor: fine
    assert check_model(_matmul(axis=0)) == []  # along the output rows: fine
    assert check_model(_matmul(axis=1, left=False)) == []  # X @ B with B per column: fine
    assert "qdq-axis" in _rules(_matmul(axis=0, left=False))


def test_constant_matrix_against_a_dynamic_dimension():
    v = [v for v in check_model(_matmul(axis=None, dynamic=True)) if v.rule == "matmul-dynamic-constant"]
    assert v and v[0].node == "mm" and "'H'" in v[0].message


def test_matmul_operands():
    scalar = _model([helper.make_node("MatMul", ["x", "s"], ["y"], name="mm")], [_io("x", shape=(4,)), _io("s", shape=())],
                    [_io("y", shape=(4,))])
    assert "matmul-rank" in _rules(scalar)
    ints = _model([helper.make_node("MatMul", ["x", "b"], ["y"], name="mm")], [_io("x", I32, (2, 4))],
                  [_io("y", I32, (2, 3))], [_t("b", np.ones((4, 3), np.int32))])
    assert "matmul-type" in _rules(ints)


def _resize(**attrs):
    inits = [_t("scales", np.array([1, 1, 2, 2], np.float32))]
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], name="up", **attrs)
    return _model([node], [_io("x")], [_io("y", shape=(1, 3, 16, 16))], inits)


@pytest.mark.parametrize("attrs, rule", [
    ({"mode": "cubic"}, "resize-mode"),
    ({"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize"}, "resize-coordinates"),
    ({"mode": "linear", "antialias": 1}, "resize-antialias"),
    ({"mode": "nearest", "coordinate_transformation_mode": "tf_half_pixel_for_nn", "nearest_mode": "floor"},
     "resize-nearest-mode"),
])
def test_resize_forms_tensorrt_does_not_implement(attrs, rule):
    assert _rules(_resize(mode="linear", coordinate_transformation_mode="half_pixel")) == set()
    assert rule in _rules(_resize(**attrs))


def test_shape_arithmetic_needs_constant_axes():
    nodes = [helper.make_node("Shape", ["x"], ["s"], start=0, end=1),
             helper.make_node("Unsqueeze", ["x", "s"], ["y"], name="unsq")]
    bad = _model(nodes, [_io("x", shape=(1, 3, 8))], [helper.make_tensor_value_info("y", F, None)])
    v = [v for v in check_model(bad) if v.rule == "constant-axes"]
    assert v and v[0].node == "unsq"
    good = _model([helper.make_node("Unsqueeze", ["x", "ax"], ["y"], name="unsq")], [_io("x", shape=(1, 3, 8))],
                  [_io("y", shape=(1, 1, 3, 8))], [_t("ax", np.array([1], np.int64))])
    assert _rules(good) == set()


def test_pooling_limits():
    node = helper.make_node("MaxPool", ["x"], ["y", "idx"], name="pool", kernel_shape=[2, 2], strides=[2, 2])
    with_indices = _model([node], [_io("x")], [_io("y", shape=(1, 3, 4, 4)), _io("idx", TensorProto.INT64, (1, 3, 4, 4))])
    assert "pool-indices" in _rules(with_indices)


def test_violation_reads_as_one_line_and_cli_exit_codes(tmp_path, capsys):
    import onnx

    v = Violation("resize-mode", "up", "Resize", "mode 'cubic'", "doc")
    assert str(v) == "node 'up' (Resize) breaks TensorRT rule resize-mode: mode 'cubic' [doc]"
    onnx.save(_resize(mode="cubic"), tmp_path / "bad.onnx")
    onnx.save(_resize(mode="linear"), tmp_path / "good.onnx")
    assert main([str(tmp_path / "good.onnx")]) == 0
    assert main([str(tmp_path / "bad.onnx")]) == 1
    out = capsys.readouterr().out
    assert "PASSED" in out and "FAILED" in out and "resize-mode" in out
