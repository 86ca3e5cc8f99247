"""A benchmark run: the same images through every model, mIoU on the full split, latency side by side.

The record for each model has one schema whatever the backend (``segprune.bench/1``), so a
result from onnxruntime on a laptop and one from TensorRT on a GPU are compared field by
field, and ``segprune check`` can match it to a baseline by backend, precision, input shape
and device. ``latency`` is in the runner's first timing, named in ``timing``: ``device``
for GPU runners (CUDA events around the execution, input already on the GPU),
``end_to_end`` otherwise; ``latency_end_to_end`` is there for every runner (the same figures
as ``latency`` on the CPU). Ratios compare like with like: the first timing when both
models share it, else end to end.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from segprune.bench.backends import runner_num_classes, runner_timings
from segprune.bench.timing import measure, ratio
from segprune.errors import DataError
from segprune.io import path_sha256


@dataclass
class BenchSettings:
    """What to measure on: data, input size, batch, and how long to time."""

    data: str
    split: str = "val"
    input_size: tuple[int, int] = (360, 480)
    batch_size: int = 1
    warmup: int = 5
    runs: int = 30
    rounds: int = 3
    accuracy: bool = True
    max_images: int | None = None  # None: the full split
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


class _AsModule(nn.Module):
    """A runner seen as a module, so evaluation shares :func:`segprune.train.evaluate` with training.

    Graphs with a fixed batch size get short final batches padded and the padding dropped.
    """

    def __init__(self, runner) -> None:
        super().__init__()
        self.runner = runner
        shape = getattr(runner, "input_shape", None) or []
        self.fixed_batch = shape[0] if shape and isinstance(shape[0], int) else None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if hasattr(self.runner, "predict"):
            return self.runner.predict(images)
        n = images.shape[0]
        batch = images.numpy()
        if self.fixed_batch and n < self.fixed_batch:
            batch = np.concatenate([batch, np.zeros((self.fixed_batch - n, *batch.shape[1:]), batch.dtype)])
        return torch.from_numpy(self.runner(batch)[:n])


def device_identity(runner, threads: int | None) -> dict[str, Any]:
    """What a latency figure is tied to: the device kind, its name, and CPU threads."""
    info = runner.info()
    dev = str(info.get("device", "cpu"))
    providers = info.get("providers") or []
    if runner.name == "tensorrt" or dev.startswith("cuda") or "CUDAExecutionProvider" in providers:
        name = info.get("gpu_name") or (torch.cuda.get_device_name(0) if torch.cuda.is_available() else "gpu")
        return {"kind": "cuda", "name": name, "threads": None, "key": f"cuda:{name}"}
    cpu = _cpu_name()
    threads = threads or info.get("intra_op_threads") or info.get("threads") or os.cpu_count()
    return {"kind": "cpu", "name": cpu, "threads": threads, "key": f"cpu:{cpu}:{threads}t"}


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def default_input_size(runner, fallback: tuple[int, int] = (360, 480)) -> tuple[int, int]:
    """The size a model was exported, pruned or trained at, as recorded in its file; else ``fallback``.

    An engine records it in its sidecar (the optimization profile's opt shape), an ONNX
    file in its metadata, a checkpoint in its config.
    """
    from segprune.models import checkpoint_input_size

    meta = getattr(runner, "metadata", None) or {}
    if meta.get("input_size"):
        return int(meta["input_size"][0]), int(meta["input_size"][1])
    if getattr(runner, "checkpoint_info", None):
        return checkpoint_input_size(runner.checkpoint_info) or fallback
    return fallback


def default_data(runner, size: tuple[int, int]) -> str:
    """Generated scenes with the model's class count, for a benchmark run without ``--data``."""
    from segprune.data import synthetic_spec

    return synthetic_spec(runner_num_classes(runner) or 3, size)


def latency_images(settings: BenchSettings) -> np.ndarray:
    """The batch every model is timed on: the first real images of the split at the input size."""
    from segprune.data import EvalTransform, build_dataset

    dataset = build_dataset(settings.data, settings.split, transform=EvalTransform(size=settings.input_size))
    if len(dataset) == 0:
        raise DataError(f"{settings.data} split {settings.split} is empty: nothing to benchmark on")
    images = [dataset[i % len(dataset)][0] for i in range(settings.batch_size)]
    return torch.stack(images).numpy()


def evaluate_runner(runner, settings: BenchSettings) -> dict[str, Any]:
    """mIoU/mAcc of a runner over the split (or ``max_images`` of it), scored at label resolution."""
    from segprune.data import EvalTransform, build_dataset, spread_loader
    from segprune.train import evaluate

    dataset = build_dataset(settings.data, settings.split, transform=EvalTransform())
    classes = runner_num_classes(runner)
    if classes is not None and classes != dataset.num_classes:
        raise DataError(f"the model predicts {classes} classes, {settings.data} has {dataset.num_classes}: benchmark "
                        "it on the dataset it was trained for")
    module = _AsModule(runner)
    batch = module.fixed_batch or settings.batch_size
    loader = spread_loader(dataset, settings.max_images, batch)
    metrics, timing = evaluate(module, loader, dataset.num_classes, input_size=settings.input_size,
                               class_names=dataset.classes, progress=settings.progress)
    out = metrics.to_dict()
    return {"miou": out["miou"], "macc": out["macc"], "pixel_acc": out["pixel_acc"],
            "per_class_iou": out["per_class_iou"], "images": timing["images"], "data": settings.data,
            "split": settings.split, "full_split": settings.max_images in (None, 0)}


def bench(runners: dict[str, Any], settings: BenchSettings, threads: int | None = None) -> dict[str, Any]:
    """Measure every runner on the same images; returns the report payload (results and ratios)."""
    from tqdm import tqdm

    images = latency_images(settings)
    timers = {}
    for label, runner in runners.items():
        for kind in runner_timings(runner):
            timers[(label, kind)] = (lambda w, n, r=runner, k=kind: _timed(r, images, w, n, k))
    latency = measure(timers, warmup=settings.warmup, runs=settings.runs, rounds=settings.rounds,
                      batch_size=settings.batch_size)
    results = []
    for label, runner in tqdm(runners.items(), desc="accuracy", disable=not settings.progress or not settings.accuracy,
                              leave=False):
        info = runner.info()
        kinds = runner_timings(runner)
        stats, times = latency[(label, kinds[0])]
        end_to_end = latency[(label, "end_to_end")][0].to_dict() if "end_to_end" in kinds else None
        results.append({
            "label": label, "model": str(runner.path), "model_sha256": path_sha256(runner.path),
            "backend": runner.name, "precision": runner.precision,
            "device": device_identity(runner, threads),
            "input_shape": [settings.batch_size, 3, *settings.input_size],
            "timing": kinds[0], "latency": stats.to_dict(), "times_ms": [round(1e3 * t, 4) for t in times],
            "latency_end_to_end": end_to_end,
            "accuracy": evaluate_runner(runner, settings) if settings.accuracy else None,
            "runner": info,
        })
    return {"settings": {"data": settings.data, "split": settings.split, "input_size": list(settings.input_size),
                         "batch_size": settings.batch_size, "warmup": settings.warmup, "runs": settings.runs,
                         "rounds": settings.rounds, "accuracy": settings.accuracy, **settings.extra},
            "results": results, "ratios": ratios(results)}


def _timed(runner, images: np.ndarray, warmup: int, runs: int, kind: str) -> list[float]:
    """One runner's timer for one timing; runners that offer a single timing take no ``kind``."""
    if len(runner_timings(runner)) == 1:
        return runner.time_inference(images, warmup, runs)
    return runner.time_inference(images, warmup, runs, kind=kind)


def latency_of(result: dict[str, Any], kind: str) -> dict[str, Any] | None:
    """A result's latency statistics in timing ``kind`` (None when it was not measured that way)."""
    if result.get("timing", "end_to_end") == kind:
        return result["latency"]
    return result.get("latency_end_to_end") if kind == "end_to_end" else None


def ratios(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every result against the first: speed-up (first p50 / this p50) in a timing both share, and mIoU difference.

    Device time against device time when both runners measured it, else end to end against
    end to end: a GPU device time divided by an end-to-end time would mix what is measured.
    """
    if len(results) < 2:
        return []
    base = results[0]
    out = []
    for r in results[1:]:
        kind = base.get("timing", "end_to_end") if base.get("timing") == r.get("timing") else "end_to_end"
        a, b = latency_of(base, kind), latency_of(r, kind)
        row = {"baseline": base["label"], "model": r["label"], "timing": kind,
               "speedup_p50": ratio(a["p50_ms"], b["p50_ms"]) if a and b else float("nan"),
               "speedup_mean": ratio(a["mean_ms"], b["mean_ms"]) if a and b else float("nan")}
        if base["accuracy"] and r["accuracy"]:
            row["delta_miou"] = r["accuracy"]["miou"] - base["accuracy"]["miou"]
        out.append(row)
    return out
