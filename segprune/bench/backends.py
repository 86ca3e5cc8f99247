"""One interface over PyTorch, onnxruntime and TensorRT: resolve a model path, open a runner.

A runner takes a float32 NCHW array of normalised images and returns float32 logits; it
also times itself (``time_inference``), because only the backend knows how to time itself
properly. Every runner names the timings it offers in ``timings``, the first being the one
its ``latency`` is reported in: GPU runners (PyTorch on CUDA, TensorRT) offer ``device``
(CUDA events around the execution, the input already on the GPU) and ``end_to_end``
(``perf_counter`` around a call from a host array to host logits); CPU runners offer
``end_to_end`` only, where the two are the same thing. ``MODEL`` may be a checkpoint (torch), an ONNX file (onnxruntime), an engine
(tensorrt) or an export folder, where ``--precision`` picks ``model.<precision>.onnx``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from segprune.errors import ConfigError, ExportError
from segprune.models.adapters import model_info

BACKENDS = ("torch", "onnxruntime", "tensorrt")
_SUFFIX = {".safetensors": "torch", ".pth": "torch", ".pt": "torch", ".onnx": "onnxruntime", ".engine": "tensorrt",
           ".plan": "tensorrt"}


def infer_backend(path: str | Path) -> str:
    from segprune.models.sources import is_model_dir

    path = Path(path)
    if path.is_dir():
        return "torch" if is_model_dir(path) else "onnxruntime"
    backend = _SUFFIX.get(path.suffix)
    if backend is None:
        raise ConfigError(f"cannot tell the backend of {path.name}: pass --backend {'|'.join(BACKENDS)}")
    return backend


def resolve_model(path: str | Path, backend: str, precision: str | None) -> Path:
    """The file to run: ``path`` itself, or ``model.<precision>.<ext>`` inside an export folder."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path} does not exist: pass a checkpoint, an ONNX file, an engine or an export folder")
    if path.is_dir():
        if backend == "torch":
            from segprune.models.sources import is_model_dir

            if is_model_dir(path):
                return path
            raise ConfigError(f"{path} is a folder without a model: the torch backend needs a .safetensors "
                              "checkpoint, an SMP save_pretrained folder or a folder `segprune prune --out` wrote")
        ext = "onnx" if backend == "onnxruntime" else "engine"
        name = f"model.{precision or 'fp32'}.{ext}"
        if (path / f"model.{precision or 'fp32'}.PARITY-FAILED.onnx").exists():
            raise ExportError(f"{path / name} failed its parity check at export (kept as *.PARITY-FAILED.onnx): "
                              "fix the export before benchmarking it")
        if not (path / name).is_file():
            found = ", ".join(sorted(p.name for p in path.glob(f"model.*.{ext}"))) or "none"
            raise ConfigError(f"{path} has no {name} (found: {found}): export it with "
                              f"`segprune export CKPT --out {path} --precision {precision or 'fp32'}`")
        from segprune.export.pipeline import check_export_file

        check_export_file(path, path / name, precision or "fp32")
        return path / name
    return path


