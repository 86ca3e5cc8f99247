"""The gate end to end on the tiny trained model: unchanged passes, degraded fails, in CLI and pytest fixture.

No verdict here reads this machine's clock (the suite must pass beside a CPU hog): accuracy
checks run with a latency tolerance no timing noise reaches, and the latency path is driven by
bench reports whose timings are injected. How often real noise trips the latency check, and
how reliably a real slowdown does, is measured in ``benchmarks/regression_gate.py``; the
latency arithmetic itself is unit-tested in ``test_check_logic.py``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from segprune.bench import open_runner
from segprune.models import load_checkpoint, save_checkpoint
from segprune.regress.planted import plant_slowdown
from tests.helpers import TINY_DATA, run_cli

pytestmark = pytest.mark.slow
DATA = TINY_DATA.format(n=24, n_val=8)
BENCH = ["--data", DATA, "--runs", "15", "--warmup", "3", "--threads", "1", "--no-progress"]
CLOCK_FREE = ["--latency-tol", "100000%", "--remeasure", "0"]  # latency cannot decide: accuracy alone does


def _bench(model, tmp_path, name, *extra):
    report = tmp_path / f"{name}.json"
    code, _, err = run_cli(["bench", model, *BENCH, "--report", report, *extra])
    assert code == 0, err
    return report


def _degraded(checkpoint, out):
    """The same model with one group of decoder channels zeroed: class 1 loses its evidence."""
    model, info = load_checkpoint(checkpoint)
    with torch.no_grad():
        model.decoder.classifier.weight[1].zero_()
        model.decoder.classifier.bias[1] = -10.0
    return save_checkpoint(out, model, info["metadata"])


def test_check_passes_unchanged_and_fails_degraded_accuracy(tiny_checkpoint, tmp_path):
    card = tmp_path / "card"
    card.mkdir()
    _bench(tiny_checkpoint, tmp_path, "base", "--record", card)
    same = _bench(tiny_checkpoint, tmp_path, "same")
    code, out, err = run_cli(["check", same, "--baseline", card, *CLOCK_FREE])
    assert code == 0, out + err
    bad = _bench(_degraded(tiny_checkpoint, tmp_path / "bad.safetensors"), tmp_path, "bad")
    code, out, err = run_cli(["check", bad, "--baseline", card, *CLOCK_FREE])
    assert code == 1 and "REGRESSION" in out and "regression in" in err


def _with_p50(report_path, out_path, factor: float, model=None):
    """The bench report with its timings scaled by ``factor`` (injected, not measured)."""
    report = json.loads(report_path.read_text())
    for result in report["results"]:
        for key in ("p50_ms", "p90_ms", "p99_ms", "mean_ms"):
            result["latency"][key] *= factor
        result["times_ms"] = [t * factor for t in result["times_ms"]]
        if model is not None:
            result["model"] = str(model)
    out_path.write_text(json.dumps(report))
    return out_path


def test_planted_slowdown_has_identical_outputs_and_a_slow_result_fails_latency(tiny_export, tmp_path):
    fast = tiny_export / "model.fp32.onnx"
    slow = plant_slowdown(fast, tmp_path / "slow.onnx", pairs=6, width=128)
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 48)).astype(np.float32)
    assert np.array_equal(open_runner(fast)(x), open_runner(slow)(x))
    card = tmp_path / "card"
    card.mkdir()
    base = _bench(fast, tmp_path, "base", "--record", card, "--no-accuracy")
    # the slowed result carries injected timings: 3x the baseline's, then the same again in re-measures
    slowed = _with_p50(base, tmp_path / "slow.json", 3.0, model=slow)
    code, out, err = run_cli(["check", slowed, "--baseline", card, "--remeasure", "0"])
    assert code == 1 and "p50 ms" in out, out + err
    same = _with_p50(base, tmp_path / "same.json", 1.0)
    code, out, err = run_cli(["check", same, "--baseline", card, "--remeasure", "0"])
    assert code == 0, out + err


def test_missing_baseline_gives_the_record_command(tiny_export, tmp_path):
    card = tmp_path / "empty"
    card.mkdir()
    report = _bench(tiny_export / "model.fp32.onnx", tmp_path, "r", "--no-accuracy")
    code, out, err = run_cli(["check", report, "--baseline", card])
    assert code == 2 and "NO BASELINE" in out and "--record" in err and "segprune bench" in err


def test_pytest_fixture_gate(segprune_gate, tiny_checkpoint, tmp_path):
    card = tmp_path / "card"
    card.mkdir()
    options = dict(data=DATA, runs=15, warmup=3, threads=1)
    clock_free = dict(latency_tol=1000.0, remeasure=0)  # the verdicts below are accuracy's alone
    segprune_gate.record = True
    segprune_gate.check(tiny_checkpoint, baseline=card, **clock_free, **options)
    segprune_gate.record = False
    result = segprune_gate.check(tiny_checkpoint, baseline=card, **clock_free, **options)
    assert result.passed and "mIoU" in result.table
    with pytest.raises(pytest.fail.Exception, match="regression against"):
        segprune_gate.check(_degraded(tiny_checkpoint, tmp_path / "bad.safetensors"), baseline=card,
                            **clock_free, **options)


@pytest.mark.segprune_tensorrt
def test_tensorrt_marker_runs_only_where_tensorrt_and_a_gpu_are():
    from segprune.regress.pytest_plugin import _tensorrt_missing

    assert _tensorrt_missing() is None  # the marker let this run: nothing it needs may be missing
