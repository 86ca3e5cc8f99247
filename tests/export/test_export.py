"""ONNX export: parity, precision in the graph, dynamic shapes that really follow the input, bad input."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import onnx
import pytest
import torch

from segprune.errors import ConfigError, ExportError, RegressionFound
from segprune.export import ExportConfig, ExportPlan, OnnxRunner, export_model, load_onnx, read_metadata
from segprune.models import load_checkpoint
from tests.helpers import run_cli, tiny_model, two_conv_model

pytestmark = pytest.mark.slow


def test_export_writes_each_precision_with_parity_at_two_sizes(tiny_export):
    manifest = json.loads((tiny_export / "export.json").read_text())
    assert set(manifest["files"]) == {"fp32", "fp16", "int8"} and manifest["failed"] == []
    for precision, entry in manifest["files"].items():
        assert (tiny_export / entry["file"]).is_file()
        sizes = [c["input_size"] for c in entry["parity"]]
        assert sizes[0] == [32, 48] and len(sizes) == 2  # dynamic H/W: checked at a second size too
        meta = read_metadata(load_onnx(tiny_export / entry["file"]))
        assert meta["precision"] == precision and meta["config"]["decoder_keep"] == 0.5
    fp32 = manifest["files"]["fp32"]["parity"][0]
    assert fp32["agreement"] >= 0.9999 and fp32["max_abs_diff"] < 1e-3
    assert not [p.name for p in tiny_export.iterdir() if p.name.startswith(".")]  # no temp files left


@pytest.mark.parametrize("size", [(40, 56), (72, 100), (31, 45)])
def test_dynamic_graph_computes_the_truncated_grid_from_the_input(tiny_checkpoint, tiny_export, size):
    # A tracer that froze ceil(keep * H/4) at the example size gives wrong logits here.
    model, _ = load_checkpoint(tiny_checkpoint)
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        ref = model(x).numpy()
    out = OnnxRunner(tiny_export / "model.fp32.onnx")(x.numpy())
    assert out.shape == ref.shape
    assert np.abs(out - ref).max() < 1e-3


def test_runner_turns_thread_spinning_off_unless_asked(tiny_export):
    # Interleaved timing: a session's spinning pool would hold the cores the next model is timed on.
    def spinning(runner):
        try:
            return runner.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")
        except RuntimeError:  # not set: onnxruntime's default, which spins
            return "1"

    quiet = OnnxRunner(tiny_export / "model.fp32.onnx", threads=2)
    assert spinning(quiet) == "0" and quiet.info()["spinning"] is False
    busy = OnnxRunner(tiny_export / "model.fp32.onnx", threads=2, spin=True)
    assert busy.info()["spinning"] is True
    assert spinning(busy) == "1"


def test_int8_graph_has_symmetric_qdq_and_fp16_keeps_fp32_io(tiny_export):
    int8 = load_onnx(tiny_export / "model.int8.onnx")
    qdq = [n for n in int8.graph.node if n.op_type == "QuantizeLinear"]
    assert qdq
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in int8.graph.initializer}
    zero_points = [inits[n.input[2]] for n in qdq if len(n.input) > 2 and n.input[2] in inits]
    assert zero_points and all(np.all(z == 0) for z in zero_points)
    fp16 = load_onnx(tiny_export / "model.fp16.onnx")
    assert fp16.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert fp16.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in fp16.graph.initializer)


def test_size_not_divisible_by_output_stride_names_the_sizes_that_work():
    with pytest.raises(ConfigError, match=r"not divisible by the model's output stride 16: use 32x48 or 48x48"):
        ExportConfig(input_size=(33, 48)).validate(tiny_model())
    ExportConfig(input_size=(33, 48), allow_unaligned=True).validate(tiny_model())


def test_dynamic_hw_refused_for_area_and_spectral_truncation():
    for mode in ("area", "spectral"):
        with pytest.raises(ConfigError, match="fixed size only"):
            ExportConfig((32, 48), dynamic=frozenset({"hw"})).validate(tiny_model(decoder_keep=0.5, decoder_resize=mode))
    ExportConfig((32, 48), dynamic=frozenset({"batch"})).validate(tiny_model(decoder_keep=0.5, decoder_resize="area"))


def test_failed_parity_keeps_the_file_under_a_name_that_says_so(tmp_path):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)

    def batches(size, n):
        return [rng.standard_normal((n, 3, *size)).astype(np.float32)]

    def calib(size):
        return [rng.standard_normal((1, 3, *size)).astype(np.float32) for _ in range(2)]

    # int8 never agrees perfectly with fp32 on random logits: demand it, and it must fail
    with pytest.raises(RegressionFound, match="parity failed for int8"):
        export_model(two_conv_model(), tmp_path, ExportConfig((16, 16)), ExportPlan(("fp32", "int8"),
                     min_agreement={"int8": 1.0}), batches, calib, log=lambda _m: None)
    assert (tmp_path / "model.int8.PARITY-FAILED.onnx").is_file() and not (tmp_path / "model.int8.onnx").exists()
    manifest = json.loads((tmp_path / "export.json").read_text())
    assert manifest["failed"] == ["int8"] and manifest["files"]["fp32"]["passed"]


def test_corrupt_and_truncated_onnx_files_give_one_line(tmp_path, tiny_export):
    data = (tiny_export / "model.fp32.onnx").read_bytes()
    bad = tmp_path / "cut.onnx"
    bad.write_bytes(data[: len(data) // 3])
    code, _, err = run_cli(["bench", bad, "--no-accuracy", "--runs", "1", "--warmup", "0"])
    assert code == 2 and "not a readable ONNX file" in err and len(err.strip().splitlines()) == 1


def test_op_the_backend_cannot_run_is_named(tmp_path):
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("NoSuchOp", ["image"], ["logits"], domain="com.example")], "g",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3, 8, 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.example", 1)])
    path = tmp_path / "odd.onnx"
    onnx.save(model, path)
    with pytest.raises(ExportError, match="cannot run odd.onnx"):
        OnnxRunner(path)


def test_export_cli_errors(tmp_path, tiny_checkpoint):
    code, _, err = run_cli(["export", tiny_checkpoint, "--out", tmp_path, "--input-size", "30x48"])
    assert code == 2 and "use 32x48 or 16x48 (nearest first)" in err
    code, _, err = run_cli(["export", tiny_checkpoint, "--out", tmp_path, "--precision", "fp8"])
    assert code == 2 and "fp8 is not one of" in err
    code, _, err = run_cli(["export", tiny_checkpoint, "--out", tmp_path, "--dynamic", "depth"])
    assert code == 2 and "not an axis" in err


def test_export_cli_replaces_a_previous_export_only_when_asked(tmp_path, tiny_checkpoint):
    out = tmp_path / "onnx"
    args = ["export", tiny_checkpoint, "--out", out, "--input-size", "32x48", "--precision", "fp32", "--quiet"]
    assert run_cli(args)[0] == 0
    before = (out / "model.fp32.onnx").read_bytes()
    code, _, err = run_cli(args)
    assert code == 2 and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert (out / "model.fp32.onnx").read_bytes() == before
    assert run_cli([*args, "--overwrite"])[0] == 0 and (out / "export.json").is_file()


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None,
                    reason="TensorRT is installed here: the refusal is for machines without it")
def test_export_tensorrt_without_tensorrt_is_refused_before_any_work(tmp_path, tiny_checkpoint):
    code, _, err = run_cli(["export", tiny_checkpoint, "--out", tmp_path / "trt", "--tensorrt"])
    assert code == 2 and "pip install 'segprune[trt]'" in err and not (tmp_path / "trt").exists()


def test_dan_exports_with_dynamic_shapes(tmp_path):
    # DAN is the second target architecture: its decoder grid must stay symbolic too
    torch.manual_seed(0)
    model = tiny_model(arch="dan_resnet18", decoder_keep=0.5, decoder_resize="bilinear").eval()
    from segprune.export import export_onnx

    export_onnx(model, tmp_path / "dan.onnx", ExportConfig((64, 96), dynamic=frozenset({"batch", "hw"})))
    runner = OnnxRunner(tmp_path / "dan.onnx")
    for shape in ((1, 3, 64, 96), (2, 3, 72, 100)):
        x = torch.randn(*shape)
        with torch.no_grad():
            ref = model(x).numpy()
        assert np.abs(runner(x.numpy()) - ref).max() < 1e-3
