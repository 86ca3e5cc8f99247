import numpy as np
import pytest

from segprune.bench import LatencyStats, measure


def test_latency_stats_match_numpy():
    times = list(np.random.default_rng(0).uniform(0.01, 0.02, 101))
    stats = LatencyStats.from_times(times, batch_size=2)
    ms = np.asarray(times) * 1e3
    assert stats.p50_ms == pytest.approx(np.median(ms))
    assert stats.p90_ms == pytest.approx(np.percentile(ms, 90))
    assert stats.p99_ms == pytest.approx(np.percentile(ms, 99))
    assert stats.std_ms == pytest.approx(ms.std(ddof=1))
    assert stats.mad_ms == pytest.approx(np.median(np.abs(ms - np.median(ms))))
    assert stats.throughput == pytest.approx(2e3 / np.median(ms))


def test_measure_interleaves_timers_in_rounds():
    calls = []

    def timer(name):
        def run(warmup, runs):
            calls.append((name, warmup, runs))
            return [0.001] * runs
        return run

    out = measure({"a": timer("a"), "b": timer("b")}, warmup=2, runs=5, rounds=2)
    assert calls == [("a", 2, 0), ("b", 2, 0), ("a", 0, 3), ("b", 0, 3), ("a", 0, 2), ("b", 0, 2)]
    assert out["a"][0].runs == 5 and len(out["b"][1]) == 5
