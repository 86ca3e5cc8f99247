"""Training criteria. Every loss takes ``ignore_index`` so ignore pixels never move the model."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CrossEntropy(nn.Module):
    """Pixel cross-entropy averaged over valid (non-ignore) pixels.

    Logits smaller than the labels (a model that predicts on a coarse grid) are upsampled
    bilinearly first, the usual DeepLab practice.
    """

    def __init__(self, ignore_index: int = 255, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.shape[-2:] != target.shape[-2:]:
            logits = F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
        if not (target != self.ignore_index).any():
            return logits.sum() * 0.0  # keeps the graph (and DDP) intact on an all-ignore batch
        return F.cross_entropy(logits.float(), target, ignore_index=self.ignore_index,
                               label_smoothing=self.label_smoothing)
