"""Block-wise weak labels (Chen, Chiu & Wu, arXiv 2012.14123): one class per ``b x b`` block.

A block label keeps only the low-frequency content of the label map (roughly the band
``1/b`` of Nyquist per axis) and costs one decision per block instead of per pixel, so
``b = 8`` needs 1/64 of the annotation decisions. The paper's exact construction was not
retrieved (RESEARCH.md 1.2(d)); this is the majority rule it describes, with two variants:

- ``majority``: each block takes its most frequent valid class; a block with no valid
  pixel is ignore.
- ``pure``: as majority, but a block whose majority covers less than ``purity`` of its
  valid pixels is ignore (mixed blocks are not guessed).
- ``soft``: each block's class histogram, for training with soft targets.

Blocks are anchored at the top-left corner; the last row and column of blocks may be
smaller when ``b`` does not divide the size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from segprune.data.labels import one_hot
from segprune.errors import ConfigError

BLOCK_MODES = ("majority", "pure", "soft")


def block_counts(labels: torch.Tensor, num_classes: int, block: int, ignore_index: int = 255,
                 onehot: torch.Tensor | None = None) -> torch.Tensor:
    """Per-block class counts ``(B, K, ceil(H/b), ceil(W/b))`` of a ``(B, H, W)`` label batch.

    ``onehot``, the labels' :func:`~segprune.data.labels.one_hot` maps if the caller has them.
    """
    if block < 1:
        raise ConfigError(f"block size {block} must be at least 1")
    if onehot is None:
        onehot = one_hot(labels, num_classes, ignore_index)
    h, w = labels.shape[-2:]
    pad = (0, math.ceil(w / block) * block - w, 0, math.ceil(h / block) * block - h)
    return F.avg_pool2d(F.pad(onehot, pad), block, stride=block, divisor_override=1).round_()


def block_labels(labels: torch.Tensor, num_classes: int, block: int, mode: str = "majority", *,
                 purity: float = 1.0, ignore_index: int = 255, onehot: torch.Tensor | None = None) -> torch.Tensor:
    """Block-wise labels at the original resolution.

    Returns ``(B, H, W)`` class indices (``majority``/``pure``) or ``(B, K, H, W)`` class
    fractions (``soft``; all zero where a block has no valid pixel). ``(H, W)`` input gives
    output without the batch dimension. ``onehot`` as for :func:`block_counts`.
    """
    if mode not in BLOCK_MODES:
        raise ConfigError(f"block label mode {mode!r} is not one of {', '.join(BLOCK_MODES)}")
    if not 0.0 < purity <= 1.0:
        raise ConfigError(f"purity {purity} is outside (0, 1]")
    single = labels.dim() == 2
    batch = labels[None] if single else labels
    h, w = batch.shape[-2:]
    counts = block_counts(batch, num_classes, block, ignore_index, onehot)
    valid = counts.sum(1)
    if mode == "soft":
        out = counts / valid.clamp(min=1)[:, None]
        out = out.repeat_interleave(block, -2).repeat_interleave(block, -1)[..., :h, :w]
        return out[0] if single else out
    top, cls = counts.max(1)
    keep = valid > 0
    if mode == "pure":
        keep &= top >= purity * valid - 1e-6
    cls = torch.where(keep, cls, torch.full_like(cls, ignore_index))
    out = cls.repeat_interleave(block, -2).repeat_interleave(block, -1)[..., :h, :w]
    return out[0] if single else out


def annotation_cost(size: tuple[int, int], block: int) -> dict[str, float]:
    """Decisions per image with ``b x b`` blocks against per-pixel labelling."""
    blocks = math.ceil(size[0] / block) * math.ceil(size[1] / block)
    pixels = size[0] * size[1]
    return {"block": block, "blocks_per_image": blocks, "pixels_per_image": pixels, "fraction": blocks / pixels}


class BlockLabelTransform:
    """Wraps a dataset transform so training sees block-wise labels (``train --block-labels``).

    The blocks are formed on the label as read (before augmentation), as an annotator would
    draw them, then the usual transform runs on image and block label together.
    """

    def __init__(self, inner, num_classes: int, block: int, mode: str = "majority", purity: float = 1.0,
                 ignore_index: int = 255) -> None:
        if mode == "soft":
            raise ConfigError("soft block labels need a soft-target loss; use --block-mode majority or pure")
        self.inner, self.num_classes, self.block = inner, num_classes, block
        self.mode, self.purity, self.ignore_index = mode, purity, ignore_index

    def __call__(self, image, mask, generator=None):
        blocked = block_labels(torch.from_numpy(mask), self.num_classes, self.block, self.mode,
                               purity=self.purity, ignore_index=self.ignore_index).numpy()
        return self.inner(image, blocked, generator)
