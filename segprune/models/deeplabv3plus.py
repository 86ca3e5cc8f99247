"""DeepLabV3+ (Chen et al., ECCV 2018) with a truncatable decoder grid.

The decoder follows the reference implementation described in RESEARCH.md 1.2(b): layer1
(output stride 4) projected to 48 channels, the ASPP output bilinearly upsampled to the
same grid, concatenated (ASPP first), two 3x3 ConvBNReLU, a 1x1 classifier, then bilinear
upsampling to the input. ``decoder_keep < 1`` runs the decoder on the smaller grid of
:func:`~segprune.models.grid.decoder_grid` (feature truncation); ``decoder_keep = 1`` takes
the unmodified path, with no extra resize at all.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from segprune.models.base import SegmentationModel, fuse_block
from segprune.models.blocks import ConvBNReLU
from segprune.models.config import ModelConfig
from segprune.models.grid import decoder_grid, resize_to_grid


class DeepLabV3PlusDecoder(nn.Module):
    """``project`` (layer1 -> low-level width), ``fuse`` (two 3x3), ``classifier`` (1x1 to classes)."""

    def __init__(self, low_ch: int, aspp_ch: int, project_ch: int, channels: int, num_classes: int,
                 keep: float = 1.0, resize: str = "bilinear") -> None:
        super().__init__()
        self.project = ConvBNReLU(low_ch, project_ch, 1)
        self.fuse = fuse_block(aspp_ch + project_ch, channels)
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        self.keep = keep
        self.resize = resize

    def forward(self, context: torch.Tensor, features: dict[str, torch.Tensor]) -> torch.Tensor:
        low = self.project(features["layer1"])
        if self.keep < 1.0:
            grid = decoder_grid(low.shape[-2], low.shape[-1], self.keep)
            low = resize_to_grid(low, grid, self.resize)
        context = F.interpolate(context, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.classifier(self.fuse(torch.cat([context, low], dim=1)))


class DeepLabV3Plus(SegmentationModel):
    """DeepLabV3+: a dilated backbone, ASPP on layer4, and a layer1 skip decoder.

    Submodules: ``backbone``, ``aspp``, ``decoder`` (``project``, ``fuse``, ``classifier``).
    Any input size works, odd and non-square included; the output has the input's size.
    """

    arch = "deeplabv3plus"

    def build_decoder(self, cfg: ModelConfig, channels: dict[str, int]) -> nn.Module:
        return DeepLabV3PlusDecoder(channels["layer1"], cfg.aspp_channels, cfg.low_level_channels,
                                    cfg.decoder_channels, cfg.num_classes, cfg.decoder_keep, cfg.decoder_resize)
