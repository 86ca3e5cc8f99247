"""The PyTorch CUDA backend: fp16 autocast, torch.compile and CUDA graphs, timed with CUDA events.

These run only where a CUDA GPU is visible (none is lent to this project's CI); elsewhere they
skip with that reason.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segprune.bench import BenchSettings, bench, open_runner
from tests.helpers import TINY_DATA

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU is visible")]
DATA = TINY_DATA.format(n=24, n_val=8)


@pytest.mark.parametrize(("precision", "compile", "graphs"), [("fp32", False, False), ("fp16", False, False),
                                                              ("fp16", True, False), ("fp16", True, True)])
def test_cuda_runner_matches_cpu_and_times_with_events(tiny_checkpoint, precision, compile, graphs):
    cpu = open_runner(tiny_checkpoint)
    gpu = open_runner(tiny_checkpoint, device="cuda", precision=precision, compile=compile, cuda_graphs=graphs)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 48)).astype(np.float32)
    ref, out = cpu(x), gpu(x)
    agreement = (ref.argmax(1) == out.argmax(1)).mean()
    assert agreement > (0.9999 if precision == "fp32" else 0.995)
    times = gpu.time_inference(x, warmup=3, runs=5)
    assert len(times) == 5 and all(t > 0 for t in times)
    assert gpu.timings == ("device", "end_to_end")
    end_to_end = gpu.time_inference(x, warmup=1, runs=5, kind="end_to_end")
    assert len(end_to_end) == 5 and all(t > 0 for t in end_to_end)


def test_cuda_bench_record_names_the_gpu(tiny_checkpoint):
    runner = open_runner(tiny_checkpoint, device="cuda", precision="fp16")
    payload = bench({"gpu": runner}, BenchSettings(data=DATA, input_size=(32, 48), warmup=2, runs=5, progress=False))
    result = payload["results"][0]
    device = result["device"]
    assert device["kind"] == "cuda" and device["name"] == torch.cuda.get_device_name(0)
    # device time (events, input on the GPU) and end to end (host in, host out) are both reported, named
    assert result["timing"] == "device" and result["latency_end_to_end"]["runs"] == 5
