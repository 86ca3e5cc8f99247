"""ASPP atrous rates from the input size (``--atrous-rates auto``).

DeepLab's rates (6, 12, 18) at OS16 were hand-tuned for 513x513 crops. A 3x3 atrous conv of
rate r on a stride-OS feature map samples the input at offsets {-r*OS, 0, +r*OS} per axis,
so its field of view is fixed in pixels: on smaller crops the outer taps of the largest
branch fall in the padding and the branch degenerates towards a 1x1 conv; on larger crops
the taps only cover the image centre. Kim et al. 2023 (arXiv 2307.14179) set the rate from
the input size; their exact formula was not retrieved, so this module implements the
candidate rule RESEARCH.md section 3.3 derives [DERIVED]: a hypothesis to confirm by a
sweep over the base rate, not the paper's verified formula.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from segprune.errors import ConfigError

MODES = ("min",)
AUTO = "auto"


def suggest_atrous_rates(input_size: tuple[int, int], output_stride: int, n_branches: int = 3,
                         mode: str = "min") -> tuple[int, ...]:
    """Rates ``(r, 2r, ..., n*r)`` whose largest outer tap reaches about the image border.

    Rule [DERIVED in RESEARCH.md 3.3, a hypothesis, not the paper's verified formula]: the
    largest branch should satisfy ``r_max * OS ~ min(H, W) / 2``; with DeepLab's evenly
    spaced branches ``(r, 2r, ..., n*r)`` that gives ``r = min(H, W) / (2 * n * OS)``, i.e.
    ``min(H, W) / (6 * OS)`` for three branches.

    Rounding: the *base* rate is rounded half up, ``r = max(1, floor(x + 0.5))``, and the
    branches are its exact multiples, so they keep DeepLab's evenly spaced 1:2:3 tap lattice.
    Rounding each multiple of the unrounded base instead would bring ``r_max`` closer to the
    border but break the lattice (RESEARCH 3.4's "(8, 15, 23)" for CamVid at OS8 is that
    variant; this function gives (8, 16, 24)). Sanity checks: 513 at OS16 -> (5, 10, 15)
    (513/96 = 5.34; DeepLab's hand-tuned (6, 12, 18) is not reproduced by rounding),
    513 at OS8 -> (11, 22, 33), CamVid 360x480 at OS16 -> (4, 8, 12), at OS8 -> (8, 16, 24).

    Clamp: every rate is at most ``h - 1`` where ``h = ceil(min(H, W) / OS)`` is the feature
    map's short side, because from ``r >= h`` on every off-centre tap of every pixel is
    padding and the branch is exactly a 1x1 conv. That clamp only bites on tiny inputs
    (``min(H, W) < (n + 2) * OS``, e.g. 32x48 at OS16 -> (1, 1, 1)). It is deliberately not
    ``r_max * OS < min(H, W) / 2``: rounding the base lets the outer tap pass ``min(H, W)/2``
    by up to ``n/2`` feature cells (CamVid at OS16: 12 * 16 = 192 > 180), which the rule's
    own sanity checks accept.

    ``mode`` is ``"min"`` only: ASPP's dilation is square, so one rate serves both axes and
    the short side decides; a per-axis rule would need anisotropic dilations.
    """
    height, width = _check_size(input_size)
    if not _is_pos_int(output_stride):
        raise ConfigError(f"output_stride {output_stride!r} is not valid: use a positive int, e.g. 16")
    if not _is_pos_int(n_branches):
        raise ConfigError(f"n_branches {n_branches!r} is not valid: use a positive int, e.g. 3")
    if mode not in MODES:
        raise ConfigError(f"atrous rate mode {mode!r} is not valid: use 'min' (ASPP dilations are square, so "
                          "the short side sets the rate; per-axis rates would need anisotropic dilation)")
    side = min(height, width)
    base = max(1, math.floor(side / (2 * n_branches * output_stride) + 0.5))
    limit = max(1, math.ceil(side / output_stride) - 1)
    return tuple(min(k * base, limit) for k in range(1, n_branches + 1))


def resolve_atrous_rates(rates: Any, input_size: Sequence[int] | None,
                         output_stride: int) -> tuple[Any, str | None]:
    """``(rates, rule)`` for a model config: ``"auto"`` becomes ints plus a record of its origin.

    Anything but ``"auto"`` passes through unchanged with rule ``None`` (the config checks
    it). The rule string, ``"auto:min:HxW"``, tells a reader of the checkpoint that the ints
    were derived from that training crop rather than chosen by hand.
    """
    if not (isinstance(rates, str) and rates.lower() == AUTO):
        return rates, None
    if input_size is None:
        raise ConfigError("atrous_rates 'auto' needs the training crop size: pass input_size=(H, W) to "
                          "create_model (command line: --input-size or --crop-size HxW)")
    height, width = _check_size(input_size)
    return suggest_atrous_rates((height, width), output_stride), f"{AUTO}:min:{height}x{width}"


def _check_size(size: Any) -> tuple[int, int]:
    if not isinstance(size, (tuple, list)) or len(size) != 2 or not all(_is_pos_int(v) for v in size):
        raise ConfigError(f"input size {size!r} is not valid: give (H, W) as two positive ints, e.g. (360, 480)")
    return int(size[0]), int(size[1])


def _is_pos_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
