"""From a cut-off frequency to the grid that resolves it, as a size, an output stride and a keep-freq.

A grid of ``n`` samples along an axis of ``N`` pixels resolves frequencies up to ``n/2``
cycles, i.e. the band fraction ``n / N`` of the image's Nyquist. Labels with cut-off
``f_c`` (a fraction of the image Nyquist) therefore need ``n >= f_c * N`` per axis
(RESEARCH.md 1.2(e)). The decoder of DeepLabV3+ and DAN runs at output stride 4, so the
same grid is ``--keep-freq = n / ceil(N / 4)`` of the decoder features (DESIGN.md, key
decision 1: keep-freq is per axis and relative to the decoder features).
"""

from __future__ import annotations

import math

STANDARD_STRIDES = (1, 2, 4, 8, 16, 32)


def recommend_grid(cutoff: float, image_size: tuple[int, int], decoder_stride: int = 4,
                   strides: tuple[int, ...] = STANDARD_STRIDES) -> dict:
    """The smallest grid whose Nyquist band covers ``cutoff``, and what it means for a model.

    ``output_stride`` is the coarsest standard stride whose grid is still at least that
    size (rounding up to what the network's strides allow); ``keep_freq`` is the decoder
    truncation that yields the grid itself, capped at 1 when the decoder grid is already
    too coarse.
    """
    h, w = image_size
    grid = (max(1, math.ceil(cutoff * h - 1e-9)), max(1, math.ceil(cutoff * w - 1e-9)))
    fits = [s for s in strides if math.ceil(h / s) >= grid[0] and math.ceil(w / s) >= grid[1]]
    stride = max(fits) if fits else min(strides)
    dec = (math.ceil(h / decoder_stride), math.ceil(w / decoder_stride))
    keep = min(1.0, max(grid[0] / dec[0], grid[1] / dec[1]))
    return {
        "cutoff": cutoff,
        "grid": list(grid),
        "output_stride": stride,
        "stride_grid": [math.ceil(h / stride), math.ceil(w / stride)],
        "decoder_grid": list(dec),
        "keep_freq": keep,
        "decoder_resolves_cutoff": keep < 1.0 or (dec[0] >= grid[0] and dec[1] >= grid[1]),
    }
