"""The encoder-decoder skeleton shared by DeepLabV3+ and DAN.

Both are ``backbone -> ASPP on layer4 -> decoder(ASPP output, backbone features) ->
bilinear upsample to the input size``; they differ only in the decoder. Keeping the
skeleton in one place fixes the module names every other stage relies on (``backbone``,
``aspp``, ``decoder.project``, ``decoder.fuse``, ``decoder.classifier``): the spectral
analysis hooks ``decoder.fuse``, pruning ignores ``decoder.classifier``, and checkpoints
store per-module channel counts under these names.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from segprune.errors import ConfigError
from segprune.models.backbones import build_backbone
from segprune.models.blocks import ASPP, ConvBNReLU, init_weights
from segprune.models.channels import apply_channel_overrides
from segprune.models.config import ModelConfig


class SegmentationModel(nn.Module):
    """Backbone, ASPP and a decoder built by the subclass; input (B, 3, H, W) -> logits (B, K, H, W).

    ``config`` is the resolved :class:`ModelConfig` the model was built from. Modules named in
    ``config.channel_overrides`` are rebuilt with the recorded channel counts (freshly
    initialised), which is how a pruned model is reconstructed before its weights are loaded.
    """

    arch: str = ""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        cfg = config.resolved()
        if cfg.arch != self.arch:
            raise ConfigError(f"{type(self).__name__} was given a config for arch {cfg.arch!r}: "
                              "build it with segprune.models.build_model(config)")
        self.config = cfg
        self.backbone = build_backbone(cfg.backbone, cfg.output_stride, cfg.backbone_weights)
        self.aspp = ASPP(self.backbone.channels["layer4"], cfg.aspp_channels, cfg.atrous_rates)
        self.decoder = self.build_decoder(cfg, self.backbone.channels)
        init_weights(self.aspp)
        init_weights(self.decoder)
        if cfg.channel_overrides:
            apply_channel_overrides(self, cfg.channel_overrides)

    def build_decoder(self, cfg: ModelConfig, channels: dict[str, int]) -> nn.Module:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone(x)
        logits = self.decoder(self.aspp(features["layer4"]), features)
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


def fuse_block(in_ch: int, channels: int) -> nn.Sequential:
    """The decoder's two 3x3 ConvBNReLU at ``channels``: the expensive part truncation shrinks."""
    return nn.Sequential(ConvBNReLU(in_ch, channels, 3), ConvBNReLU(channels, channels, 3))
