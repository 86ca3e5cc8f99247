"""Compression: feature truncation, channel pruning with spectral importance, MAC counts.

``compress_(model, CompressConfig(keep_freq=0.75, target_macs=0.5, scope="all"),
example=(H, W), calib=batches)`` is the one call (truncation + pruning) for any model a
family adapter supports; the verbs below it are available on their own:
``truncate_(model, TruncationConfig(0.5))`` shrinks the decoder grid; ``prune_(model,
PruneConfig(channel_ratio=0.5), example_input, calib_batches)`` removes channels with
torch-pruning; ``count_macs(model, (H, W))`` reports what both saved. The pruning names
need the optional torch-pruning dependency and are imported on first use, so truncation and
MAC counts work without it.
"""

from __future__ import annotations

import importlib
from typing import Any

from segprune.choices import IMPORTANCES, SCOPES

# Every implementation is imported on first use: ``import segprune.compress`` (and the CLI's
# ``--help``) stays free of torch, and the pruning names free of the optional torch-pruning.
_LAZY = {
    "MacReport": "macs", "count_macs": "macs", "TruncationConfig": "truncation", "truncate_": "truncation",
    "SpectralImportance": "importance", "SpectralMagnitudeImportance": "importance", "build_importance": "importance",
    "measure_channel_energy": "importance", "PruneConfig": "prune", "PruneResult": "prune", "prune_": "prune",
    "CompressConfig": "pipeline", "CompressResult": "pipeline", "compress_": "pipeline",
    "check_compression": "pipeline",
}

__all__ = [
    "CompressConfig",
    "CompressResult",
    "IMPORTANCES",
    "MacReport",
    "PruneConfig",
    "PruneResult",
    "SCOPES",
    "SpectralImportance",
    "SpectralMagnitudeImportance",
    "TruncationConfig",
    "build_importance",
    "check_compression",
    "compress_",
    "count_macs",
    "measure_channel_energy",
    "prune_",
    "truncate_",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"segprune.compress.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'segprune.compress' has no attribute {name!r}")
