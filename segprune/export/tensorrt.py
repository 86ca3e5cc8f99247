"""Build TensorRT engines from segprune's ONNX files and run them, without torch.

TensorRT 11 builds strongly typed networks only: its fp16/int8 builder flags and
calibrators are gone, and every tensor keeps the type the ONNX graph gives it. segprune
therefore puts the precision in the graph (fp16 by graph conversion, int8 as Q/DQ nodes)
and TensorRT only parses, builds (optimization profile, workspace limit, timing cache) and
runs. The precision an engine carries is read from the ONNX file's ``segprune.precision``
metadata and recorded in the engine's sidecar (:mod:`segprune.export.engine_meta`).

TensorRT, Polygraphy and onnx are imported inside the functions that need them, so this
module imports on a machine with none of them, and it never imports torch: a deployment
box may have only TensorRT and numpy. (Polygraphy itself imports torch during inference
when torch happens to be installed, to tell torch tensors from numpy arrays.)
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from segprune.errors import BackendError, ExportError
from segprune.export.engine_meta import (
    REBUILD_HINT,
    EngineMeta,
    check_engine_meta,
    gpu_identity,
    onnx_precision,
    onnx_sha256,
    profile_shapes,
    read_engine_meta,
    sidecar_path,
    write_engine_meta,
)
from segprune.io import atomic_write

__all__ = [
    "EngineMeta",
    "TrtRunner",
    "build_engine",
    "check_engine_meta",
    "gpu_identity",
    "read_engine_meta",
    "require_tensorrt",
    "sidecar_path",
]


def require_tensorrt(purpose: str = "--backend tensorrt"):
    """Import and return the ``tensorrt`` module, or raise a :class:`BackendError` naming the fix."""
    if importlib.util.find_spec("tensorrt") is None:
        raise BackendError(f"{purpose} needs TensorRT, which is not installed: on a machine with an NVIDIA GPU "
                           "and driver, pip install 'segprune[trt]' (NVIDIA publishes the tensorrt wheels on PyPI)")
    try:
        return importlib.import_module("tensorrt")
    except Exception as exc:  # a missing libnvinfer or CUDA library surfaces as ImportError or OSError
        detail = " ".join(str(exc).split())
        raise BackendError(f"TensorRT is installed but does not import ({type(exc).__name__}: {detail}): check the "
                           "NVIDIA driver, or reinstall it with pip install --force-reinstall 'segprune[trt]'") from None


def _require_polygraphy():
    try:
        from polygraphy.backend.trt import TrtRunner as PolygraphyRunner
        from polygraphy.exception import PolygraphyException
    except ImportError:
        raise BackendError("the TensorRT runner needs Polygraphy, which is not installed: "
                           "pip install 'segprune[trt]' (it includes polygraphy)") from None
    return PolygraphyRunner, PolygraphyException


def _make_logger(trt):
    """A TensorRT logger that prints warnings and errors to stderr and keeps the errors for messages."""

    class Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity, msg):
            if severity in (trt.Logger.INTERNAL_ERROR, trt.Logger.ERROR):
                self.errors.append(" ".join(str(msg).split()))
            if severity in (trt.Logger.INTERNAL_ERROR, trt.Logger.ERROR, trt.Logger.WARNING):
                print(f"[TensorRT] {msg}", file=sys.stderr)

    return Logger()


def _single_io(inputs: list[str], outputs: list[str], input_name: str, source: str) -> str:
    """Check the network has exactly ``input_name`` as input and one output; return the output's name."""
    if input_name not in inputs:
        raise ExportError(f"{source} has no input {input_name!r} (its inputs: {inputs}): pass the right "
                          f"input_name or re-export with the input named {input_name!r}")
    if len(inputs) != 1 or len(outputs) != 1:
        raise ExportError(f"{source} has inputs {inputs} and outputs {outputs}; a segprune engine takes one "
                          "image and returns one logits tensor: re-export without the extra inputs or outputs")
    return outputs[0]


def _parse_error(parser, source: str, version: str, logger) -> str:
    """One line naming the node and op TensorRT's ONNX parser stopped at."""
    if parser.num_errors == 0:
        detail = logger.errors[-1] if logger.errors else "no detail given"
        return f"TensorRT {version} could not parse {source} ({detail}): check it with onnx.checker and re-export it"
    error = parser.get_error(0)
    node, op = error.node_name() or f"#{error.node()}", error.node_operator()
    desc = " ".join(str(error.desc()).split())
    if op:
        return (f"TensorRT {version} cannot parse node {node!r} (op {op}) of {source}: {desc}; this TensorRT "
                f"does not support {op} in this form: rewrite or replace it before export, or use a newer TensorRT")
    return f"TensorRT {version} could not parse {source}: {desc}: check it with onnx.checker and re-export it"


