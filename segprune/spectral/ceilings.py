"""Reconstruction ceilings: the best mIoU any model can reach on a grid or with weak labels.

Each ceiling degrades the ground truth itself and scores it against the original:
band-limiting to ``f`` (one-hot maps, ideal DFT low-pass, argmax), down- and up-sampling
through a grid (area down, bilinear up, argmax: what a network predicting on that grid
and upsampling its logits can at best do), and block-wise majority labels of block size
``b``. All three are exactly 100 at ``f = 1``, at the full-size grid and at ``b = 1``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from segprune.data.blocks import block_labels
from segprune.data.labels import one_hot
from segprune.metrics import ConfusionMatrix, class_map
from segprune.spectral.bands import band_mask, check_keep


def lowpass_labels(labels: torch.Tensor, num_classes: int, keep: float, ignore_index: int = 255) -> torch.Tensor:
    """Argmax of the one-hot maps after keeping only band ``keep`` of their DFT."""
    check_keep(keep)
    onehot = one_hot(labels, num_classes, ignore_index)
    return _lowpass(onehot, torch.fft.rfft2(onehot) if keep < 1.0 else None, keep)


def grid_labels(labels: torch.Tensor, num_classes: int, grid: tuple[int, int], ignore_index: int = 255) -> torch.Tensor:
    """Argmax after area-downsampling the one-hot maps to ``grid`` and bilinear upsampling back."""
    return _through_grid(one_hot(labels, num_classes, ignore_index), grid)


def _lowpass(onehot: torch.Tensor, spec: torch.Tensor | None, keep: float) -> torch.Tensor:
    if keep >= 1.0:
        return class_map(onehot)
    h, w = onehot.shape[-2:]
    spec = spec * band_mask(h, w, keep, onesided=True, device=onehot.device)
    return class_map(torch.fft.irfft2(spec, s=(h, w)))


def _through_grid(onehot: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    h, w = onehot.shape[-2:]
    if tuple(grid) == (h, w):
        return class_map(onehot)
    small = F.interpolate(onehot, size=grid, mode="area") if grid[0] <= h and grid[1] <= w else \
        F.interpolate(onehot, size=grid, mode="bilinear", align_corners=False)
    return class_map(F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False))


class Ceilings:
    """Accumulates the three ceilings over a dataset for several settings at once.

    A batch's one-hot maps and their spectrum are computed once and shared by every
    setting: they are most of the cost.
    """

    def __init__(self, num_classes: int, keeps=(), grids=(), blocks=(), ignore_index: int = 255) -> None:
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.keeps, self.grids, self.blocks = list(keeps), [tuple(g) for g in grids], list(blocks)
        for keep in self.keeps:
            check_keep(keep)
        self._lowpass = {k: ConfusionMatrix(num_classes, ignore_index) for k in self.keeps}
        self._grid = {g: ConfusionMatrix(num_classes, ignore_index) for g in self.grids}
        self._block = {b: ConfusionMatrix(num_classes, ignore_index) for b in self.blocks}

    def update(self, labels: torch.Tensor) -> None:
        k, ig = self.num_classes, self.ignore_index
        labels = torch.as_tensor(labels).long()
        onehot = one_hot(labels, k, ig)
        spec = torch.fft.rfft2(onehot) if any(keep < 1.0 for keep in self.keeps) else None
        for keep, cm in self._lowpass.items():
            cm.update(_lowpass(onehot, spec, keep), labels)
        for grid, cm in self._grid.items():
            cm.update(_through_grid(onehot, grid), labels)
        for b, cm in self._block.items():
            cm.update(block_labels(labels, k, b, "majority", ignore_index=ig, onehot=onehot), labels)

    def results(self) -> dict[str, list[dict]]:
        return {
            "lowpass": [{"keep": k, "miou": cm.compute().miou} for k, cm in self._lowpass.items()],
            "grid": [{"grid": list(g), "miou": cm.compute().miou} for g, cm in self._grid.items()],
            "block": [{"block": b, "miou": cm.compute().miou} for b, cm in self._block.items()],
        }
