"""Feature truncation as an in-place transform: ``truncate_(model, TruncationConfig(0.5))``.

Truncation (DESIGN.md, key decision 1) runs the decoder's fusion on a grid of
``ceil(f*H4) x ceil(f*W4)`` instead of the native output-stride-4 grid, so its 3x3
convolutions cost about ``f**2``. Where the fusion runs and how its grid is set is the
model family's business (:mod:`segprune.models.adapters`: segprune's DeepLabV3+/DAN carry
the operator in their decoders, SMP's DeepLabV3+ gets a truncating decoder class); this
module is the validated verb that sets it, in the torchao ``quantize_(model, Config)``
style, so any supported model (and the checkpoint saved from it) is truncated alike.

Train and evaluate with the same mode: a model fine-tuned with ``area`` is not the same
function with ``spectral``.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from segprune.errors import ConfigError
from segprune.models.adapters import adapter_for
from segprune.models.grid import RESIZE_MODES, check_keep


@dataclass(frozen=True)
class TruncationConfig:
    """What :func:`truncate_` sets: the per-axis kept band ``keep_freq`` and the resampling ``mode``.

    ``keep_freq`` is a fraction of the native decoder grid in ``(0, 1]``; ``1`` is the
    unmodified model, bit for bit. ``mode`` is one of ``RESIZE_MODES``: ``area`` (cheap box
    filter, dynamic shapes), ``spectral`` (exact DCT band-limiting as two MatMuls, static
    shapes) or ``bilinear`` (no anti-aliasing).
    """

    keep_freq: float
    mode: str = "area"

    def __post_init__(self) -> None:
        object.__setattr__(self, "keep_freq", check_keep(self.keep_freq, "keep-freq"))
        if self.mode not in RESIZE_MODES:
            raise ConfigError(f"--trunc-mode {self.mode!r} is not valid: use one of {', '.join(RESIZE_MODES)}")




def truncate_(model: nn.Module, config: TruncationConfig) -> nn.Module:
    """Run ``model``'s decoder on the grid ``config.keep_freq`` selects; returns ``model`` (changed in place).

    The adapter records the truncation where a checkpoint saved afterwards finds it. No
    weights change: truncation removes activations, not parameters, so it composes with
    channel pruning in either order.
    """
    if not isinstance(config, TruncationConfig):
        raise ConfigError(f"truncate_ needs a TruncationConfig, got {type(config).__name__}: "
                          "use TruncationConfig(keep_freq=0.5, mode='area')")
    adapter_for(model).set_truncation(model, config.keep_freq, config.mode)
    return model
