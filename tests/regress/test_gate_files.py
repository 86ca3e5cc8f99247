"""Malformed gate files are user errors (exit 2, the field named), never regressions or silent passes."""

from __future__ import annotations

import copy
import json
import re

import pytest

from segprune.regress import record_baselines
from tests.helpers import run_cli


def _report() -> dict:
    result = {"label": "m", "model": "m.onnx", "backend": "onnxruntime", "precision": "fp32",
              "device": {"kind": "cpu", "name": "cpu", "threads": 1, "key": "cpu:test:1t"},
              "input_shape": [1, 3, 32, 48],
              "latency": {"p50_ms": 10.0, "p90_ms": 11.0, "p99_ms": 12.0, "mean_ms": 10.2, "std_ms": 0.5,
                          "mad_ms": 0.2, "runs": 20},
              "accuracy": {"miou": 50.0, "macc": 60.0, "images": 8, "data": "synthetic:n=8", "split": "val",
                           "full_split": True}}
    return {"schema": "segprune.bench/1", "created": "2026-12-01T00:00:00+00:00",
            "settings": {"data": "synthetic:n=8", "split": "val"}, "results": [result]}


@pytest.fixture
def card(tmp_path):
    card = tmp_path / "card"
    card.mkdir()
    record_baselines(card, _report())
    return card


def _check(tmp_path, card, report, *extra):
    path = tmp_path / "result.json"
    path.write_text(report if isinstance(report, str) else json.dumps(report))
    return run_cli(["check", path, "--baseline", card, "--remeasure", "0", *extra])


def test_a_well_formed_unchanged_result_passes(tmp_path, card) -> None:
    code, out, err = _check(tmp_path, card, _report())
    assert code == 0, out + err


@pytest.mark.parametrize("edit, message", [
    (lambda r: r.update(results=[]), "has no results: a check that compares nothing cannot pass"),
    (lambda r: r["results"][0]["latency"].pop("p50_ms"), r"results\[0\].latency.p50_ms is None, not a finite number"),
    (lambda r: r["results"][0]["latency"].update(p50_ms="fast"), "p50_ms is 'fast', not a finite number"),
    (lambda r: r["results"][0]["latency"].update(p50_ms=-1.0), r"p50_ms is -1.0: it must be positive"),
    (lambda r: r["results"][0]["accuracy"].update(miou=None), r"accuracy.miou is None, not a finite number"),
    (lambda r: r["results"][0].pop("device"), "has no 'device' with a 'key'"),
    (lambda r: r.pop("settings"), "has no 'settings'"),
])
def test_malformed_results_exit_2_naming_the_field(tmp_path, card, edit, message) -> None:
    report = _report()
    edit(report)
    code, _, err = _check(tmp_path, card, report)
    assert code == 2 and "Traceback" not in err
    assert re.search(message, err), err


def test_not_an_object_and_not_json(tmp_path, card) -> None:
    code, _, err = _check(tmp_path, card, [1, 2])
    assert code == 2 and "holds a list, not a bench report" in err
    code, _, err = _check(tmp_path, card, "{not json")
    assert code == 2 and "Traceback" not in err


def test_a_damaged_baseline_is_refused_rather_than_passing_everything(tmp_path, card) -> None:
    doc = json.loads((card / "baselines.json").read_text())
    bad = copy.deepcopy(doc)
    bad["entries"][0]["latency"]["p50_ms"] = float("inf")
    (card / "baselines.json").write_text(json.dumps(bad))  # Python writes Infinity, as a hand edit might
    code, _, err = _check(tmp_path, card, _report())
    assert code == 2 and "entries[0].latency.p50_ms is inf, not a finite number" in err
    code, _, err = _check(tmp_path, card / "baselines.json", _report())
    assert code == 2 and "is a file: pass its model card folder" in err


@pytest.mark.parametrize("option", [["--miou-tol", "nan"], ["--latency-tol=-5%"], ["--miou-tol=-1"]])
def test_bad_tolerances_are_user_errors(tmp_path, card, option) -> None:
    code, _, err = _check(tmp_path, card, _report(), *option)
    assert code == 2 and "is not valid: use a finite number >= 0" in err


def test_a_result_without_accuracy_fails_against_a_baseline_with_it(tmp_path, card) -> None:
    report = _report()
    report["results"][0]["accuracy"] = None
    code, out, err = _check(tmp_path, card, report)
    assert code == 1 and "not measured" in out
