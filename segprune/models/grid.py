"""The decoder grid: where ``--keep-freq`` turns into a feature-map size.

The decoder of DeepLabV3+ and DAN normally runs at output stride 4 (the ``layer1`` grid).
Feature truncation (DESIGN.md, key decision 1) runs it on ``ceil(f*H4) x ceil(f*W4)``
instead, so its 3x3 convolutions cost about ``f**2``. Both the size rule and the resampling
operator live here, in two small functions, so that a later ``spectral`` mode (exact
band-limiting by DCT/DFT matrices) replaces one function without touching the models.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

RESIZE_MODES = ("bilinear", "area")

# keep*H is computed in floating point: 0.1 * 30 is 3.0000000000000004, whose ceil is 4.
# Subtracting a tolerance far below one pixel gives the size the user means.
_EPS = 1e-9


def decoder_grid(h4: int, w4: int, keep: float) -> tuple[int, int]:
    """The decoder grid for a native ``h4 x w4`` grid and per-axis keep fraction ``keep``.

    ``keep = 1`` returns the native size itself; otherwise each side is
    ``ceil(keep * side)``, at least 1, so a keep fraction never rounds a band away.
    """
    if keep >= 1.0:
        return int(h4), int(w4)
    return max(1, math.ceil(keep * h4 - _EPS)), max(1, math.ceil(keep * w4 - _EPS))


def resize_to_grid(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """Resample ``x`` (B, C, H, W) to ``size`` with ``mode``; the identity when sizes agree.

    The identity short-cut is what makes ``keep = 1`` bit-exact with the unmodified model.
    ``area`` is an anti-aliasing *down*-sampler (a box filter); asked to enlarge along
    either axis it would replicate pixels like nearest-neighbour, so it falls back to
    bilinear there. ``bilinear`` uses ``align_corners=False`` and no antialiasing, which
    exports to a plain ONNX Resize.
    """
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize mode {mode!r} is not one of {RESIZE_MODES}")
    size = (int(size[0]), int(size[1]))
    in_h, in_w = x.shape[-2:]
    if (in_h, in_w) == size:
        return x
    if mode == "area" and size[0] <= in_h and size[1] <= in_w:
        return F.interpolate(x, size=size, mode="area")
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
