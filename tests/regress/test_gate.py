"""The gate end to end on the tiny trained model: unchanged passes, degraded fails, in CLI and pytest fixture."""

from __future__ import annotations

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
    code, out, err = run_cli(["check", same, "--baseline", card, "--latency-tol", "30%"])
    assert code == 0, out + err
    bad = _bench(_degraded(tiny_checkpoint, tmp_path / "bad.safetensors"), tmp_path, "bad")
    code, out, err = run_cli(["check", bad, "--baseline", card, "--latency-tol", "30%"])
    assert code == 1 and "REGRESSION" in out and "regression in" in err


def test_planted_slowdown_fails_latency_with_identical_outputs(tiny_export, tmp_path):
    fast = tiny_export / "model.fp32.onnx"
    slow = plant_slowdown(fast, tmp_path / "slow.onnx", pairs=6, width=128)
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 48)).astype(np.float32)
    assert np.array_equal(open_runner(fast)(x), open_runner(slow)(x))
    card = tmp_path / "card"
    card.mkdir()
    _bench(fast, tmp_path, "base", "--record", card, "--no-accuracy")
    code, out, err = run_cli(["check", _bench(slow, tmp_path, "slow", "--no-accuracy"), "--baseline", card,
                              "--remeasure", "2"])
    assert code == 1 and "p50 ms" in out and "median of p50s" in out, out + err


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
    segprune_gate.record = True
    segprune_gate.check(tiny_checkpoint, baseline=card, latency_tol=0.3, **options)
    segprune_gate.record = False
    result = segprune_gate.check(tiny_checkpoint, baseline=card, latency_tol=0.3, **options)
    assert result.passed and "mIoU" in result.table
    with pytest.raises(pytest.fail.Exception, match="regression against"):
        segprune_gate.check(_degraded(tiny_checkpoint, tmp_path / "bad.safetensors"), baseline=card,
                            latency_tol=0.3, **options)


@pytest.mark.segprune_tensorrt
def test_tensorrt_marker_skips_with_the_reason_here():
    import tensorrt  # noqa: F401  (reached only where TensorRT exists)
