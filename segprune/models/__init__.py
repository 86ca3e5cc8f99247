"""Segmentation models: DeepLabV3+ and DAN on dilated ImageNet backbones, and their checkpoints.

``create_model("deeplabv3plus_resnet50", num_classes=19, output_stride=8)`` builds a model
(``atrous_rates="auto", input_size=(H, W)`` sizes the ASPP rates to the training crop);
``save_checkpoint``/``load_checkpoint`` store it as safetensors plus a JSON config (channel
counts after pruning included), so any model, pruned or not, rebuilds without pickle.
"""

from __future__ import annotations

from segprune.models.atrous import suggest_atrous_rates
from segprune.models.backbones import build_backbone, load_backbone_weights
from segprune.models.base import SegmentationModel
from segprune.models.blocks import ASPP, ASPPPooling, ConvBNReLU
from segprune.models.channels import apply_channel_overrides, channel_overrides_of, channel_plan
from segprune.models.checkpoint import (
    checkpoint_input_size,
    load_checkpoint,
    read_checkpoint_header,
    save_checkpoint,
)
from segprune.models.config import ARCHS, BACKBONES, ModelConfig
from segprune.models.dan import DAN
from segprune.models.deeplabv3plus import DeepLabV3Plus
from segprune.models.files import load_state_dict_file
from segprune.models.grid import RESIZE_MODES, decoder_grid, resize_to_grid
from segprune.models.registry import build_model, create_model, list_models

__all__ = [
    "ARCHS",
    "ASPP",
    "ASPPPooling",
    "BACKBONES",
    "DAN",
    "ConvBNReLU",
    "DeepLabV3Plus",
    "ModelConfig",
    "RESIZE_MODES",
    "SegmentationModel",
    "apply_channel_overrides",
    "build_backbone",
    "build_model",
    "channel_overrides_of",
    "channel_plan",
    "checkpoint_input_size",
    "create_model",
    "decoder_grid",
    "list_models",
    "load_backbone_weights",
    "load_checkpoint",
    "load_state_dict_file",
    "read_checkpoint_header",
    "resize_to_grid",
    "save_checkpoint",
    "suggest_atrous_rates",
]
