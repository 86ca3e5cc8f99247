"""One call that compresses a model: ``compress_(model, CompressConfig(...), example=x, calib=batches)``.

Truncation then channel pruning, with one validated config, on any model a family adapter
supports (segprune's DeepLabV3+/DAN, SMP's DeepLabV3Plus, ...). ``segprune prune``, the
demo and the benchmarks all call this; fine-tuning composes after it
(:func:`segprune.train.finetune`), since what a user fine-tunes with (their own loop, our
``fit``) is theirs to choose.

Order: the MACs target is relative to the model as given, so pruning solves its channel
ratio with the truncation included (:func:`~segprune.compress.prune.prune_` truncates
first, then measures the channel spectra on the truncated decoder). Without a channel
amount, compression is truncation alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from segprune.compress.macs import MacReport, count_macs
from segprune.compress.scope import IMPORTANCES, check_scope, protect_names
from segprune.compress.snapshot import restored_on_failure
from segprune.compress.truncation import TruncationConfig, truncate_
from segprune.errors import ConfigError, first_line
from segprune.models.adapters import adapter_for
from segprune.models.grid import check_keep


@dataclass(frozen=True)
class CompressConfig:
    """What :func:`compress_` does.

    ``keep_freq``: the per-axis fraction of the decoder's band kept, in ``(0, 1]``
    (``None``: leave the model's truncation as it is). ``trunc_mode``: ``area``,
    ``bilinear`` or ``spectral`` resampling. ``channel_ratio`` (fraction of each in-scope
    layer's channels removed) or ``target_macs`` (fraction of the model's MACs to keep, the
    truncation included); neither means no channel pruning. ``importance``, ``scope`` and
    ``round_to`` and ``protect`` (module names that keep all their channels; unset, the scope's
    default, which at ``scope="all"`` is the stride-2/4 path) as in
    :class:`~segprune.compress.prune.PruneConfig`.
    """

    keep_freq: float | None = None
    trunc_mode: str = "area"
    channel_ratio: float | None = None
    target_macs: float | None = None
    importance: str = "spectral-l1"
    scope: str = "decoder"
    round_to: int = 8
    protect: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "protect", protect_names(self.protect, check_scope(self.scope)))
        if self.keep_freq is not None:
            object.__setattr__(self, "keep_freq", check_keep(self.keep_freq, "keep-freq"))
        TruncationConfig(1.0, self.trunc_mode)  # validates the mode
        for name in ("channel_ratio", "target_macs"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value)):
                raise ConfigError(f"--{name.replace('_', '-')} {value!r} is not a finite number")
        if self.channel_ratio is not None and self.target_macs is not None:
            raise ConfigError("give --channel-ratio or --target-macs, not both")
        if self.importance not in IMPORTANCES:
            raise ConfigError(f"--importance {self.importance!r} is not valid: use one of {', '.join(IMPORTANCES)}")
        if self.prunes:
            self.prune_config(1.0)  # validates ratio/target bounds and round_to now, before any work

    @property
    def prunes(self) -> bool:
        return self.channel_ratio is not None or self.target_macs is not None

    def prune_config(self, keep: float, trunc_mode: str | None = None):
        from segprune.compress.prune import PruneConfig

        return PruneConfig(channel_ratio=self.channel_ratio, target_macs=self.target_macs, importance=self.importance,
                           scope=self.scope, round_to=self.round_to, keep_freq=keep,
                           trunc_mode=trunc_mode or self.trunc_mode, protect=self.protect)


@dataclass
class CompressResult:
    """What :func:`compress_` did: the band kept, MACs/params before and after, and the pruning details."""

    config: CompressConfig
    family: str
    keep_freq: float
    trunc_mode: str
    macs_before: MacReport
    macs_after: MacReport
    pruning: Any = None  # PruneResult, when channels were removed

    @property
    def macs_fraction(self) -> float:
        return self.macs_after.total_macs / max(self.macs_before.total_macs, 1)

    def to_dict(self) -> dict[str, Any]:
        return {"config": asdict(self.config), "family": self.family, "keep_freq": self.keep_freq,
                "trunc_mode": self.trunc_mode, "macs_fraction": self.macs_fraction,
                "gmacs_before": self.macs_before.total_macs / 1e9, "gmacs_after": self.macs_after.total_macs / 1e9,
                "mparams_before": self.macs_before.total_params / 1e6,
                "mparams_after": self.macs_after.total_params / 1e6,
                "channel_ratio": self.pruning.channel_ratio if self.pruning is not None else 0.0,
                "channels": ({k: list(v) for k, v in self.pruning.channels.items()}
                             if self.pruning is not None else {})}


def compress_(model: nn.Module, config: CompressConfig, *, example: torch.Tensor | tuple[int, int],
              calib: Iterable | None = None) -> CompressResult:
    """Truncate and prune ``model`` in place as ``config`` says; returns what was done.

    ``example`` is a ``(1, 3, H, W)`` input or the ``(H, W)`` size the model runs at: the
    traced graph and the MAC counts use it. ``calib`` (a list of image batches or
    ``(images, labels)`` pairs) feeds the data-driven rankings (``spectral-l1``, the
    default, ``spectral``, ``taylor``). Every option is checked before the model changes,
    and a failure at any point (Ctrl-C included) restores it exactly (:mod:`segprune.compress.snapshot`).
    """
    if not isinstance(config, CompressConfig):
        raise ConfigError(f"compress_ needs a CompressConfig, got {type(config).__name__}: "
                          "use CompressConfig(keep_freq=0.75, target_macs=0.5)")
    adapter = adapter_for(model)
    if isinstance(example, torch.Tensor):
        if example.dim() != 4 or example.shape[:2] != (1, 3):
            raise ConfigError(f"example must be one (1, 3, H, W) image, got shape {tuple(example.shape)}")
        size = (int(example.shape[-2]), int(example.shape[-1]))
    else:
        size = (int(example[0]), int(example[1]))
        example = torch.zeros(1, 3, *size)
    current, mode = adapter.truncation(model)
    keep, trunc_mode = _band(config, current, mode)
    if config.prunes:
        from segprune.compress.importance import require_calibration

        require_calibration(config.importance, calib)
    pruning = None
    with restored_on_failure(model):  # a failure anywhere hands the user's model back as it was
        before = macs_at(model, size)
        if config.prunes:
            from segprune.compress.prune import prune_

            pruning = prune_(model, config.prune_config(keep, trunc_mode), example, calib)
        elif keep < current or (keep < 1.0 and trunc_mode != mode):
            truncate_(model, TruncationConfig(keep, trunc_mode))
        keep, mode = adapter.truncation(model)
        after = pruning.macs_after if pruning is not None else count_macs(adapter.meta_copy(model), size)
    return CompressResult(config, adapter.family, keep, mode, before, after, pruning)


def macs_at(model: nn.Module, size: tuple[int, int]) -> MacReport:
    """:func:`count_macs` on a shape-only copy of ``model``; a model that cannot run at ``size`` at all (its
    pooling needs a larger input, its encoder a size it divides) is the user's size to change: a ConfigError."""
    try:
        return count_macs(adapter_for(model).meta_copy(model), size)
    except RuntimeError as exc:
        raise ConfigError(f"the model does not run at {size[0]}x{size[1]} ({first_line(exc)}): use the input size "
                          "it was trained at, e.g. a larger one") from None


def _band(config: CompressConfig, current: float, mode: str) -> tuple[float, str]:
    """The keep-freq and resampling mode ``config`` asks of a model truncated at ``current`` with ``mode``.

    No keep-freq leaves the truncation as it is, its resampling mode included (a model truncated
    with bilinear resampling would otherwise change to the default area one: another model).
    """
    keep = current if config.keep_freq is None else config.keep_freq
    if keep > current:
        raise ConfigError(f"the model already runs its decoder at keep-freq {current:g}; compressing cannot widen it "
                          f"to {keep:g}: start from the untruncated model, or ask for keep-freq <= {current:g}")
    return keep, mode if config.keep_freq is None else config.trunc_mode


def check_compression(model: nn.Module, config: CompressConfig, size: tuple[int, int]) -> None:
    """Raise the ConfigError :func:`compress_` would raise for ``config`` on ``model`` at ``size``
    (a band it cannot reach, a MACs target below the floor or past the reachable), without
    changing or running the model: the checks run on a shape-only copy.

    For work that reaches ``config`` only at its end (gradual pruning), so a target that cannot
    be met fails before hours of fine-tuning, not after.
    """
    from segprune.compress.prune import check_reachable

    adapter = adapter_for(model)
    keep, trunc_mode = _band(config, *adapter.truncation(model))
    if config.prunes:
        check_reachable(model, config.prune_config(keep, trunc_mode), (int(size[0]), int(size[1])))
