"""Benchmarks: mIoU on the full split and latency (p50/p90/p99) per backend, side by side in one run.

``bench({"base": open_runner("a.onnx"), "pruned": open_runner("b.onnx")}, BenchSettings(data=...))``
times every runner on the same images, interleaved, and evaluates each on the same split.
"""

from segprune.bench.backends import BACKENDS, TorchRunner, infer_backend, open_runner, resolve_model
from segprune.bench.run import (
    BenchSettings,
    bench,
    default_data,
    default_input_size,
    device_identity,
    evaluate_runner,
    ratios,
)
from segprune.bench.timing import LatencyStats, measure

__all__ = [
    "BACKENDS",
    "BenchSettings",
    "LatencyStats",
    "TorchRunner",
    "bench",
    "default_data",
    "default_input_size",
    "device_identity",
    "evaluate_runner",
    "infer_backend",
    "measure",
    "open_runner",
    "ratios",
    "resolve_model",
]
