"""The gate's arithmetic, on made-up figures (deterministic)."""

from __future__ import annotations

import pytest

from segprune.regress import Tolerances, check_result, latency_limit, load_baselines, record_baselines
from segprune.regress.baselines import FILE


def _result(p50=10.0, miou=50.0, device="cpu:X:2t", mad=0.5, runs=30):
    return {"backend": "onnxruntime", "precision": "fp32", "input_shape": [1, 3, 32, 48], "model_sha256": "abc",
            "device": {"kind": "cpu", "name": "X", "threads": 2, "key": device},
            "latency": {"p50_ms": p50, "p90_ms": p50, "p99_ms": p50, "mean_ms": p50, "std_ms": 0.1, "mad_ms": mad,
                        "runs": runs},
            "accuracy": {"miou": miou, "macc": miou, "images": 8, "data": "d", "split": "val", "full_split": True}}


@pytest.fixture
def card(tmp_path):
    record_baselines(tmp_path, {"created": "t0", "results": [_result()]})
    return tmp_path


def test_limit_is_tolerance_plus_three_standard_errors_of_the_median():
    base = {"p50_ms": 10.0, "mad_ms": 1.0, "runs": 25}
    assert latency_limit(base, 0.1) == pytest.approx(11.0 + 3 * 1.4826 * 1.2533 / 5)


def test_unchanged_passes_and_accuracy_drop_fails(card):
    entries = load_baselines(card)
    assert check_result(_result(), entries).passed
    assert check_result(_result(miou=49.6), entries, Tolerances(miou=0.5)).passed
    out = check_result(_result(miou=49.4), entries, Tolerances(miou=0.5))
    assert not out.passed and [r.figure for r in out.rows if not r.passed] == ["mIoU", "mAcc"]


def test_slow_result_is_remeasured_before_it_fails(card):
    entries = load_baselines(card)
    again = iter([10.1, 10.2, 10.3])
    out = check_result(_result(p50=13.0), entries, Tolerances(remeasure=3), remeasure=lambda: next(again))
    assert out.passed  # one disturbed series does not fail the gate
    slow = iter([12.5, 12.6, 12.4])
    out = check_result(_result(p50=12.5), entries, Tolerances(remeasure=3), remeasure=lambda: next(slow))
    assert not out.passed and "median of p50s" in out.rows[-1].note
    assert check_result(_result(p50=12.5), entries, Tolerances(remeasure=0)).passed is False


def test_other_device_is_missing_not_compared_and_never_overwritten(card):
    other = _result(p50=99.0, device="cuda:H100")
    assert check_result(other, load_baselines(card)).missing
    record_baselines(card, {"created": "t1", "results": [other]})
    record_baselines(card, {"created": "t2", "results": [_result(p50=11.0)]})
    entries = load_baselines(card)
    assert sorted((e["device"]["key"], e["latency"]["p50_ms"]) for e in entries) == [("cpu:X:2t", 11.0),
                                                                                    ("cuda:H100", 99.0)]
    assert (card / FILE).is_file()


def test_subset_evaluation_is_not_compared_with_a_full_split_baseline(card):
    partial = _result()
    partial["accuracy"] = {**partial["accuracy"], "full_split": False}
    out = check_result(partial, load_baselines(card))
    assert not out.passed and "full split" in out.rows[0].note
