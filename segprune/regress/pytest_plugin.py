"""pytest plugin (entry point ``segprune``): the regression gate as a fixture, GPU checks as markers.

In a user's test file::

    def test_pruned_model_holds(segprune_gate):
        segprune_gate.check("export/pruned/model.int8.onnx", baseline="models/pruned_camvid",
                            data="camvid:data/camvid", miou_tol=0.5, latency_tol=0.10)

    @pytest.mark.segprune_tensorrt
    def test_engine_holds(segprune_gate):
        segprune_gate.check("export/pruned/model.fp16.engine", baseline="models/pruned_camvid", data=...)

``check`` benchmarks the model like ``segprune bench`` (taking the input size and batch of
the baseline entry for this device when not given), compares it with the baseline like
``segprune check`` and fails the test with the table. No baseline for this device fails
with the command that records one; ``--segprune-record`` records instead of checking.
Markers ``segprune_cuda`` and ``segprune_tensorrt`` skip a test, with the reason, where
there is no CUDA GPU or no TensorRT.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("segprune")
    group.addoption("--segprune-record", action="store_true",
                    help="segprune_gate.check records the measured figures as baselines instead of checking them")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "segprune_cuda: needs a CUDA GPU (skipped, with the reason, where none is visible)")
    config.addinivalue_line("markers", "segprune_tensorrt: needs TensorRT and a GPU (skipped, with the reason, elsewhere)")


def _cuda_missing() -> str | None:
    try:
        import torch
    except ImportError:
        return "PyTorch is not installed"
    return None if torch.cuda.is_available() else "no CUDA GPU is visible"


def _tensorrt_missing() -> str | None:
    if importlib.util.find_spec("tensorrt") is None:
        return "TensorRT is not installed (pip install 'segprune[trt]' on a machine with an NVIDIA GPU)"
    return _cuda_missing()


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("segprune_cuda") and (why := _cuda_missing()):
        pytest.skip(why)
    if item.get_closest_marker("segprune_tensorrt") and (why := _tensorrt_missing()):
        pytest.skip(why)


@dataclass
class GateResult:
    report: dict[str, Any]
    outcomes: list
    table: str

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outcomes)


class Gate:
    """What the ``segprune_gate`` fixture returns: ``check(model, baseline=..., ...)``."""

    def __init__(self, record: bool = False) -> None:
        self.record = record

    def measure(self, model: str | Path, *, backend: str | None = None, precision: str | None = None,
                data: str | None = None, split: str = "val", input_size: tuple[int, int] | None = None,
                batch_size: int = 1, device: str = "cpu", threads: int | None = None, runs: int = 30,
                warmup: int = 5, max_images: int | None = None) -> dict[str, Any]:
        """A bench report for one model, as ``segprune bench --report`` writes it."""
        from segprune.bench import BenchSettings, bench, default_data, default_input_size, open_runner
        from segprune.report import make_report

        runner = open_runner(model, backend, device=device, precision=precision, threads=threads)
        size = tuple(input_size or default_input_size(runner))
        settings = BenchSettings(data=data or default_data(runner, size), split=split,
                                 input_size=size, batch_size=batch_size, warmup=warmup, runs=runs,
                                 max_images=max_images, progress=False)
        return make_report("bench", **bench({Path(model).name: runner}, settings, threads=threads))

    def check(self, model: str | Path, *, baseline: str | Path, miou_tol: float = 0.5, latency_tol: float = 0.10,
              remeasure: int = 3, **bench_options: Any) -> GateResult:
        """Benchmark ``model`` and fail the calling test on a regression against ``baseline``."""
        from segprune.regress import Tolerances, check_report, load_baselines, outcome_table, record_baselines
        from segprune.regress.schema import check_bench_report

        tol = Tolerances(miou=miou_tol, latency=latency_tol, remeasure=remeasure)  # checked before measuring
        report = self.measure(model, **bench_options)
        check_bench_report(report, str(model))
        if self.record:
            record_baselines(baseline, report)
        entries = load_baselines(baseline)
        outcomes = check_report(report, entries, tol)
        result = GateResult(report, outcomes, outcome_table(outcomes))
        missing = [o.key for o in outcomes if o.missing]
        if missing:
            pytest.fail(f"no baseline for {missing[0]} in {baseline}: run pytest with --segprune-record once on this "
                        "device, or `segprune bench ... --record`", pytrace=False)
        if not result.passed:
            pytest.fail(f"regression against {baseline}:\n{result.table}", pytrace=False)
        return result


@pytest.fixture
def segprune_gate(request: pytest.FixtureRequest) -> Gate:
    """The regression gate: ``segprune_gate.check(model, baseline="models/<name>", ...)``."""
    return Gate(record=bool(request.config.getoption("--segprune-record", default=False)))
