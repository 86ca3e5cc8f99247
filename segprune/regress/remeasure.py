"""Re-timing a bench result's model the way it was first timed, for the gate's second look."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from segprune.errors import ConfigError


def remeasurer(result: dict[str, Any], settings: dict[str, Any]) -> Callable[[], float]:
    """A function that times ``result``'s model again (same backend, precision, input, run count); returns p50 ms.

    The model file must be the one that was measured: its hash is compared with the result's.
    """
    from segprune.bench import BenchSettings, open_runner
    from segprune.bench.run import latency_images
    from segprune.bench.timing import LatencyStats
    from segprune.io import file_sha256

    path = Path(result["model"])
    if not path.is_file():
        raise ConfigError(f"cannot re-measure: {path} is gone; run `segprune bench` again, then check")
    if result.get("model_sha256") and file_sha256(path) != result["model_sha256"]:
        raise ConfigError(f"cannot re-measure: {path} changed since the bench result was written; run "
                          "`segprune bench` again, then check")
    device = "cuda" if result["device"]["kind"] == "cuda" else "cpu"
    runner = open_runner(path, result["backend"], device=device, precision=result["precision"],
                         threads=result["device"].get("threads"))
    shape = result["input_shape"]
    images = latency_images(BenchSettings(data=settings["data"], split=settings["split"],
                                          input_size=(shape[2], shape[3]), batch_size=shape[0]))
    warmup, runs = int(settings.get("warmup", 5)), int(settings.get("runs", 30))

    def again() -> float:
        return LatencyStats.from_times(runner.time_inference(images, warmup, runs), shape[0]).p50_ms

    return again


def lazy_remeasurer(result: dict[str, Any], settings: dict[str, Any]) -> Callable[[], float]:
    """:func:`remeasurer`, built only when a latency check first needs a second look."""
    state: dict[str, Callable[[], float]] = {}

    def call() -> float:
        if "fn" not in state:
            state["fn"] = remeasurer(result, settings)
        return state["fn"]()

    return call
