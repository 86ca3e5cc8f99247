"""segprune's own graphs in the form TensorRT builds: int8 Q/DQ, fp16 casts, spectral MatMuls, the export gate.

These read the files ``segprune export`` writes (the trained tiny model's fp32/fp16/int8
graphs with dynamic batch and H/W, and a spectrally truncated model's fixed-size graphs) and
check both the specific defects and the whole TensorRT rule check on them.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from segprune.errors import ExportError, RegressionFound
from segprune.export import ExportConfig, ExportPlan, export_model, load_onnx
from segprune.export.graph_edits import drop_cast_round_trips, raise_small_scales
from segprune.export.trt_rules import check_file
from tests.helpers import run_cli, tiny_model


def _dq_inputs(model) -> dict[str, int]:
    inits = {i.name: i for i in model.graph.initializer}
    return {n.name: inits[n.input[0]].data_type for n in model.graph.node
            if n.op_type == "DequantizeLinear" and n.input[0] in inits}


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_own_dynamic_exports_pass_the_tensorrt_check(tiny_export, precision):
    manifest = json.loads((tiny_export / "export.json").read_text())
    entry = manifest["files"][precision]
    assert entry["tensorrt_check"] == {"checked": True, "passed": True, "violations": []}
    assert check_file(tiny_export / entry["file"]) == []


@pytest.mark.slow
def test_int8_graph_has_no_int32_dequantize_no_output_qdq_and_a_float_stem(tiny_export):
    model = load_onnx(tiny_export / "model.int8.onnx")
    inits = {i.name: i for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    biased = [n for n in convs if len(n.input) > 2 and n.input[2]]
    assert biased, "a trained model's folded BatchNorm gives the convolutions biases: the test needs them"
    # defect 1: biases stay float initializers; every DequantizeLinear reads int8
    assert all(n.input[2] in inits and inits[n.input[2]].data_type in (TensorProto.FLOAT, TensorProto.FLOAT16)
               for n in biased)
    assert set(_dq_inputs(model).values()) == {TensorProto.INT8}
    # no Q/DQ on the outputs of the quantized ops
    assert not [n.name for n in model.graph.node
                if n.op_type == "QuantizeLinear" and getattr(producer.get(n.input[0]), "op_type", "") in
                ("Conv", "MatMul", "Gemm")]
    # defect 3: the stem convolution (the first one, 3 input channels) runs unquantized
    stem = convs[0]
    assert numpy_helper.to_array(inits[stem.input[1]]).shape[1] == 3
    assert stem.input[1] in inits and getattr(producer.get(stem.input[0]), "op_type", None) != "DequantizeLinear"
    manifest = json.loads((tiny_export / "export.json").read_text())
    assert manifest["files"]["int8"]["int8"]["unquantized_stem"] == [stem.name]


@pytest.mark.slow
def test_int8_keeps_the_rest_in_fp16_with_fp16_scales(tiny_export):
    model = load_onnx(tiny_export / "model.int8.onnx")
    inits = {i.name: i for i in model.graph.initializer}
    scales = {inits[n.input[1]].data_type for n in model.graph.node if n.op_type == "DequantizeLinear"}
    assert scales == {TensorProto.FLOAT16}  # a DQ output is fp16 and feeds its Conv without a Cast
    assert next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == 19
    assert json.loads((tiny_export / "export.json").read_text())["files"]["int8"]["int8"]["rest"] == "fp16"


@pytest.mark.slow
def test_fp16_logits_come_straight_from_the_fp32_resize(tiny_export):
    model = load_onnx(tiny_export / "model.fp16.onnx")
    producer = {o: n for n in model.graph.node for o in n.output}
    assert producer["logits"].op_type == "Resize"
    casts = [n for n in model.graph.node if n.op_type == "Cast"]
    assert not [n.name for n in casts if getattr(producer.get(n.input[0]), "op_type", "") == "Cast"]


def _batches(size, n):
    rng = np.random.default_rng(0)
    return [rng.standard_normal((n, 3, *size)).astype(np.float32)]


def _calib(size):
    rng = np.random.default_rng(1)
    return [rng.standard_normal((1, 3, *size)).astype(np.float32) for _ in range(3)]


@pytest.mark.slow
def test_spectral_truncation_quantizes_the_left_matrix_per_tensor(tmp_path):
    torch.manual_seed(0)
    model = tiny_model(decoder_keep=0.5, decoder_resize="spectral").eval()
    # an untrained model's logits are near-ties: parity is not what this test is about
    plan = ExportPlan(("fp32", "fp16", "int8"), calib_method="minmax", min_agreement={"int8": 0.0, "fp16": 0.0})
    manifest = export_model(model, tmp_path, ExportConfig((32, 48)), plan, _batches, _calib, log=lambda _m: None)
    assert manifest["failed"] == [] and all(f["tensorrt_check"]["passed"] for f in manifest["files"].values())
    int8 = load_onnx(tmp_path / "model.int8.onnx")
    inits = {i.name: i for i in int8.graph.initializer}
    dq_of = {n.output[0]: n for n in int8.graph.node if n.op_type == "DequantizeLinear"}
    matmuls = [n for n in int8.graph.node if n.op_type == "MatMul"]
    assert len(matmuls) == 2
    left, right = dq_of[matmuls[0].input[0]], dq_of[matmuls[1].input[1]]
    assert left.input[0] in inits and numpy_helper.to_array(inits[left.input[1]]).size == 1  # per tensor
    right_scale = numpy_helper.to_array(inits[right.input[1]])
    axis = next(a.i for a in right.attribute if a.name == "axis")
    assert right_scale.size > 1 and axis == len(inits[right.input[0]].dims) - 1  # per output column
    assert manifest["files"]["int8"]["int8"]["per_tensor_matmul_constants"] == [left.input[0].removesuffix("_quantized")]


class _Bicubic(nn.Module):
    """A graph TensorRT's parser refuses: bicubic Resize (TensorRT documents nearest and linear only)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return nn.functional.interpolate(self.conv(x), scale_factor=2, mode="bicubic")


