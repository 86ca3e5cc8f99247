"""segprune's side of the TensorRT and Polygraphy calls, checked without either installed.

The *modules* ``tensorrt``, ``polygraphy.datatype`` and the CUDA runtime are replaced by
small stand-ins that record what segprune asks of them; no engine is built or run, and the
stand-ins verify call order and arguments only. What they cannot check (that TensorRT
accepts the calls) is covered by the ``tensorrt``-marked tests in ``test_tensorrt.py``.
"""

from __future__ import annotations

import ctypes
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from segprune.errors import BackendError, ExportError
from segprune.export import tensorrt as trt_module
from segprune.export import trt_runner
from segprune.export.cuda_events import EventTimer
from segprune.export.engine_meta import EngineMeta, write_engine_meta
from tests.export.test_tensorrt import tiny_onnx
from tests.helpers import run_cli


class _Severity:
    INTERNAL_ERROR, ERROR, WARNING, INFO = range(4)


def _fake_trt(parse_ok: bool = False) -> types.SimpleNamespace:
    """A stand-in ``tensorrt`` module: records the logger every builder, parser and runtime is given."""
    seen: list = []

    class ILogger:
        def __init__(self):
            pass

    class Builder:
        def __init__(self, logger):
            seen.append(logger)

        def create_network(self, flags):
            return object()

    class OnnxParser:
        num_errors = 0

        def __init__(self, network, logger):
            seen.append(logger)
            self.logger = logger

        def parse_from_file(self, path):
            self.logger.log(_Severity.ERROR, f"cannot read {path.rsplit('/', 1)[-1]}")
            return parse_ok

    class NetworkDefinitionCreationFlag:
        STRONGLY_TYPED = 0

    return types.SimpleNamespace(__version__="10.9.0", ILogger=ILogger, Logger=_Severity, Builder=Builder,
                                 OnnxParser=OnnxParser, NetworkDefinitionCreationFlag=NetworkDefinitionCreationFlag,
                                 seen=seen)


@pytest.fixture
def fresh_logger(monkeypatch):
    monkeypatch.setattr(trt_module, "_LOGGER", None)
    monkeypatch.setattr(trt_module, "gpu_identity", lambda: ("NVIDIA H200", "9.0"))


def test_every_builder_and_parser_gets_the_one_module_logger(tmp_path, monkeypatch, fresh_logger, capsys):
    fake = _fake_trt()
    monkeypatch.setattr(trt_module, "require_tensorrt", lambda *_a: fake)
    with pytest.raises(ExportError, match=r"could not parse a\.onnx \(cannot read a\.onnx\)"):
        trt_module.build_engine(tiny_onnx(tmp_path / "a.onnx"), tmp_path / "a.engine")
    # the second build reports its own error, not the first one's
    with pytest.raises(ExportError, match=r"could not parse b\.onnx \(cannot read b\.onnx\)"):
        trt_module.build_engine(tiny_onnx(tmp_path / "b.onnx"), tmp_path / "b.engine")
    assert len(fake.seen) == 4 and all(logger is fake.seen[0] for logger in fake.seen)
    assert trt_module._logger(fake) is fake.seen[0]
    assert "[TensorRT] cannot read a.onnx" in capsys.readouterr().err


# ---------------------------------------------------------------- the runner, on stand-in modules


class _PolyError(Exception):
    pass


def _install_polygraphy(monkeypatch, activate_error: str | None = None) -> dict:
    """Stand-ins for ``polygraphy.datatype`` and Polygraphy's TrtRunner; returns what they recorded."""
    record = {"deactivated": 0}

    class DataType:
        @staticmethod
        def from_dtype(dtype, source=None):
            return "float32"

        @staticmethod
        def to_dtype(dtype, target):
            return np.float32

    package = types.ModuleType("polygraphy")
    datatype = types.ModuleType("polygraphy.datatype")
    datatype.DataType = DataType
    package.datatype = datatype
    package.__version__ = "0.53.6"
    monkeypatch.setitem(sys.modules, "polygraphy", package)
    monkeypatch.setitem(sys.modules, "polygraphy.datatype", datatype)

    class Runner:
        def __init__(self, engine, name):
            self.is_active = False

        def activate(self):
            if activate_error:
                raise _PolyError(activate_error)
            self.is_active = True

        def deactivate(self):
            record["deactivated"] += 1
            self.is_active = False

    class Engine:
        def get_tensor_dtype(self, name):
            return "float32"

        def get_tensor_shape(self, name):
            return (2, 3, 96, 128)

    class Runtime:
        def __init__(self, logger):
            record["logger"] = logger

        def deserialize_cuda_engine(self, data):
            return Engine()

    fake_trt = types.SimpleNamespace(__version__="10.9.0", Runtime=Runtime, ILogger=object, Logger=_Severity)
    monkeypatch.setattr(trt_runner, "require_tensorrt", lambda *_a: fake_trt)
    monkeypatch.setattr(trt_runner, "_require_polygraphy", lambda: (Runner, _PolyError))
    monkeypatch.setattr(trt_runner, "gpu_identity", lambda: ("NVIDIA H200", "9.0"))
    monkeypatch.setattr(trt_runner, "_logger", lambda trt: types.SimpleNamespace(mark=lambda: 0, since=lambda m: []))
    return record