def _use_timing_cache(config, path: Path | None) -> None:
    if path is None:
        return
    data = path.read_bytes() if path.is_file() else b""
    try:
        cache = config.create_timing_cache(data)
        ok = cache is not None and config.set_timing_cache(cache, ignore_mismatch=False)
    except Exception:
        ok = False
    if not ok:
        warnings.warn(f"timing cache {path} was made by another TensorRT or GPU: starting an empty one, "
                      "which will replace it", RuntimeWarning, stacklevel=3)
        config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)


def build_engine(onnx_path: str | os.PathLike, engine_path: str | os.PathLike, *, input_name: str = "image",
                 shapes: dict[str, tuple[int, ...]] | None = None, workspace_bytes: int = 4 << 30,
                 timing_cache: str | os.PathLike | None = None) -> EngineMeta:
    """Build ``engine_path`` (and its ``.json`` sidecar) from the ONNX file on this machine's GPU.

    ``shapes`` is ``{"min": (N, C, H, W), "opt": ..., "max": ...}`` for an input with dynamic
    dims, or ``None`` for a static one. ``timing_cache`` is loaded when it exists (a cache from
    another TensorRT or GPU is replaced, with a warning) and saved after the build. The
    engine, then its sidecar, are written atomically; an old sidecar is removed first, so an
    interrupted build never leaves a new engine beside a stale description.
    """
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    if not onnx_path.is_file():
        raise ExportError(f"{onnx_path} does not exist: export the ONNX file first with `segprune export CKPT`")
    if workspace_bytes <= 0:
        raise ExportError(f"workspace_bytes must be positive, got {workspace_bytes}")
    precision = onnx_precision(onnx_path)
    trt = require_tensorrt("--tensorrt")
    gpu_name, capability = gpu_identity()
    logger = _make_logger(trt)
    builder = trt.Builder(logger)
    flags = 0  # TensorRT 11 networks are always strongly typed (its STRONGLY_TYPED flag is deprecated, ignored)
    if int(trt.__version__.split(".")[0]) < 11:
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)  # 10.x has to opt in
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(os.fspath(onnx_path)):
        raise ExportError(_parse_error(parser, onnx_path.name, trt.__version__, logger))
    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    outputs = [network.get_output(i).name for i in range(network.num_outputs)]
    output_name = _single_io([t.name for t in inputs], outputs, input_name, onnx_path.name)
    profile = profile_shapes(tuple(inputs[0].shape), shapes, input_name, onnx_path.name)

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    if shapes is not None:
        trt_profile = builder.create_optimization_profile()
        trt_profile.set_shape(input_name, profile["min"], profile["opt"], profile["max"])
        config.add_optimization_profile(trt_profile)
    cache_path = Path(timing_cache) if timing_cache is not None else None
    _use_timing_cache(config, cache_path)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        detail = logger.errors[-1] if logger.errors else "see the TensorRT messages above"
        raise ExportError(f"TensorRT {trt.__version__} could not build an engine from {onnx_path.name} ({detail}): "
                          "a larger workspace or a smaller max shape may help")

    meta = EngineMeta(tensorrt_version=trt.__version__, gpu_name=gpu_name, compute_capability=capability,
                      precision=precision, input_name=input_name, output_name=output_name,
                      shapes={input_name: profile}, onnx_sha256=onnx_sha256(onnx_path), workspace_bytes=workspace_bytes)
    sidecar_path(engine_path).unlink(missing_ok=True)
    with atomic_write(engine_path) as handle:
        handle.write(serialized)
    write_engine_meta(engine_path, meta)
    if cache_path is not None:
        with atomic_write(cache_path) as handle:
            handle.write(config.get_timing_cache().serialize())
    return meta