def _bicubic_batches(size, n):
    return _batches(size, n)


@pytest.mark.slow
def test_a_graph_tensorrt_refuses_fails_the_export_naming_node_and_rule(tmp_path):
    torch.manual_seed(0)
    plan = ExportPlan(("fp32", "fp16"), min_agreement={"fp16": 0.0})
    with pytest.raises(RegressionFound, match=r"fp32 breaks TensorRT rule resize-mode at node '.+' \(Resize\)"):
        export_model(_Bicubic(), tmp_path, ExportConfig((16, 16)), plan, _bicubic_batches, log=lambda _m: None)
    # the fp16 file is still made from the fp32 one, and both are kept under names that say why
    for precision in ("fp32", "fp16"):
        assert (tmp_path / f"model.{precision}.TRT-INCOMPATIBLE.onnx").is_file()
        assert not (tmp_path / f"model.{precision}.onnx").exists()
    manifest = json.loads((tmp_path / "export.json").read_text())
    assert manifest["failed"] == ["fp32", "fp16"] and manifest["failures"] == {"fp32": "tensorrt", "fp16": "tensorrt"}
    (violation,) = manifest["files"]["fp32"]["tensorrt_check"]["violations"]
    assert violation["rule"] == "resize-mode" and "operators.md" in violation["source"]
    # opting out writes the file under its usual name
    out = tmp_path / "unchecked"
    manifest = export_model(_Bicubic(), out, ExportConfig((16, 16)), ExportPlan(("fp32",), tensorrt_check=False),
                            _bicubic_batches, log=lambda _m: None)
    assert (out / "model.fp32.onnx").is_file() and manifest["files"]["fp32"]["tensorrt_check"] == {"checked": False}


