"""TensorRT build/run: everything that needs no TensorRT runs everywhere; the rest is marked.

Tests marked ``tensorrt`` build real engines, from a tiny Conv+Relu ONNX file and from
segprune's own fp32/fp16/int8 exports with dynamic H/W; they are skipped where TensorRT or
an NVIDIA GPU is missing. No engine is ever faked: the tests without TensorRT
(``test_tensorrt_fakes.py``) stand in for TensorRT's and Polygraphy's *modules* to check
segprune's side of the calls, and say so.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from segprune.errors import BackendError, ExportError
from segprune.export import engine_meta
from segprune.export.engine_meta import (
    EngineMeta,
    check_engine_meta,
    gpu_identity,
    onnx_precision,
    profile_shapes,
    read_engine_meta,
    sidecar_path,
    write_engine_meta,
)
from segprune.export.tensorrt import TrtRunner, _parse_error, _single_io, build_engine, require_tensorrt
from tests.helpers import run_cli

REPO = Path(__file__).resolve().parents[2]


def _meta(**changes) -> EngineMeta:
    fields = dict(tensorrt_version="11.4.0", gpu_name="NVIDIA H100 80GB HBM3", compute_capability="9.0",
                  precision="fp16", input_name="image", output_name="logits",
                  shapes={"image": {"min": [1, 3, 32, 48], "opt": [2, 3, 64, 96], "max": [4, 3, 128, 192]}},
                  onnx_sha256="ab" * 32, workspace_bytes=1 << 30, created="2026-01-01T00:00:00+00:00")
    return EngineMeta(**{**fields, **changes})


def tiny_onnx(path: Path, *, dynamic: bool = False, hw: tuple[int, int] = (16, 24), precision: str | None = None,
              act: str = "Relu", domain: str = "") -> Path:
    """A Conv(3->4, 3x3) + activation graph, input "image", output "logits"."""
    from onnx import TensorProto, checker, helper, numpy_helper, save

    rng = np.random.default_rng(0)
    weight = (0.5 * rng.standard_normal((4, 3, 3, 3))).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    dims_in = ["N", 3, "H", "W"] if dynamic else [1, 3, *hw]
    dims_out = ["N", 4, "H", "W"] if dynamic else [1, 4, *hw]
    nodes = [helper.make_node("Conv", ["image", "w", "b"], ["conv"], name="conv0", kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1]),
             helper.make_node(act, ["conv"], ["logits"], name="act0", domain=domain)]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("image", TensorProto.FLOAT, dims_in)],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, dims_out)],
                              initializer=[numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")])
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(graph, opset_imports=opsets, producer_name="segprune-tests")
    model.ir_version = 8  # what opset 17 came with; every onnxruntime and TensorRT 10+ reads it
    if precision is not None:
        helper.set_model_props(model, {"segprune.precision": precision})
    if not domain:
        checker.check_model(model)
    save(model, str(path))
    return path


# ---------------------------------------------------------------- EngineMeta and its sidecar


def test_engine_meta_round_trips_through_dict_and_json(tmp_path):
    meta = _meta()
    assert EngineMeta.from_dict(meta.to_dict()) == meta
    assert EngineMeta.from_dict(json.loads(json.dumps(meta.to_dict()))) == meta
    engine = tmp_path / "model.fp16.engine"
    assert write_engine_meta(engine, meta) == tmp_path / "model.fp16.engine.json"
    assert read_engine_meta(engine) == meta


def test_engine_meta_normalises_shapes_to_int_lists():
    meta = _meta(shapes={"image": {"min": (1, 3, 8, 8), "opt": (1, 3, 8, 8), "max": (1, 3, 8, 8)}})
    assert meta.shapes == {"image": {"min": [1, 3, 8, 8], "opt": [1, 3, 8, 8], "max": [1, 3, 8, 8]}}


def test_engine_meta_rejects_unknown_precision():
    with pytest.raises(ExportError, match="fp8"):
        _meta(precision="fp8")


def test_sidecar_sits_next_to_the_engine():
    assert sidecar_path("out/model.fp16.engine") == Path("out/model.fp16.engine.json")
    assert sidecar_path(Path("/x/model.plan")) == Path("/x/model.plan.json")


def test_sidecar_write_is_atomic(tmp_path, monkeypatch):
    engine = tmp_path / "model.engine"
    write_engine_meta(engine, _meta())
    before = sidecar_path(engine).read_text()
    # json.dump fails half-way through (an object it cannot encode): the old sidecar must survive whole.
    monkeypatch.setattr(EngineMeta, "to_dict", lambda self: {"tensorrt_version": "x", "broken": object()})
    with pytest.raises(TypeError):
        write_engine_meta(engine, _meta())
    assert sidecar_path(engine).read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.engine.json"]


def test_missing_sidecar_says_rebuild(tmp_path):
    with pytest.raises(ExportError, match=r"model\.engine\.json.*rebuild it here with `segprune export") as info:
        read_engine_meta(tmp_path / "model.engine")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("content, match", [
    ("{not json", "not valid JSON"),
    ('["a list"]', "not a segprune engine description"),
    ('{"tensorrt_version": "11.4.0"}', "lacks gpu_name"),
    (json.dumps({**_meta().to_dict(), "schema_version": 99}), "schema version 99"),
    (json.dumps({**_meta().to_dict(), "shapes": {"image": [1, 3]}}), "malformed"),
])
def test_broken_sidecar_is_an_export_error(tmp_path, content, match):
    engine = tmp_path / "model.engine"
    sidecar_path(engine).write_text(content)
    with pytest.raises(ExportError, match=match):
        read_engine_meta(engine)


# ---------------------------------------------------------------- check_engine_meta


def test_check_engine_meta_passes_on_the_same_machine():
    meta = _meta()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_engine_meta(meta, meta.tensorrt_version, meta.gpu_name, meta.compute_capability)


def test_other_tensorrt_version_is_an_error_naming_both():
    with pytest.raises(ExportError) as info:
        check_engine_meta(_meta(tensorrt_version="10.3.0"), "11.4.0", "NVIDIA H100 80GB HBM3", "9.0",
                          engine="out/model.engine")
    message = str(info.value)
    assert "engine model.engine" in message
    assert "TensorRT 10.3.0" in message and "TensorRT 11.4.0" in message
    assert "rebuild" in message and "\n" not in message


def test_other_compute_capability_is_an_error():
    with pytest.raises(ExportError, match=r"sm 8\.0.*sm 9\.0.*rebuild"):
        check_engine_meta(_meta(gpu_name="NVIDIA A100-SXM4-40GB", compute_capability="8.0"),
                          "11.4.0", "NVIDIA H100 80GB HBM3", "9.0")


def test_other_gpu_with_same_compute_capability_only_warns():
    meta = _meta(gpu_name="NVIDIA A10", compute_capability="8.6")
    with pytest.warns(RuntimeWarning, match="NVIDIA A10 and runs here on NVIDIA A40"):
        check_engine_meta(meta, "11.4.0", "NVIDIA A40", "8.6")


# ---------------------------------------------------------------- require_tensorrt


def test_require_tensorrt_names_the_install_when_absent(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # find_spec() -> None and import fails, deterministically
    with pytest.raises(BackendError) as info:
        require_tensorrt()
    message = str(info.value)
    assert message.startswith("--backend tensorrt needs TensorRT")
    assert "pip install 'segprune[trt]'" in message and "NVIDIA GPU" in message and "\n" not in message


def test_require_tensorrt_reports_a_broken_install(tmp_path, monkeypatch):
    package = tmp_path / "tensorrt"
    package.mkdir()
    (package / "__init__.py").write_text("raise OSError('libnvinfer.so.11: cannot open shared object file')\n")
    monkeypatch.delitem(sys.modules, "tensorrt", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(BackendError, match=r"installed but does not import \(OSError: libnvinfer\.so\.11"):
        require_tensorrt()
    assert "tensorrt" not in sys.modules


def test_build_engine_needs_tensorrt_after_checking_its_inputs(tmp_path, monkeypatch):
    with pytest.raises(ExportError, match="does not exist"):
        build_engine(tmp_path / "missing.onnx", tmp_path / "model.engine")
    onnx_file = tiny_onnx(tmp_path / "model.onnx")
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(BackendError, match=r"^--tensorrt needs TensorRT"):
        build_engine(onnx_file, tmp_path / "model.engine")
    assert not (tmp_path / "model.engine").exists() and not (tmp_path / "model.engine.json").exists()


def test_runner_on_a_missing_engine_is_an_export_error(tmp_path):
    with pytest.raises(ExportError, match="does not exist: build it with `segprune export"):
        TrtRunner(tmp_path / "model.engine")


# ---------------------------------------------------------------- gpu_identity


class _FakeSmi:
    def __init__(self, stdout: str = "", returncode: int = 0, stderr: str = ""):
        self.result = subprocess.CompletedProcess([], returncode, stdout, stderr)
        self.calls: list[list[str]] = []

    def __call__(self, cmd, **kwargs):
        self.calls.append(cmd)
        return self.result


@pytest.fixture
def smi(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(engine_meta.shutil, "which", lambda name: "/usr/bin/nvidia-smi")

    def install(**kwargs) -> _FakeSmi:
        fake = _FakeSmi(**kwargs)
        monkeypatch.setattr(engine_meta.subprocess, "run", fake)
        return fake

    return install


def test_gpu_identity_parses_nvidia_smi(smi):
    fake = smi(stdout="NVIDIA H100 80GB HBM3, 9.0\n")
    assert gpu_identity() == ("NVIDIA H100 80GB HBM3", "9.0")
    cmd = fake.calls[0]
    assert cmd[0] == "/usr/bin/nvidia-smi"
    assert "--query-gpu=name,compute_cap" in cmd and "--format=csv,noheader" in cmd
    assert cmd[cmd.index("-i") + 1] == "0"


def test_gpu_identity_keeps_commas_in_the_name_and_follows_cuda_visible_devices(smi, monkeypatch):
    fake = smi(stdout="Odd, Name GPU, 8.6\n")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert gpu_identity() == ("Odd, Name GPU", "8.6")
    assert fake.calls[0][fake.calls[0].index("-i") + 1] == "2"
    gpu_identity(1)
    assert fake.calls[1][fake.calls[1].index("-i") + 1] == "1"


def test_gpu_identity_without_nvidia_smi(monkeypatch):
    monkeypatch.setattr(engine_meta.shutil, "which", lambda name: None)
    with pytest.raises(BackendError, match="nvidia-smi was not found.*NVIDIA driver"):
        gpu_identity()


@pytest.mark.parametrize("kwargs, match", [
    ({"returncode": 9, "stderr": "No devices were found\n"}, r"could not query GPU 0 \(No devices were found\)"),
    ({"returncode": 0, "stdout": ""}, "could not query GPU 0"),
    ({"returncode": 0, "stdout": "NVIDIA H100, [N/A]\n"}, "update the NVIDIA driver"),
])
def test_gpu_identity_failures_are_backend_errors(smi, kwargs, match):
    smi(**kwargs)
    with pytest.raises(BackendError, match=match) as info:
        gpu_identity()
    assert "\n" not in str(info.value)


def test_gpu_identity_with_every_gpu_hidden(smi, monkeypatch):
    smi(stdout="NVIDIA H100, 9.0\n")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(BackendError, match="hides every GPU"):
        gpu_identity()


# ---------------------------------------------------------------- what goes into the sidecar


@pytest.mark.parametrize("value, expected", [(None, "fp32"), ('"fp16"', "fp16"), ("int8", "int8")])
def test_onnx_precision_reads_segprune_metadata(tmp_path, value, expected):
    assert onnx_precision(tiny_onnx(tmp_path / "m.onnx", precision=value)) == expected


def test_onnx_precision_rejects_unknown_values_and_unreadable_files(tmp_path):
    with pytest.raises(ExportError, match="'fp8'"):
        onnx_precision(tiny_onnx(tmp_path / "m.onnx", precision='"fp8"'))
    (tmp_path / "junk.onnx").write_bytes(b"\x00\xffnot a protobuf" * 10)
    with pytest.raises(ExportError, match="not a readable ONNX file"):
        onnx_precision(tmp_path / "junk.onnx")


def test_profile_shapes_static_and_dynamic():
    assert profile_shapes((1, 3, 16, 24), None, "image", "m.onnx") == {
        "min": [1, 3, 16, 24], "opt": [1, 3, 16, 24], "max": [1, 3, 16, 24]}
    shapes = {"min": (1, 3, 16, 16), "opt": (2, 3, 32, 32), "max": (4, 3, 64, 64)}
    assert profile_shapes((-1, 3, -1, -1), shapes, "image", "m.onnx")["max"] == [4, 3, 64, 64]


@pytest.mark.parametrize("dims, shapes, match", [
    ((-1, 3, -1, -1), None, r"dynamic shape \[-1, 3, -1, -1\].*give min/opt/max"),
    ((-1, 3, 8, 8), {"min": (1, 3, 8, 8), "max": (2, 3, 8, 8)}, "exactly the keys min, opt and max"),
    ((-1, 3, 8, 8), {"min": (1, 3, 8), "opt": (1, 3, 8), "max": (1, 3, 8)}, "has 3 dims"),
    ((-1, 3, 8, 8), {"min": (2, 3, 8, 8), "opt": (1, 3, 8, 8), "max": (4, 3, 8, 8)}, "1 <= min <= opt <= max"),
    ((-1, 3, 8, 8), {"min": (1, 3, 8, 8), "opt": (1, 3, 8, 8), "max": (1, 3, 16, 16)}, "fixed at 8"),
])
def test_profile_shapes_errors_name_the_fix(dims, shapes, match):
    with pytest.raises(ExportError, match=match):
        profile_shapes(dims, shapes, "image", "m.onnx")


def test_single_io():
    assert _single_io(["image"], ["logits"], "image", "m.onnx") == "logits"
    with pytest.raises(ExportError, match="no input 'image'"):
        _single_io(["input.1"], ["logits"], "image", "m.onnx")
    with pytest.raises(ExportError, match="one logits tensor"):
        _single_io(["image"], ["logits", "aux"], "image", "m.onnx")


def test_parse_error_names_node_and_op():
    @dataclasses.dataclass
    class Error:
        name: str
        op: str
        text: str

        def node_name(self):
            return self.name

        def node_operator(self):
            return self.op

        def node(self):
            return 3

        def desc(self):
            return self.text

    class Parser:
        def __init__(self, *errors):
            self.errors = errors
            self.num_errors = len(errors)

        def get_error(self, index):
            return self.errors[index]

    class Logger:
        errors = ["last logged error"]

    errors = Logger.errors
    message = _parse_error(Parser(Error("act0", "FancyOp", "No importer registered\nfor op")), "m.onnx", "11.4.0",
                           errors)
    assert "node 'act0' (op FancyOp) of m.onnx" in message and "TensorRT 11.4.0" in message
    assert "does not support FancyOp" in message and "\n" not in message
    # the advice is the rule check that names the broken rule, not "a newer TensorRT"
    assert "segprune.export.trt_rules m.onnx" in message and "newer" not in message
    assert "node '#3'" in _parse_error(Parser(Error("", "FancyOp", "x")), "m.onnx", "11.4.0", errors)
    assert "could not parse m.onnx: bad graph" in _parse_error(Parser(Error("", "", "bad graph")), "m.onnx", "11",
                                                                  errors)
    assert "last logged error" in _parse_error(Parser(), "m.onnx", "11", errors)


# ---------------------------------------------------------------- import safety


def test_module_imports_without_torch_tensorrt_or_polygraphy():
    code = ("import sys\n"
            "sys.modules['torch'] = None  # any import of torch now fails\n"
            "import segprune.export.tensorrt, segprune.export.trt_runner, segprune.export.cuda_events\n"
            "import segprune.export.trt_rules  # the rule check needs onnx only, imported when it runs\n"
            "assert segprune.export.tensorrt.TrtRunner is segprune.export.trt_runner.TrtRunner\n"
            "for name in ('torch', 'tensorrt', 'polygraphy', 'onnx'):\n"
            "    assert sys.modules.get(name) is None, name\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------- with TensorRT and a GPU


def _tensorrt_skip_reason() -> str | None:
    if importlib.util.find_spec("tensorrt") is None:
        return "TensorRT is not installed (pip install 'segprune[trt]' on a machine with an NVIDIA GPU)"
    try:
        gpu_identity()
    except BackendError as exc:
        return f"no NVIDIA GPU is usable here: {exc}"
    return None


_SKIP_REASON = _tensorrt_skip_reason()
needs_tensorrt = pytest.mark.skipif(_SKIP_REASON is not None, reason=str(_SKIP_REASON))


def _onnxruntime_logits(onnx_file: Path, images: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"image": images})[0]


@pytest.mark.tensorrt
@needs_tensorrt
def test_static_engine_builds_runs_and_matches_onnxruntime(tmp_path):
    import tensorrt

    onnx_file = tiny_onnx(tmp_path / "model.onnx", precision='"fp32"')
    engine = tmp_path / "model.fp32.engine"
    cache = tmp_path / "timing.cache"
    meta = build_engine(onnx_file, engine, timing_cache=cache, workspace_bytes=1 << 28)
    assert engine.stat().st_size > 0 and cache.stat().st_size > 0
    assert read_engine_meta(engine) == meta
    assert meta.tensorrt_version == tensorrt.__version__
    assert (meta.gpu_name, meta.compute_capability) == gpu_identity()
    assert meta.precision == "fp32" and meta.output_name == "logits"
    assert meta.shapes == {"image": {"min": [1, 3, 16, 24], "opt": [1, 3, 16, 24], "max": [1, 3, 16, 24]}}
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "model.fp32.engine", "model.fp32.engine.json", "model.onnx", "timing.cache"]

    images = np.random.default_rng(1).standard_normal((1, 3, 16, 24)).astype(np.float32)
    with TrtRunner(engine) as runner:
        logits = runner(images)
        assert runner.precision == "fp32" and runner.num_classes == 4 and runner.input_shape == [1, 3, 16, 24]
        assert runner.info()["versions"]["tensorrt"] == tensorrt.__version__
        times = runner.time_inference(images, warmup=2, runs=5)
        end_to_end = runner.time_inference(images, warmup=2, runs=5, kind="end_to_end")
        assert runner.timings == ("device", "end_to_end") and len(end_to_end) == 5
        with pytest.raises(ExportError, match="shapes from"):
            runner(np.zeros((2, 3, 16, 24), np.float32))
    assert logits.dtype == np.float32 and logits.shape == (1, 4, 16, 24)
    # TF32 convolutions on Ampere and newer differ from onnxruntime's fp32 at about 1e-3.
    np.testing.assert_allclose(logits, _onnxruntime_logits(onnx_file, images), rtol=1e-2, atol=1e-2)
    assert len(times) == 5 and all(t > 0 for t in times)
    with pytest.raises(ExportError, match="closed"):
        runner(images)

    build_engine(onnx_file, engine, timing_cache=cache, workspace_bytes=1 << 28)  # reuses the timing cache


@pytest.mark.tensorrt
@needs_tensorrt
def test_dynamic_engine_runs_every_shape_in_its_profile(tmp_path):
    onnx_file = tiny_onnx(tmp_path / "model.onnx", dynamic=True)
    engine = tmp_path / "model.engine"
    shapes = {"min": (1, 3, 16, 16), "opt": (2, 3, 32, 32), "max": (4, 3, 64, 64)}
    meta = build_engine(onnx_file, engine, shapes=shapes, workspace_bytes=1 << 28)
    assert meta.shapes["image"]["max"] == [4, 3, 64, 64]
    rng = np.random.default_rng(2)
    with TrtRunner(engine) as runner:
        assert runner.input_shape == [None, 3, None, None]
        for shape in [(1, 3, 16, 16), (3, 3, 24, 40), (4, 3, 64, 64)]:
            images = rng.standard_normal(shape).astype(np.float32)
            np.testing.assert_allclose(runner(images), _onnxruntime_logits(onnx_file, images), rtol=1e-2, atol=1e-2)


@pytest.mark.tensorrt
@needs_tensorrt
def test_edited_sidecar_makes_the_runner_refuse(tmp_path):
    onnx_file = tiny_onnx(tmp_path / "model.onnx")
    engine = tmp_path / "model.engine"
    build_engine(onnx_file, engine, workspace_bytes=1 << 28)
    data = json.loads(sidecar_path(engine).read_text())
    sidecar_path(engine).write_text(json.dumps({**data, "tensorrt_version": "10.0.0"}))
    with pytest.raises(ExportError, match=r"built with TensorRT 10\.0\.0.*rebuild"):
        TrtRunner(engine)
    sidecar_path(engine).unlink()
    with pytest.raises(ExportError, match="rebuild"):
        TrtRunner(engine)


@pytest.mark.tensorrt
@needs_tensorrt
@pytest.mark.parametrize("precisions, dynamic", [("fp32,fp16,int8", "batch,hw"), ("fp16,int8", "none")])
def test_segprune_exports_build_engines_and_bench_reads_their_shapes(tiny_checkpoint, tmp_path, precisions, dynamic):
    # defects 1 and 4 on a GPU: the project's own fp16/int8/dynamic graphs build, and `bench model.engine`
    # runs at the engine's own size, timed on the device and end to end
    out = tmp_path / "export"
    code, _, err = run_cli(["export", tiny_checkpoint, "--out", out, "--input-size", "32x48", "--precision",
                            precisions, "--dynamic", dynamic, "--calib-images", "8", "--parity-images", "4",
                            "--tensorrt", "--workspace", "0.5", "--quiet"])
    assert code == 0, err
    manifest = json.loads((out / "export.json").read_text())
    for precision in precisions.split(","):
        engine = out / f"model.{precision}.engine"
        assert manifest["files"][precision]["engine"]["file"] == engine.name
        with TrtRunner(engine) as runner:
            images = np.random.default_rng(0).standard_normal((1, 3, 32, 48)).astype(np.float32)
            agreement = (runner(images).argmax(1) == _onnxruntime_logits(out / f"model.{precision}.onnx",
                                                                         images).argmax(1)).mean()
            assert agreement > 0.95
        code, _, err = run_cli(["bench", engine, "--no-accuracy", "--runs", "5", "--warmup", "2", "--no-progress",
                                "--report", tmp_path / f"{precision}.json"])
        assert code == 0, err
        (result,) = json.loads((tmp_path / f"{precision}.json").read_text())["results"]
        assert result["input_shape"] == [1, 3, 32, 48] and result["timing"] == "device"
        assert result["latency_end_to_end"]["p50_ms"] > 0 and result["latency"]["p50_ms"] > 0


@pytest.mark.tensorrt
@needs_tensorrt
def test_two_engines_in_one_process_share_one_logger(tmp_path):
    from segprune.export import tensorrt as module

    first = tiny_onnx(tmp_path / "a.onnx")
    build_engine(first, tmp_path / "a.engine", workspace_bytes=1 << 28)
    logger = module._LOGGER
    with pytest.raises(ExportError, match=r"node 'act0' \(op NoSuchOp\)"):
        build_engine(tiny_onnx(tmp_path / "b.onnx", act="NoSuchOp", domain="com.example.segprune"),
                     tmp_path / "b.engine", workspace_bytes=1 << 28)
    with TrtRunner(tmp_path / "a.engine"):
        pass
    assert module._LOGGER is logger


@pytest.mark.tensorrt
@needs_tensorrt
def test_unsupported_op_names_node_and_op(tmp_path):
    onnx_file = tiny_onnx(tmp_path / "model.onnx", act="NoSuchOp", domain="com.example.segprune")
    with pytest.raises(ExportError, match=r"node 'act0' \(op NoSuchOp\)"):
        build_engine(onnx_file, tmp_path / "model.engine", workspace_bytes=1 << 28)
    assert not (tmp_path / "model.engine").exists()