class TrtRunner:
    """Run a segprune engine on numpy arrays: float32 NCHW images in, float32 NCHW logits out.

    The sidecar is checked against this machine's TensorRT and GPU before the engine is
    deserialised. Device memory, the CUDA stream and the copies are Polygraphy's
    (``polygraphy.backend.trt.TrtRunner``), so neither torch nor cuda-python is needed.
    """

    name = "tensorrt"

    def __init__(self, engine_path: str | os.PathLike):
        self.path = Path(engine_path)
        if not self.path.is_file():
            raise ExportError(f"engine {self.path} does not exist: build it with `segprune export CKPT --tensorrt ...`")
        self.meta = read_engine_meta(self.path)
        trt = require_tensorrt()
        polygraphy_runner, self._polygraphy_error = _require_polygraphy()
        self.gpu_name, capability = gpu_identity()
        check_engine_meta(self.meta, trt.__version__, self.gpu_name, capability, engine=self.path)
        self._trt, logger = trt, _make_logger(trt)
        self._runtime = trt.Runtime(logger)
        engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if engine is None:
            detail = logger.errors[-1] if logger.errors else "no detail given"
            raise ExportError(f"TensorRT {trt.__version__} could not load {self.path.name} ({detail}): {REBUILD_HINT}")
        from polygraphy.datatype import DataType

        dtype = DataType.from_dtype(engine.get_tensor_dtype(self.meta.input_name), "tensorrt")
        self._input_dtype = DataType.to_dtype(dtype, "numpy")
        classes = int(tuple(engine.get_tensor_shape(self.meta.output_name))[1])
        self.num_classes = classes if classes > 0 else None
        self._runner = polygraphy_runner(engine, name="segprune-tensorrt")
        self._runner.activate()

    @property
    def precision(self) -> str:
        return self.meta.precision

    @property
    def input_shape(self) -> list[int | None]:
        """The input shape, with ``None`` for dims the optimization profile lets vary."""
        profile = self.meta.shapes[self.meta.input_name]
        return [lo if lo == hi else None for lo, hi in zip(profile["min"], profile["max"], strict=True)]

    def _feed(self, images: np.ndarray) -> dict[str, np.ndarray]:
        profile = self.meta.shapes[self.meta.input_name]
        shape = list(getattr(images, "shape", ()))
        if len(shape) != len(profile["min"]) or not all(
                lo <= size <= hi for size, lo, hi in zip(shape, profile["min"], profile["max"], strict=True)):
            raise ExportError(f"engine {self.path.name} takes {self.meta.input_name!r} shapes from {profile['min']} "
                              f"to {profile['max']}, got {shape}: resize the images or rebuild the engine with "
                              "other min/max shapes")
        return {self.meta.input_name: np.ascontiguousarray(images, dtype=self._input_dtype)}

    def _infer(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        if not self._runner.is_active:
            raise ExportError(f"the TensorRT runner for {self.path.name} is closed: open a new one")
        try:
            return self._runner.infer(feed, check_inputs=False)[self.meta.output_name]
        except self._polygraphy_error as exc:
            detail = " ".join(str(exc).split())
            raise BackendError(f"TensorRT inference failed ({detail}): check the GPU with nvidia-smi") from None

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Logits for a batch of images; a fresh array (Polygraphy reuses its output buffers)."""
        return np.array(self._infer(self._feed(images)), dtype=np.float32)

    def time_inference(self, images: np.ndarray, warmup: int = 10, runs: int = 100) -> list[float]:
        """Seconds per run, end to end: host-to-device copy, execution, device-to-host copy.

        Polygraphy exposes no CUDA events, so each run is timed with ``time.perf_counter``
        around a synchronous ``infer`` (it synchronises its stream before returning). That
        includes the copies and Python overhead: an upper bound on the device time.
        """
        if warmup < 0 or runs < 0:  # runs=0 is a warm-up-only call (segprune.bench.timing.measure makes one)
            raise ExportError(f"need warmup >= 0 and runs >= 0, got warmup={warmup}, runs={runs}")
        feed = self._feed(images)
        for _ in range(warmup):
            self._infer(feed)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            self._infer(feed)
            times.append(time.perf_counter() - start)
        return times

    def info(self) -> dict[str, Any]:
        """The engine's sidecar, the GPU it runs on now and the library versions, for reports."""
        import polygraphy

        return {**self.meta.to_dict(), "backend": self.name, "file": os.fspath(self.path), "device": "cuda",
                "built_on_gpu": self.meta.gpu_name, "gpu_name": self.gpu_name, "input_shape": self.input_shape,
                "versions": {"tensorrt": self._trt.__version__, "polygraphy": polygraphy.__version__,
                             "numpy": np.__version__}}

    def close(self) -> None:
        """Free the device memory; calling it twice is harmless."""
        runner = getattr(self, "_runner", None)
        if runner is not None and runner.is_active:
            runner.deactivate()

    def __enter__(self) -> TrtRunner:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