@pytest.mark.slow
def test_int8_rest_fp32_keeps_opset_and_fp32_scales(tmp_path):
    torch.manual_seed(0)
    plan = ExportPlan(("int8",), calib_method="minmax", min_agreement={"int8": 0.0}, int8_rest="fp32")
    export_model(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1)), tmp_path,
                 ExportConfig((16, 16)), plan, _batches, _calib, log=lambda _m: None)
    model = load_onnx(tmp_path / "model.int8.onnx")
    inits = {i.name: i for i in model.graph.initializer}
    assert {inits[n.input[1]].data_type for n in model.graph.node if n.op_type == "DequantizeLinear"} == {
        TensorProto.FLOAT}
    assert next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == 18


@pytest.mark.slow
def test_manifest_is_written_when_the_engine_build_fails(tmp_path, monkeypatch):
    from segprune.export import tensorrt

    def refuse(*_a, **_k):
        raise ExportError("TensorRT could not build an engine (planted)")

    monkeypatch.setattr(tensorrt, "require_tensorrt", lambda *_a, **_k: None)
    monkeypatch.setattr(tensorrt, "build_engine", refuse)
    with pytest.raises(ExportError, match="planted"):
        export_model(nn.Conv2d(3, 4, 3, padding=1), tmp_path, ExportConfig((16, 16)),
                     ExportPlan(("fp32",), tensorrt=True), _batches, log=lambda _m: None)
    manifest = json.loads((tmp_path / "export.json").read_text())
    assert "planted" in manifest["engine_error"] and manifest["files"]["fp32"]["passed"]


@pytest.mark.slow
def test_cli_opts_out_of_the_tensorrt_check(tiny_checkpoint, tmp_path):
    code, out, err = run_cli(["export", tiny_checkpoint, "--out", tmp_path, "--input-size", "32x48", "--quiet",
                              "--no-tensorrt-check"])
    assert code == 0, err
    manifest = json.loads((tmp_path / "export.json").read_text())
    assert manifest["tensorrt_check"] is False and "skipped" in out
    code, out, err = run_cli(["export", tiny_checkpoint, "--out", tmp_path / "checked", "--input-size", "32x48",
                              "--quiet"])
    assert code == 0, err
    assert json.loads((tmp_path / "checked" / "export.json").read_text())["files"]["fp32"]["tensorrt_check"]["passed"]


# ---------------------------------------------------------------- the graph edits, on hand-built graphs


def test_cast_round_trip_on_the_logits_is_removed():
    nodes = [helper.make_node("Resize", ["x", "", "s"], ["r"], name="up", mode="linear"),
             helper.make_node("Cast", ["r"], ["r16"], name="to16", to=TensorProto.FLOAT16),
             helper.make_node("Cast", ["r16"], ["logits"], name="to32", to=TensorProto.FLOAT)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "s")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    x = np.random.default_rng(0).standard_normal((1, 3, 4, 4)).astype(np.float32)
    assert drop_cast_round_trips(model) == 1
    assert [n.op_type for n in model.graph.node] == ["Resize"] and model.graph.node[0].output[0] == "logits"
    onnx.checker.check_model(model, full_check=True)
    import onnxruntime as ort

    out = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert out.shape == (1, 3, 8, 8) and out.dtype == np.float32


def test_small_scales_are_raised_and_weights_requantized():
    w = np.array([[100], [100]], np.int8).reshape(2, 1, 1, 1)
    scales = np.array([1e-7, 0.5], np.float32)
    nodes = [helper.make_node("DequantizeLinear", ["w", "s"], ["wd"], name="dq", axis=0)]
    graph = helper.make_graph(nodes, "g", [], [helper.make_tensor_value_info("wd", TensorProto.FLOAT, [2, 1, 1, 1])],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(scales, "s")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    assert raise_small_scales(model) == {"scales_raised": 1, "weights_requantized": 1}
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    assert inits["s"][0] == np.float32(2 ** -14) and inits["s"][1] == np.float32(0.5)
    assert inits["w"].reshape(-1).tolist() == [0, 100]  # 100 * 1e-7 is far below one new step: 0
    assert np.float16(inits["s"][0]) > 0
