"""Feature truncation as an in-place transform: ``truncate_(model, TruncationConfig(0.5))``.

Truncation (DESIGN.md, key decision 1) runs the decoder of DeepLabV3+/DAN on a grid of
``ceil(f*H4) x ceil(f*W4)`` instead of the native output-stride-4 grid, so its 3x3
convolutions cost about ``f**2``. The decoders already carry the operator (``keep`` and
``resize``, see :mod:`segprune.models.grid`); this module is the validated verb that sets
them, in the torchao ``quantize_(model, Config)`` style, and writes the same values into
``model.config`` so a checkpoint saved afterwards rebuilds the truncated model.

Train and evaluate with the same mode: a model fine-tuned with ``area`` is not the same
function with ``spectral``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from torch import nn

from segprune.errors import ConfigError
from segprune.models.config import ModelConfig
from segprune.models.dan import DANDecoder
from segprune.models.deeplabv3plus import DeepLabV3PlusDecoder
from segprune.models.grid import RESIZE_MODES
from segprune.spectral.bands import check_keep

TRUNCATABLE_DECODERS = (DeepLabV3PlusDecoder, DANDecoder)


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


def truncatable_decoder(model: nn.Module) -> nn.Module:
    """``model.decoder`` if it is a DeepLabV3+/DAN decoder with a truncatable grid, else ConfigError."""
    decoder = getattr(model, "decoder", None)
    if not isinstance(decoder, TRUNCATABLE_DECODERS) or not isinstance(getattr(model, "config", None), ModelConfig):
        found = type(decoder).__name__ if decoder is not None else "no .decoder attribute"
        raise ConfigError(f"{type(model).__name__} has no DeepLabV3+/DAN decoder to truncate (found {found}): "
                          "build the model with segprune.models.create_model('deeplabv3plus_...' or 'dan_...')")
    return decoder


def truncate_(model: nn.Module, config: TruncationConfig) -> nn.Module:
    """Run ``model``'s decoder on the grid ``config.keep_freq`` selects; returns ``model`` (changed in place).

    Sets the decoder's ``keep``/``resize`` and ``model.config.decoder_keep/decoder_resize``,
    so ``save_checkpoint`` records the truncation. No weights change: truncation removes
    activations, not parameters, so it composes with channel pruning in either order.
    """
    if not isinstance(config, TruncationConfig):
        raise ConfigError(f"truncate_ needs a TruncationConfig, got {type(config).__name__}: "
                          "use TruncationConfig(keep_freq=0.5, mode='area')")
    decoder = truncatable_decoder(model)
    decoder.keep = config.keep_freq
    decoder.resize = config.mode
    model.config = replace(model.config, decoder_keep=config.keep_freq, decoder_resize=config.mode)
    return model