class TorchRunner:
    """A segprune checkpoint in PyTorch: fp32, or fp16 autocast on CUDA; optionally compiled.

    ``compile`` wraps the model in ``torch.compile``; ``cuda_graphs`` uses its
    ``reduce-overhead`` mode, which replays captured CUDA graphs (outputs are copied out,
    since a replay overwrites them).
    """

    name = "torch"

    def __init__(self, checkpoint: str | Path, device: str = "cpu", precision: str = "fp32",
                 compile: bool = False, cuda_graphs: bool = False, source: dict[str, Any] | None = None) -> None:
        from segprune.models import load_model
        from segprune.train.distributed import resolve_device

        self.device = resolve_device(device)
        if precision not in ("fp32", "fp16"):
            raise ConfigError(f"the torch backend runs fp32 or fp16, not {precision}: benchmark an int8 graph "
                              "with `segprune export --precision int8` and --backend onnxruntime")
        if precision == "fp16" and self.device.type != "cuda":
            raise ConfigError("fp16 autocast needs a CUDA device: pass --device cuda, or benchmark an fp16 ONNX "
                              "file with --backend onnxruntime")
        if cuda_graphs and self.device.type != "cuda":
            raise ConfigError("--cuda-graphs needs --device cuda")
        self.path, self.precision = Path(checkpoint), precision
        model, self.checkpoint_info = load_model(checkpoint, map_location=str(self.device), **(source or {}))
        self.num_classes = model_info(model)["num_classes"]
        self.compiled = compile or cuda_graphs
        if self.compiled:
            model = torch.compile(model, mode="reduce-overhead" if cuda_graphs else "max-autotune-no-cudagraphs")
        self.model = model.eval()
        self.cuda_graphs = cuda_graphs

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of normalised images, as float32 on the CPU."""
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.precision == "fp16"):
            out = self.model(images.to(self.device, non_blocking=True))
        return out.float().clone().cpu()

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.predict(torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))).numpy()

    @property
    def timings(self) -> tuple[str, ...]:
        """``device`` and ``end_to_end`` on CUDA; ``end_to_end`` on the CPU (see the module docstring)."""
        return ("device", "end_to_end") if self.device.type == "cuda" else ("end_to_end",)

    @torch.no_grad()
    def time_inference(self, images: np.ndarray, warmup: int, runs: int, kind: str | None = None) -> list[float]:
        """Per-run seconds: ``device`` (CUDA events around the forward, input already on the GPU) or
        ``end_to_end`` (``perf_counter`` around numpy images -> numpy logits, copies and sync included)."""
        kind = kind or self.timings[0]
        if kind not in self.timings:
            raise ConfigError(f"the torch backend on {self.device.type} times {', '.join(self.timings)}, not {kind}")
        if kind == "end_to_end":
            for _ in range(warmup):
                self(images)
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                self(images)
                times.append(time.perf_counter() - t0)
            return times
        x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).to(self.device)
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.precision == "fp16"):
            for _ in range(warmup):
                self.model(x)
            torch.cuda.synchronize(self.device)
            times = []
            for _ in range(runs):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                self.model(x)
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end) / 1e3)
        return times

    def info(self) -> dict[str, Any]:
        return {"backend": self.name, "file": str(self.path), "precision": self.precision, "torch": torch.__version__,
                "device": str(self.device), "compiled": self.compiled, "cuda_graphs": self.cuda_graphs,
                "threads": torch.get_num_threads(), "timings": list(self.timings)}

    def close(self) -> None:
        self.model = None


def open_runner(path: str | Path, backend: str | None = None, *, device: str = "cpu", precision: str | None = None,
                threads: int | None = None, compile: bool = False, cuda_graphs: bool = False,
                source: dict[str, Any] | None = None):
    """A runner for ``path`` on ``backend`` (inferred from the file when ``None``).

    ``source`` (``arch``, ``encoder``, ``classes``) describes a plain weights file for the
    torch backend (:func:`segprune.models.load_model`).
    """
    backend = backend or infer_backend(path)
    if backend not in BACKENDS:
        raise ConfigError(f"--backend {backend} is not one of {', '.join(BACKENDS)}")
    if (compile or cuda_graphs) and backend != "torch":
        raise ConfigError("--compile and --cuda-graphs apply to the torch backend only")
    file = resolve_model(path, backend, precision)
    if backend == "torch":
        if not file.is_dir() and file.suffix not in (".safetensors", ".pth", ".pt"):
            raise ConfigError(f"the torch backend runs checkpoints, SMP folders and weights files, not {file.name}")
        if threads:
            torch.set_num_threads(threads)
        return TorchRunner(file, device, precision or "fp32", compile=compile, cuda_graphs=cuda_graphs,
                           source=source)
    if backend == "onnxruntime":
        from segprune.export.onnx_runner import OnnxRunner

        runner = OnnxRunner(file, device="cuda" if device.startswith("cuda") else "cpu", threads=threads)
    else:
        from segprune.export.tensorrt import TrtRunner, require_tensorrt

        require_tensorrt()
        runner = TrtRunner(file)
    if precision is not None and runner.precision != precision:
        raise ConfigError(f"{file.name} is a {runner.precision} graph, you asked for --precision {precision}: "
                          f"export one with `segprune export CKPT --precision {precision}`")
    return runner


def runner_timings(runner) -> tuple[str, ...]:
    """The timings a runner offers, first the one its latency is reported in (``end_to_end`` when it says none)."""
    return tuple(getattr(runner, "timings", None) or ("end_to_end",))


def runner_num_classes(runner) -> int | None:
    """Class count of a runner's model: from its checkpoint config or the ONNX/engine metadata."""
    if hasattr(runner, "num_classes"):
        return runner.num_classes
    meta = getattr(runner, "metadata", None) or {}
    return meta.get("num_classes") or (meta.get("config") or {}).get("num_classes")