def _engine(tmp_path, shape=(2, 3, 96, 128)):
    engine = tmp_path / "model.fp16.engine"
    engine.write_bytes(b"serialized engine stand-in")
    write_engine_meta(engine, EngineMeta(
        tensorrt_version="10.9.0", gpu_name="NVIDIA H200", compute_capability="9.0", precision="fp16",
        input_name="image", output_name="logits", shapes={"image": {k: list(shape) for k in ("min", "opt", "max")}},
        onnx_sha256="ab" * 32, workspace_bytes=1 << 28))
    return engine


def test_activation_failure_is_one_backend_error_line(tmp_path, monkeypatch):
    _install_polygraphy(monkeypatch, activate_error="CUDA Error: 2.\nout of memory")
    with pytest.raises(BackendError) as info:
        trt_runner.TrtRunner(_engine(tmp_path))
    message = str(info.value)
    assert "\n" not in message and "out of memory" in message and "polygraphy>=0.53.4" in message


def test_engine_runner_reports_its_sidecar_shapes_and_closes(tmp_path, monkeypatch):
    from segprune.bench import default_input_size

    record = _install_polygraphy(monkeypatch)
    runner = trt_runner.TrtRunner(_engine(tmp_path))
    assert runner.metadata["input_size"] == [96, 128] and default_input_size(runner) == (96, 128)
    assert runner.input_shape == [2, 3, 96, 128] and runner.timings == ("device", "end_to_end")
    with pytest.raises(ExportError, match="timing 'gpu' is not one of device, end_to_end"):
        runner.time_inference(np.zeros((2, 3, 96, 128), np.float32), 0, 1, kind="gpu")
    with pytest.raises(ExportError, match=r"shapes from \[2, 3, 96, 128\].*got \[1, 3, 360, 480\]"):
        runner(np.zeros((1, 3, 360, 480), np.float32))
    runner.close()
    runner.close()
    assert record["deactivated"] == 1


class _EngineStandIn(trt_runner.TrtRunner):
    """The real TrtRunner's shape handling over a sidecar, with inference and timing stubbed out."""

    closed: list[str] = []

    def __init__(self, engine_path):
        from segprune.export.engine_meta import read_engine_meta

        self.path = Path(engine_path)
        self.meta = read_engine_meta(self.path)
        self.num_classes, self.gpu_name, self._input_dtype = 3, "NVIDIA H200", np.float32

    def _infer(self, feed, copy_outputs_to_host=True):
        n, _, h, w = feed["image"].shape
        return np.zeros((n, 3, h, w), np.float32)

    def time_inference(self, images, warmup=10, runs=100, kind=None):
        self._feed(images)  # the real shape check: a 360x480 default would fail here
        return [0.001 if (kind or "device") == "device" else 0.002] * runs

    def info(self):
        return {"backend": self.name, "device": "cuda", "gpu_name": self.gpu_name, "timings": list(self.timings)}

    def close(self):
        _EngineStandIn.closed.append(self.path.name)

    def __del__(self):  # only bench's own close() counts here
        pass


def test_bench_on_an_engine_runs_at_the_engine_size_and_closes_it(tmp_path, monkeypatch):
    engine = _engine(tmp_path)
    monkeypatch.setattr(trt_module, "TrtRunner", _EngineStandIn, raising=False)
    monkeypatch.setattr(trt_module, "require_tensorrt", lambda *_a: None)
    _EngineStandIn.closed.clear()
    code, out, err = run_cli(["bench", engine, "--no-accuracy", "--runs", "3", "--warmup", "0", "--rounds", "1",
                              "--no-progress", "--report", tmp_path / "r.json"])
    assert code == 0, err
    (result,) = json.loads((tmp_path / "r.json").read_text())["results"]
    assert result["input_shape"] == [2, 3, 96, 128]
    assert result["timing"] == "device" and result["latency"]["p50_ms"] == pytest.approx(1.0)
    assert result["latency_end_to_end"]["p50_ms"] == pytest.approx(2.0)
    assert "end-to-end p50 ms" in out and _EngineStandIn.closed == ["model.fp16.engine"]


# ---------------------------------------------------------------- CUDA events over ctypes


class _FakeCudart:
    def __init__(self):
        self.calls: list[str] = []
        self.next_event = 100

    def cudaEventCreate(self, ref):
        self.calls.append("create")
        ref._obj.value = self.next_event
        self.next_event += 1
        return 0

    def cudaEventRecord(self, event, stream):
        self.calls.append(f"record {event.value} on {stream.value}")
        return 0

    def cudaEventSynchronize(self, event):
        self.calls.append(f"sync {event.value}")
        return 0

    def cudaEventElapsedTime(self, ref, start, end):
        ref._obj.value = 2.5
        return 0

    def cudaEventDestroy(self, event):
        self.calls.append(f"destroy {event.value}")
        return 0


def test_event_timer_records_both_events_on_the_stream_and_converts_to_seconds():
    rt = _FakeCudart()
    timer = EventTimer(rt, stream_ptr=7)
    timer.start()
    assert timer.stop() == pytest.approx(0.0025)
    timer.close()
    timer.close()
    assert rt.calls == ["create", "create", "record 100 on 7", "record 101 on 7", "sync 101", "destroy 100",
                        "destroy 101"]
    failing = _FakeCudart()
    failing.cudaEventRecord = lambda event, stream: 700
    with pytest.raises(BackendError, match="cudaEventRecord failed with CUDA error 700"):
        EventTimer(failing, 7).start()
    assert isinstance(ctypes.c_float().value, float)
