"""ImageNet backbones as feature extractors with output stride 8 or 16.

Every backbone returns an ordered dict ``stem`` (stride 2), ``layer1`` (4), ``layer2`` (8),
``layer3`` (16, or 8 dilated) and ``layer4`` (32, or dilated to the output stride), and
carries ``channels`` and ``strides`` for those keys. Parameter names are torchvision's
(``conv1``, ``layer1.0.conv1``, ``features.3.conv...``) so a torchvision ImageNet state
dict loads directly. Nothing is ever downloaded: weights come from a local file or not at all.

Dilation conventions (output stride through atrous convolution instead of striding):

* ResNet: torchvision's ``replace_stride_with_dilation`` convention, for every depth. In a
  dilated stage the first block keeps the *previous* dilation (it is where the stride used to
  be) and the other blocks use the stage's dilation (2 at OS16 in layer4; 2 in layer3 and 4
  in layer4 at OS8). torchvision refuses dilation in BasicBlock (resnet18/34), so those are
  patched after construction with exactly the values torchvision would have used.
* MobileNet: torchvision's ``mobilenet_v3_large(dilated=True)`` convention: every depthwise
  conv of a dilated stage, the first included, gets the stage's dilation and stride 1.
"""

from __future__ import annotations

import os
from collections import OrderedDict

import torch
import torchvision
from torch import nn

from segprune.errors import CheckpointError
from segprune.models.config import BACKBONES, OUTPUT_STRIDES, _choice
from segprune.models.files import load_state_dict_file, state_dict_mismatch

STAGES = ("stem", "layer1", "layer2", "layer3", "layer4")
_NATIVE_STRIDES = {"stem": 2, "layer1": 4, "layer2": 8, "layer3": 16, "layer4": 32}
# End index (exclusive) of each stage in torchvision's ``features``. MobileNetV2 drops its last
# 1x1 conv to 1280 channels (as DeepLab's MobileNetV2 variant does); MobileNetV3-Large keeps
# its last 1x1 conv to 960 (as torchvision's deeplabv3_mobilenet_v3_large does).
_MOBILENET_ENDS = {
    "mobilenet_v2": {"stem": 2, "layer1": 4, "layer2": 7, "layer3": 14, "layer4": 18},
    "mobilenet_v3_large": {"stem": 2, "layer1": 4, "layer2": 7, "layer3": 13, "layer4": 17},
}


def _stage_strides(output_stride: int) -> dict[str, int]:
    return {k: min(s, output_stride) for k, s in _NATIVE_STRIDES.items()}


def _last_conv_channels(module: nn.Module) -> int:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)][-1].out_channels


class ResNetBackbone(nn.Module):
    """torchvision ResNet without ``avgpool``/``fc``, dilated to ``output_stride``."""

    dropped_prefixes = ("fc.",)

    def __init__(self, name: str, output_stride: int) -> None:
        super().__init__()
        dilate = [False, output_stride == 8, True]
        bottleneck = name in ("resnet50", "resnet101")
        net = getattr(torchvision.models, name)(weights=None, replace_stride_with_dilation=dilate if bottleneck else None)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        if not bottleneck:
            self._dilate_basic_blocks(dilate)
        self.strides = _stage_strides(output_stride)
        self.channels = {"stem": self.conv1.out_channels,
                         **{k: _last_conv_channels(getattr(self, k)) for k in STAGES[1:]}}

    def _dilate_basic_blocks(self, dilate: list[bool]) -> None:
        """What torchvision's ``_make_layer(dilate=True)`` would do if BasicBlock accepted it."""
        dilation = 1
        for stage_name, flag in zip(("layer2", "layer3", "layer4"), dilate, strict=True):
            if not flag:
                continue
            previous, dilation = dilation, dilation * 2
            for i, block in enumerate(getattr(self, stage_name)):
                d = previous if i == 0 else dilation
                if i == 0:
                    block.stride = 1
                    block.conv1.stride = (1, 1)
                    if block.downsample is not None:
                        block.downsample[0].stride = (1, 1)
                for conv in (block.conv1, block.conv2):
                    conv.dilation, conv.padding = (d, d), (d, d)

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        out: OrderedDict[str, torch.Tensor] = OrderedDict()
        x = self.relu(self.bn1(self.conv1(x)))
        out["stem"] = x
        x = self.layer1(self.maxpool(x))
        out["layer1"] = x
        x = self.layer2(x)
        out["layer2"] = x
        x = self.layer3(x)
        out["layer3"] = x
        out["layer4"] = self.layer4(x)
        return out


class MobileNetBackbone(nn.Module):
    """torchvision MobileNetV2 / V3-Large ``features``, split into stages and dilated."""

    def __init__(self, name: str, output_stride: int) -> None:
        super().__init__()
        net = getattr(torchvision.models, name)(weights=None)
        self._ends = dict(_MOBILENET_ENDS[name])
        self.features = nn.Sequential(*list(net.features)[: self._ends["layer4"]])
        self.dropped_prefixes = ("classifier.",) + tuple(
            f"features.{i}." for i in range(self._ends["layer4"], len(net.features)))
        self.strides = _stage_strides(output_stride)
        starts = dict(zip(STAGES, [0] + [self._ends[k] for k in STAGES[:-1]], strict=True))
        for stage in STAGES:
            d = _NATIVE_STRIDES[stage] // self.strides[stage]
            if d > 1:
                for block in self.features[starts[stage]: self._ends[stage]]:
                    _dilate_depthwise(block, d)
        self.channels = {k: _last_conv_channels(self.features[starts[k]: self._ends[k]]) for k in STAGES}

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        out: OrderedDict[str, torch.Tensor] = OrderedDict()
        boundaries = {end - 1: stage for stage, end in self._ends.items()}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in boundaries:
                out[boundaries[i]] = x
        return out


def _dilate_depthwise(block: nn.Module, dilation: int) -> None:
    """Stride 1 and ``dilation`` for every spatial (k > 1) conv of ``block``, padding kept 'same'."""
    for conv in block.modules():
        if isinstance(conv, nn.Conv2d) and conv.kernel_size[0] > 1:
            conv.stride = (1, 1)
            conv.dilation = (dilation, dilation)
            conv.padding = tuple((k - 1) // 2 * dilation for k in conv.kernel_size)


def build_backbone(name: str, output_stride: int, weights_path: str | os.PathLike | None = None) -> nn.Module:
    """A backbone by torchvision name, dilated to ``output_stride``, optionally with local ImageNet weights."""
    _choice("backbone", name, BACKBONES)
    _choice("output_stride", output_stride, OUTPUT_STRIDES)
    backbone = ResNetBackbone(name, output_stride) if name.startswith("resnet") else MobileNetBackbone(name, output_stride)
    if weights_path is not None:
        load_backbone_weights(backbone, weights_path, name)
    return backbone


def load_backbone_weights(backbone: nn.Module, path: str | os.PathLike, name: str = "backbone") -> None:
    """Load a torchvision ImageNet state dict, dropping only the classifier; any other mismatch is an error."""
    state = load_state_dict_file(path)
    if all(k.startswith("backbone.") for k in state):
        state = {k[len("backbone."):]: v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith(backbone.dropped_prefixes)}
    expected = {k: v.shape for k, v in backbone.state_dict().items()}
    problem = state_dict_mismatch(expected, {k: v.shape for k, v in state.items()})
    if problem:
        raise CheckpointError(f"backbone weights {path} do not fit {name}: {problem}; pass the state dict of "
                              f"torchvision.models.{name} (an ImageNet .pth file)")
    backbone.load_state_dict(state, strict=True)
