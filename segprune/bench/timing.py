"""Latency statistics and side-by-side measurement.

Timings follow trtexec's recipe: warm-up calls first (allocators, kernel selection, caches),
then many timed calls. What one call covers is the runner's business and is named in every
record: ``device`` (CUDA events around the execution, the input already on the GPU) or
``end_to_end`` (``perf_counter`` from host images to host logits). When
several models are compared, their timed calls are interleaved in rounds (A B A B ...), so
a slow drift of the machine (thermal state, another process) lands on all of them alike
and their ratio stays honest.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import asdict, dataclass

import numpy as np

# times(warmup, runs) -> per-run seconds
Timer = Callable[[int, int], list[float]]


@dataclass
class LatencyStats:
    """Per-call latency in milliseconds over ``runs`` timed calls, and the throughput it implies."""

    runs: int
    batch_size: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    mad_ms: float  # median absolute deviation: the spread the regression gate scales its tolerance by
    throughput: float  # images per second at the median latency

    @classmethod
    def from_times(cls, seconds: list[float], batch_size: int = 1) -> LatencyStats:
        if not seconds:
            raise ValueError("no timed runs")
        ms = np.asarray(seconds, dtype=np.float64) * 1e3
        p50 = float(np.percentile(ms, 50))
        return cls(runs=len(ms), batch_size=batch_size, p50_ms=p50, p90_ms=float(np.percentile(ms, 90)),
                   p99_ms=float(np.percentile(ms, 99)), mean_ms=float(ms.mean()),
                   std_ms=float(ms.std(ddof=1)) if len(ms) > 1 else 0.0, min_ms=float(ms.min()),
                   mad_ms=float(np.median(np.abs(ms - p50))), throughput=1e3 * batch_size / p50 if p50 > 0 else 0.0)

    def to_dict(self) -> dict:
        return asdict(self)


def measure(timers: Mapping[Hashable, Timer], *, warmup: int = 5, runs: int = 30, rounds: int = 3,
            batch_size: int = 1) -> dict[Hashable, tuple[LatencyStats, list[float]]]:
    """Time each timer for ``runs`` calls in total, interleaved over ``rounds``; stats and raw times per name.

    Each timer warms up once with ``warmup`` calls, then the rounds alternate between the
    timers, each round timing ``runs / rounds`` calls of each.
    """
    if runs < 1 or rounds < 1:
        raise ValueError("runs and rounds must be at least 1")
    rounds = min(rounds, runs)
    for timer in timers.values():
        timer(warmup, 0)
    times: dict[Hashable, list[float]] = {name: [] for name in timers}
    per_round = [runs // rounds + (1 if r < runs % rounds else 0) for r in range(rounds)]
    for count in per_round:
        for name, timer in timers.items():
            times[name] += timer(0, count)
    return {name: (LatencyStats.from_times(t, batch_size), t) for name, t in times.items()}


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")

