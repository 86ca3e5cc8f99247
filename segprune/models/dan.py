"""DAN, Deep Aggregation Net (Kuo et al., CVPR Workshops 2018), as reconstructed here.

What follows the paper (its abstract, RESEARCH.md 1.2(c)): an encoder-decoder network
whose decoder extracts and combines features from several encoder layers ("multi-layer
feature aggregation in decoding").

What is our reconstruction, because the paper's method section was not available: the
dilated ImageNet backbone and ASPP context module (shared with DeepLabV3+), the choice of
stages aggregated (layer1 and layer2, projected by 1x1 ConvBNReLU to 48 and 96 channels by
default), and fusion by concatenation at the finest decoder grid followed by two 3x3
ConvBNReLU and a 1x1 classifier. The paper's soft semantic labels and graph-based
fine-tuning are NOT implemented. Treat results as "a DAN-like multi-stage decoder", not as
a reproduction of the paper's numbers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from segprune.models.base import SegmentationModel, fuse_block
from segprune.models.blocks import ConvBNReLU
from segprune.models.config import DAN_STAGES, ModelConfig
from segprune.models.grid import decoder_grid, resize_to_grid


class DANDecoder(nn.Module):
    """``project`` (ModuleDict, one 1x1 ConvBNReLU per stage), ``fuse`` (two 3x3), ``classifier``.

    The grid is the finest stage's (layer1, output stride 4), or its truncation when
    ``keep < 1``. The ASPP output and coarser stages are upsampled bilinearly; features larger
    than a truncated grid are shrunk with the configured ``resize`` mode.
    """

    def __init__(self, stage_channels: dict[str, int], aspp_ch: int, project_chs: tuple[int, ...],
                 channels: int, num_classes: int, keep: float = 1.0, resize: str = "bilinear") -> None:
        super().__init__()
        self.project = nn.ModuleDict(
            {stage: ConvBNReLU(stage_channels[stage], width, 1) for stage, width in zip(DAN_STAGES, project_chs, strict=True)})
        self.fuse = fuse_block(aspp_ch + sum(project_chs), channels)
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        self.keep = keep
        self.resize = resize

    def forward(self, context: torch.Tensor, features: dict[str, torch.Tensor]) -> torch.Tensor:
        finest = features[DAN_STAGES[0]]
        projected = [proj(features[stage]) for stage, proj in self.project.items()]
        if self.keep < 1.0:
            grid = decoder_grid(finest.shape[-2], finest.shape[-1], self.keep)
            projected = [resize_to_grid(p, grid, self.resize) for p in projected]
        else:  # the unmodified path: the finest stage as it is, the coarser ones upsampled to it
            grid = finest.shape[-2:]
            projected = projected[:1] + [F.interpolate(p, size=grid, mode="bilinear", align_corners=False)
                                         for p in projected[1:]]
        context = F.interpolate(context, size=grid, mode="bilinear", align_corners=False)
        return self.classifier(self.fuse(torch.cat([context, *projected], dim=1)))


class DAN(SegmentationModel):
    """DAN-like network: dilated backbone, ASPP on layer4, decoder aggregating layer1 and layer2.

    Submodules: ``backbone``, ``aspp``, ``decoder`` (``project.layer1``, ``project.layer2``,
    ``fuse``, ``classifier``). Any input size works; the output has the input's size.
    See the module docstring for which parts follow the paper.
    """

    arch = "dan"

    def build_decoder(self, cfg: ModelConfig, channels: dict[str, int]) -> nn.Module:
        return DANDecoder(channels, cfg.aspp_channels, tuple(cfg.low_level_channels), cfg.decoder_channels,
                          cfg.num_classes, cfg.decoder_keep, cfg.decoder_resize)
