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
when torch happens to be installed, to tell torch tensors from numpy arrays.) The runner,
:class:`TrtRunner`, lives in :mod:`segprune.export.trt_runner` and is importable from here.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import warnings
from pathlib import Path

from segprune.errors import BackendError, ExportError
from segprune.export.engine_meta import (
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


_LOGGER = None  # the one TensorRT logger of this process (see :func:`_logger`)
_MAX_ERRORS = 64


def _logger(trt):
    """The process's single TensorRT logger: prints warnings and errors to stderr, keeps the last errors.

    TensorRT keeps one logger per process: the first builder or runtime registers it, and
    later ones with a different logger are told so and keep using the first. One logger per
    builder or runner therefore loses the second engine's errors (they go to the first,
    possibly freed, logger). This module creates its logger once, on first use, and every
    builder, parser and runtime gets that object; callers read the errors logged since a
    mark (:meth:`since`) so two engines in one run do not see each other's errors.
    """
    global _LOGGER
    if _LOGGER is None:

        class Logger(trt.ILogger):
            def __init__(self):
                trt.ILogger.__init__(self)
                self.errors: list[str] = []
                self.count = 0

            def log(self, severity, msg):
                if severity in (trt.Logger.INTERNAL_ERROR, trt.Logger.ERROR):
                    self.errors = (self.errors + [" ".join(str(msg).split())])[-_MAX_ERRORS:]
                    self.count += 1
                if severity in (trt.Logger.INTERNAL_ERROR, trt.Logger.ERROR, trt.Logger.WARNING):
                    print(f"[TensorRT] {msg}", file=sys.stderr)

            def mark(self) -> int:
                return self.count

            def since(self, mark: int) -> list[str]:
                new = self.count - mark
                return self.errors[-new:] if new > 0 else []

        _LOGGER = Logger()
    return _LOGGER


def _single_io(inputs: list[str], outputs: list[str], input_name: str, source: str) -> str:
    """Check the network has exactly ``input_name`` as input and one output; return the output's name."""
    if input_name not in inputs:
        raise ExportError(f"{source} has no input {input_name!r} (its inputs: {inputs}): pass the right "
                          f"input_name or re-export with the input named {input_name!r}")
    if len(inputs) != 1 or len(outputs) != 1:
        raise ExportError(f"{source} has inputs {inputs} and outputs {outputs}; a segprune engine takes one "
                          "image and returns one logits tensor: re-export without the extra inputs or outputs")
    return outputs[0]


def _parse_error(parser, source: str, version: str, errors: list[str]) -> str:
    """One line naming the node and op TensorRT's ONNX parser stopped at, and the check that explains it.

    ``errors`` are the logger's errors from this parse. A node TensorRT refuses is almost
    always a form it does not support at all (an int32 DequantizeLinear, a per-channel axis
    on the reduction dimension, a Resize mode), not one a newer release would take, so the
    advice is the rule check, which names the rule the node breaks.
    """
    check = "`python -m segprune.export.trt_rules " + source + "` names the TensorRT rule it breaks"
    if parser.num_errors == 0:
        detail = errors[-1] if errors else "no detail given"
        return f"TensorRT {version} could not parse {source} ({detail}): check it with onnx.checker; {check}"
    error = parser.get_error(0)
    node, op = error.node_name() or f"#{error.node()}", error.node_operator()
    desc = " ".join(str(error.desc()).split())
    if op:
        return (f"TensorRT {version} cannot parse node {node!r} (op {op}) of {source}: {desc}; TensorRT does not "
                f"support {op} in this form: {check}; rewrite or replace the node before export")
    return f"TensorRT {version} could not parse {source}: {desc}: {check}"


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
    logger = _logger(trt)
    mark = logger.mark()
    builder = trt.Builder(logger)
    flags = 0  # TensorRT 11 networks are always strongly typed (its STRONGLY_TYPED flag is deprecated, ignored)
    if int(trt.__version__.split(".")[0]) < 11:
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)  # 10.x has to opt in
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(os.fspath(onnx_path)):
        raise ExportError(_parse_error(parser, onnx_path.name, trt.__version__, logger.since(mark)))
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
        errors = logger.since(mark)
        detail = errors[-1] if errors else "see the TensorRT messages above"
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


def __getattr__(name: str):
    # TrtRunner lives in trt_runner (which imports this module): resolved on first use, never circularly
    if name == "TrtRunner":
        from segprune.export.trt_runner import TrtRunner

        return TrtRunner
    raise AttributeError(f"module 'segprune.export.tensorrt' has no attribute {name!r}")
