"""Checking the gate's input files before comparing anything: a malformed file is a user error, not a regression.

A bench report or a baselines file that lacks a field, holds a string or ``null`` where a
number belongs, or a non-finite or negative figure, would otherwise surface as a
traceback (exit 1, which CI reads as "regression") or, worse, as a check that passes
what it never compared (an infinite baseline p50 lets every latency pass). Every problem is
one ConfigError naming the file, the record and the field.
"""

from __future__ import annotations

import math
from typing import Any

from segprune.errors import ConfigError

_LATENCY = ("p50_ms",)
_ACCURACY = ("miou", "macc")


def _number(value: Any, where: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where} is {value!r}, not a finite number: the file is damaged or hand-edited; "
                          "write it again with `segprune bench`")
    if value < 0 or (positive and value == 0):
        raise ConfigError(f"{where} is {value!r}: it must be {'positive' if positive else 'non-negative'}; "
                          "write the file again with `segprune bench`")
    return float(value)


def _record(record: Any, where: str, *, baseline: bool) -> None:
    if not isinstance(record, dict):
        raise ConfigError(f"{where} is a {type(record).__name__}, not a JSON object")
    for key in ("backend", "precision"):
        if not isinstance(record.get(key), str):
            raise ConfigError(f"{where} has no {key!r} (a string)")
    device = record.get("device")
    if not isinstance(device, dict) or not isinstance(device.get("key"), str):
        raise ConfigError(f"{where} has no 'device' with a 'key': it was not written by `segprune bench`")
    shape = record.get("input_shape")
    if not (isinstance(shape, list) and len(shape) == 4 and all(isinstance(v, int) and v > 0 for v in shape)):
        raise ConfigError(f"{where}.input_shape is {shape!r}: it must be 4 positive integers (N, 3, H, W)")
    latency = record.get("latency")
    if not isinstance(latency, dict):
        raise ConfigError(f"{where} has no 'latency' object")
    _number(latency.get("p50_ms"), f"{where}.latency.p50_ms", positive=True)
    if baseline:
        _number(latency.get("mad_ms", 0.0), f"{where}.latency.mad_ms")
        runs = latency.get("runs", 1)
        if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
            raise ConfigError(f"{where}.latency.runs is {runs!r}: it must be a positive integer")
    accuracy = record.get("accuracy")
    if accuracy is not None:
        if not isinstance(accuracy, dict):
            raise ConfigError(f"{where}.accuracy is a {type(accuracy).__name__}, not a JSON object or null")
        for key in _ACCURACY:
            _number(accuracy.get(key), f"{where}.accuracy.{key}")
        for key in ("data", "split"):
            if not isinstance(accuracy.get(key), str):
                raise ConfigError(f"{where}.accuracy has no {key!r} (a string)")


def check_bench_report(report: Any, path: str) -> None:
    """A ``segprune bench --report`` file with at least one well-formed result, or a ConfigError."""
    if not isinstance(report, dict):
        raise ConfigError(f"{path} holds a {type(report).__name__}, not a bench report object")
    if not str(report.get("schema", "")).startswith("segprune.bench/"):
        raise ConfigError(f"{path} is not a segprune bench report (schema {report.get('schema')!r})")
    results = report.get("results")
    if not isinstance(results, list) or not results:
        raise ConfigError(f"{path} has no results: a check that compares nothing cannot pass; benchmark a model "
                          "with `segprune bench MODEL --report FILE`")
    settings = report.get("settings")
    if not isinstance(settings, dict) or not isinstance(settings.get("data"), str):
        raise ConfigError(f"{path} has no 'settings' with the data spec: write it again with `segprune bench`")
    for i, result in enumerate(results):
        _record(result, f"{path}: results[{i}]", baseline=False)


def check_baseline_entries(entries: Any, path: str) -> list[dict[str, Any]]:
    """The well-formed entries of a baselines file, or a ConfigError naming the first bad field."""
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: 'entries' is a {type(entries).__name__}, not a list; record it again")
    for i, entry in enumerate(entries):
        _record(entry, f"{path}: entries[{i}]", baseline=True)
    return entries
