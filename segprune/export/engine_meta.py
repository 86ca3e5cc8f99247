"""What a TensorRT engine was built from and for, kept beside it and checked before loading it.

A serialised TensorRT engine runs only under the TensorRT version that built it and on GPUs
of the compute capability it was built for (unless it was built version- or
hardware-compatible, which segprune does not do: both cost speed). So every engine
segprune writes gets a sidecar, ``<engine>.json`` (``model.fp16.engine`` ->
``model.fp16.engine.json``), and the runner compares it with the machine before it
deserialises anything: a clear "rebuild it here" beats TensorRT's own failure deep inside
``deserialize_cuda_engine``.

Nothing here imports TensorRT or torch (the GPU is identified with ``nvidia-smi``), so all
of it is tested on machines without either.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from segprune.errors import BackendError, ExportError, SegpruneError
from segprune.io import file_sha256, load_json, save_json

__all__ = [
    "PRECISIONS",
    "REBUILD_HINT",
    "EngineMeta",
    "check_engine_meta",
    "gpu_identity",
    "onnx_precision",
    "onnx_sha256",
    "profile_shapes",
    "read_engine_meta",
    "sidecar_path",
    "write_engine_meta",
]

PRECISIONS = ("fp32", "fp16", "int8")
SCHEMA_VERSION = 1
PRECISION_KEY = "segprune.precision"  # ONNX metadata_props key; its value is JSON ("\"fp16\"") or bare
REBUILD_HINT = "rebuild it here with `segprune export CKPT --tensorrt ...`"
_PROFILE_KEYS = ("min", "opt", "max")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class EngineMeta:
    """The facts about one engine that decide where it can run and what it computes.

    ``shapes`` maps each input name to its optimization profile, ``{"min": [N, C, H, W],
    "opt": [...], "max": [...]}`` (all three equal for a static engine).
    """

    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    input_name: str
    output_name: str
    shapes: dict[str, dict[str, list[int]]]
    onnx_sha256: str
    workspace_bytes: int
    created: str = field(default_factory=_now)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ExportError(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}: "
                              "re-export the ONNX file with segprune")
        self.shapes = {name: {key: [int(d) for d in profile[key]] for key in _PROFILE_KEYS}
                       for name, profile in self.shapes.items()}
        self.workspace_bytes = int(self.workspace_bytes)

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "engine description") -> EngineMeta:
        """Rebuild from :meth:`to_dict`'s output; keys it does not know are ignored."""
        if not isinstance(data, dict):
            raise ExportError(f"{source} is not a segprune engine description: {REBUILD_HINT}")
        if data.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
            raise ExportError(f"{source} has schema version {data['schema_version']!r}, this segprune reads "
                              f"{SCHEMA_VERSION}: use the segprune that wrote it or {REBUILD_HINT}")
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [name for name in names if name not in data]
        if missing:
            raise ExportError(f"{source} lacks {', '.join(missing)}: {REBUILD_HINT}")
        try:
            return cls(**{name: data[name] for name in names})
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ExportError(f"{source} is malformed ({exc}): {REBUILD_HINT}") from None


def sidecar_path(engine_path: str | os.PathLike) -> Path:
    """``model.fp16.engine`` -> ``model.fp16.engine.json``."""
    return Path(os.fspath(engine_path) + ".json")


def write_engine_meta(engine_path: str | os.PathLike, meta: EngineMeta) -> Path:
    """Write the sidecar of ``engine_path`` atomically and return its path."""
    path = sidecar_path(engine_path)
    save_json(path, meta.to_dict())
    return path


def read_engine_meta(engine_path: str | os.PathLike) -> EngineMeta:
    """Read the sidecar of ``engine_path``; a missing or broken one is an :class:`ExportError`."""
    path = sidecar_path(engine_path)
    if not path.is_file():
        raise ExportError(f"engine {engine_path} has no {path.name} beside it, so the TensorRT version "
                          f"and GPU it was built for are unknown: {REBUILD_HINT}")
    try:
        data = load_json(path)
    except SegpruneError as exc:
        raise ExportError(str(exc)) from None
    return EngineMeta.from_dict(data, source=str(path))


def check_engine_meta(meta: EngineMeta, tensorrt_version: str, gpu_name: str, compute_capability: str,
                      *, engine: str | os.PathLike | None = None) -> None:
    """Raise :class:`ExportError` unless the engine described by ``meta`` can run here.

    TensorRT ties a serialised engine to the exact TensorRT version and to the GPU's compute
    capability (its kernels are compiled for that SM architecture): either differing is an
    error. Another GPU model of the same compute capability (an A10 engine on an A30, say)
    deserialises and runs correctly, but its tactics were timed on the other chip (SM count,
    clocks, memory bandwidth), so latency measured here may not be what a rebuild would give:
    that is a warning, not an error.
    """
    what = f"engine {Path(engine).name}" if engine is not None else "this engine"
    built = f"TensorRT {meta.tensorrt_version} on {meta.gpu_name} (sm {meta.compute_capability})"
    here = f"TensorRT {tensorrt_version} on {gpu_name} (sm {compute_capability})"
    if meta.tensorrt_version != tensorrt_version or meta.compute_capability != compute_capability:
        raise ExportError(f"{what} was built with {built}; this machine has {here}: {REBUILD_HINT}")
    if meta.gpu_name != gpu_name:
        warnings.warn(f"{what} was built on {meta.gpu_name} and runs here on {gpu_name} (both sm "
                      f"{compute_capability}): results are valid but its kernels were tuned for the "
                      f"other GPU, so {REBUILD_HINT} before reporting latency", RuntimeWarning, stacklevel=2)


