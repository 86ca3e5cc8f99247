"""Compression: feature truncation, channel pruning with spectral importance, MAC counts.

``truncate_(model, TruncationConfig(0.5))`` shrinks the decoder grid; ``prune_(model,
PruneConfig(channel_ratio=0.5), example_input, calib_batches)`` removes channels with
torch-pruning; ``count_macs(model, (H, W))`` reports what both saved. The pruning names
need the optional torch-pruning dependency and are imported on first use, so truncation and
MAC counts work without it.
"""

from __future__ import annotations

import importlib
from typing import Any

from segprune.compress.macs import MacReport, count_macs
from segprune.compress.scope import IMPORTANCES, SCOPES
from segprune.compress.truncation import TruncationConfig, truncate_

_LAZY = {
    "SpectralImportance": "importance", "SpectralMagnitudeImportance": "importance", "build_importance": "importance",
    "measure_channel_energy": "importance", "PruneConfig": "prune", "PruneResult": "prune", "prune_": "prune",
}

__all__ = [
    "IMPORTANCES",
    "MacReport",
    "PruneConfig",
    "PruneResult",
    "SCOPES",
    "SpectralImportance",
    "SpectralMagnitudeImportance",
    "TruncationConfig",
    "build_importance",
    "count_macs",
    "measure_channel_energy",
    "prune_",
    "truncate_",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"segprune.compress.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'segprune.compress' has no attribute {name!r}")
