"""Segmentation models: DeepLabV3+ and DAN on dilated ImageNet backbones, and their checkpoints.

Other libraries' networks come in through model adapters (:mod:`segprune.models.adapters`;
SMP's models and torchvision's segmentation models are built in): ``load_model(path, arch=...)``
opens a segprune checkpoint or a folder segprune wrote, an SMP ``save_pretrained`` folder or a
plain weights file. A torchvision model object is made to return its logits tensor with
``logits_only_(model)`` (:mod:`segprune.models.tv`).

``create_model("deeplabv3plus_resnet50", num_classes=19, output_stride=8)`` builds a model
(``atrous_rates="auto", input_size=(H, W)`` sizes the ASPP rates to the training crop);
``save_checkpoint``/``load_checkpoint`` store it as safetensors plus a JSON config (channel
counts after pruning included), so any model, pruned or not, rebuilds without pickle.
"""

from __future__ import annotations

from segprune.models.adapters import (
    ModelAdapter,
    adapter_for,
    families,
    get_adapter,
    model_info,
    register_adapter,
)
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
from segprune.models.grid import RESIZE_MODES, check_keep, decoder_grid, resize_to_grid
from segprune.models.registry import build_model, create_model, list_models
from segprune.models.sources import load_model, load_model_for_data


def logits_only_(model, aux: str = "drop"):
    """:func:`segprune.models.tv.logits_only_` (imported on first use)."""
    from segprune.models.tv import logits_only_ as impl

    return impl(model, aux)


__all__ = [
    "ARCHS",
    "ASPP",
    "ASPPPooling",
    "BACKBONES",
    "DAN",
    "ConvBNReLU",
    "DeepLabV3Plus",
    "ModelAdapter",
    "ModelConfig",
    "RESIZE_MODES",
    "SegmentationModel",
    "adapter_for",
    "apply_channel_overrides",
    "build_backbone",
    "build_model",
    "channel_overrides_of",
    "channel_plan",
    "check_keep",
    "checkpoint_input_size",
    "create_model",
    "decoder_grid",
    "families",
    "get_adapter",
    "list_models",
    "load_backbone_weights",
    "load_checkpoint",
    "load_model",
    "load_model_for_data",
    "load_state_dict_file",
    "logits_only_",
    "model_info",
    "read_checkpoint_header",
    "register_adapter",
    "resize_to_grid",
    "save_checkpoint",
    "suggest_atrous_rates",
]