def onnx_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of the ONNX file (not of external weight files beside it)."""
    return file_sha256(path)


def onnx_precision(onnx_path: str | os.PathLike) -> str:
    """The precision segprune recorded in the ONNX file's metadata (``fp32`` when absent)."""
    try:
        import onnx
    except ImportError:
        raise BackendError("reading the ONNX file needs onnx: pip install 'segprune[trt]'") from None
    try:
        model = onnx.load(os.fspath(onnx_path), load_external_data=False)
    except Exception as exc:
        raise ExportError(f"{onnx_path} is not a readable ONNX file ({type(exc).__name__}): re-export it") from None
    props = {prop.key: prop.value for prop in model.metadata_props}
    precision = props.get(PRECISION_KEY, "fp32")
    try:
        precision = json.loads(precision)
    except ValueError:
        pass  # a bare string
    if precision not in PRECISIONS:
        raise ExportError(f"{onnx_path} has {PRECISION_KEY}={precision!r}, not one of {', '.join(PRECISIONS)}: "
                          "re-export it with segprune")
    return precision


def profile_shapes(dims: tuple[int, ...], shapes: dict | None, input_name: str, source: str) -> dict[str, list[int]]:
    """The optimization profile for an input whose network shape is ``dims`` (-1 = dynamic).

    ``shapes`` is ``{"min": (N, C, H, W), "opt": ..., "max": ...}``, or ``None`` for a
    static input. Checked here, where the message can name the fix, rather than by TensorRT.
    """
    dims = tuple(int(d) for d in dims)
    if shapes is None:
        if any(d < 0 for d in dims):
            raise ExportError(f"input {input_name!r} of {source} has dynamic shape {list(dims)} (-1 = dynamic): "
                              "give min/opt/max shapes for it, or export the ONNX file with a fixed shape")
        return {key: list(dims) for key in ("min", "opt", "max")}
    if sorted(shapes) != ["max", "min", "opt"]:
        raise ExportError(f"shapes must have exactly the keys min, opt and max; got {sorted(shapes)}")
    out = {key: [int(d) for d in shapes[key]] for key in ("min", "opt", "max")}
    for key, shape in out.items():
        if len(shape) != len(dims):
            raise ExportError(f"{key} shape {shape} has {len(shape)} dims but input {input_name!r} of {source} "
                              f"has {len(dims)} ({list(dims)}): give one size per dim")
    for axis, (lo, mid, hi, fixed) in enumerate(zip(out["min"], out["opt"], out["max"], dims, strict=True)):
        if not 1 <= lo <= mid <= hi:
            raise ExportError(f"dim {axis} has min/opt/max {lo}/{mid}/{hi}: they must satisfy 1 <= min <= opt <= max")
        if fixed >= 0 and not lo == mid == hi == fixed:
            raise ExportError(f"dim {axis} of input {input_name!r} is fixed at {fixed} in {source} but min/opt/max "
                              f"give {lo}/{mid}/{hi}: use {fixed}, or export the ONNX file with that dim dynamic")
    return out


def _default_device() -> str:
    """The GPU CUDA (and so TensorRT) uses by default: the first of CUDA_VISIBLE_DEVICES, else 0."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return "0"
    first = visible.split(",")[0].strip()
    if not first or first.startswith("-"):
        raise BackendError(f"CUDA_VISIBLE_DEVICES={visible!r} hides every GPU: unset it or name a GPU")
    return first


def gpu_identity(index: int | str | None = None) -> tuple[str, str]:
    """``(name, compute capability)`` of one GPU, e.g. ``("NVIDIA H100 80GB HBM3", "9.0")``.

    Asks ``nvidia-smi`` (shipped with the driver), so neither torch nor a CUDA toolkit is
    needed. ``index`` is an nvidia-smi index or UUID; by default the first entry of
    ``CUDA_VISIBLE_DEVICES``, else GPU 0. nvidia-smi numbers GPUs in PCI order while CUDA
    puts the fastest first: on a machine with mixed GPUs set ``CUDA_DEVICE_ORDER=PCI_BUS_ID``
    so both agree.
    """
    exe = shutil.which("nvidia-smi")
    if exe is None:
        raise BackendError("nvidia-smi was not found, so the GPU cannot be identified: install the NVIDIA "
                           "driver (it ships nvidia-smi) or, in Docker, run the container with --gpus all")
    device = _default_device() if index is None else str(index)
    cmd = [exe, "--query-gpu=name,compute_cap", "--format=csv,noheader", "-i", device]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackendError(f"nvidia-smi did not answer ({exc}): check the NVIDIA driver with `nvidia-smi`") from None
    lines = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not lines:
        detail = " ".join((done.stderr or done.stdout).split()) or f"exit status {done.returncode}"
        raise BackendError(f"nvidia-smi could not query GPU {device} ({detail}): list the GPUs with "
                           "`nvidia-smi -L` and check CUDA_VISIBLE_DEVICES")
    name, _, capability = lines[0].rpartition(",")
    name, capability = name.strip(), capability.strip()
    if not name or not re.fullmatch(r"\d+\.\d+", capability):
        raise BackendError(f"nvidia-smi printed {lines[0]!r} for GPU {device}, not 'name, compute capability': "
                           "update the NVIDIA driver (compute_cap needs driver 510 or newer)")
    return name, capability
