"""Device time and end-to-end time: named in every record, compared like with like.

The runners here are stand-ins that return fixed, injected timings per kind (no clock is
read), so the assertions check what the benchmark does with the two timings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from segprune.bench import BenchSettings, bench
from segprune.bench.run import latency_of, ratios
from segprune.cli.bench_cmd import bench_table

DATA = "synthetic:n=4,n_val=2,size=16x24,classes=3,seed=0"


class _Timed:
    """A runner whose calls take ``seconds[kind]`` each; GPU-like when it offers a device timing."""

    precision = "fp32"
    num_classes = 3

    def __init__(self, name: str, seconds: dict[str, float]) -> None:
        self.name, self.seconds, self.path = name, seconds, Path(__file__)
        self.timings = tuple(seconds)
        self.calls: list[tuple[str | None, int]] = []

    def time_inference(self, images, warmup, runs, kind=None):
        self.calls.append((kind, runs))
        return [self.seconds[kind or self.timings[0]]] * runs

    def __call__(self, images):
        return np.zeros((images.shape[0], 3, *images.shape[2:]), np.float32)

    def info(self):
        return {"device": "cuda" if "device" in self.timings else "cpu", "gpu_name": "NVIDIA H200",
                "timings": list(self.timings)}


def _bench(runners):
    settings = BenchSettings(data=DATA, input_size=(16, 24), warmup=0, runs=4, rounds=2, accuracy=False,
                             progress=False)
    return bench(runners, settings)


def test_gpu_runners_report_device_time_and_end_to_end_separately():
    trt = _Timed("tensorrt", {"device": 0.002, "end_to_end": 0.010})
    torch_cuda = _Timed("torch", {"device": 0.004, "end_to_end": 0.012})
    payload = _bench({"engine": trt, "eager": torch_cuda})
    engine, eager = payload["results"]
    assert engine["timing"] == "device" and engine["latency"]["p50_ms"] == pytest.approx(2.0)
    assert engine["latency_end_to_end"]["p50_ms"] == pytest.approx(10.0)
    assert eager["latency"]["p50_ms"] == pytest.approx(4.0)
    assert {kind for kind, _ in trt.calls} == {"device", "end_to_end"}
    (r,) = payload["ratios"]
    assert r["timing"] == "device" and r["speedup_p50"] == pytest.approx(2.0 / 4.0)
    table = bench_table(payload)
    assert "end-to-end p50 ms" in table and "device" in table


def test_gpu_against_cpu_compares_end_to_end():
    cpu = _Timed("onnxruntime", {"end_to_end": 0.050})
    gpu = _Timed("tensorrt", {"device": 0.002, "end_to_end": 0.010})
    payload = _bench({"cpu": cpu, "gpu": gpu})
    assert payload["results"][0]["timing"] == "end_to_end" and payload["results"][0]["latency_end_to_end"]
    (r,) = payload["ratios"]
    assert r["timing"] == "end_to_end" and r["speedup_p50"] == pytest.approx(50.0 / 10.0)
    assert cpu.calls and all(kind is None for kind, _ in cpu.calls)  # a one-timing runner is not asked for a kind


def test_latency_of_reads_the_named_timing():
    result = {"timing": "device", "latency": {"p50_ms": 1.0, "mean_ms": 1.0},
              "latency_end_to_end": {"p50_ms": 3.0, "mean_ms": 3.0}}
    assert latency_of(result, "device")["p50_ms"] == 1.0 and latency_of(result, "end_to_end")["p50_ms"] == 3.0
    cpu = {"timing": "end_to_end", "latency": {"p50_ms": 5.0, "mean_ms": 5.0}, "latency_end_to_end": None}
    assert latency_of(cpu, "device") is None and latency_of(cpu, "end_to_end")["p50_ms"] == 5.0
    assert ratios([dict(cpu, label="a", accuracy=None), dict(result, label="b", accuracy=None)])[0]["timing"] == "end_to_end"
