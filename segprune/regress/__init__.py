"""Regression gate: baselines recorded per device, ``check`` against them, and a pytest plugin.

``record_baselines("models/<name>", bench_report)`` stores results as baselines;
``check_result(result, load_baselines("models/<name>"), Tolerances(miou=0.5, latency=0.10))``
compares a new result with them. ``segprune.regress.pytest_plugin`` exposes the same gate
to a user's tests as the ``segprune_gate`` fixture.
"""

from segprune.regress.baselines import entry_key, find_baseline, load_baselines, read_card, record_baselines
from segprune.regress.check import (
    CheckOutcome,
    CheckRow,
    Tolerances,
    check_report,
    check_result,
    latency_limit,
    outcome_table,
)

__all__ = [
    "CheckOutcome",
    "CheckRow",
    "Tolerances",
    "check_report",
    "check_result",
    "entry_key",
    "find_baseline",
    "latency_limit",
    "load_baselines",
    "outcome_table",
    "read_card",
    "record_baselines",
]
