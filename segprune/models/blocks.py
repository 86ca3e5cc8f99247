"""Building blocks shared by the heads: ConvBNReLU and DeepLabV3's ASPP.

Module layouts follow torchvision's ``deeplabv3`` head (``convs.0`` 1x1 branch,
``convs.1-3`` atrous branches, ``convs.4`` image pooling, ``project``), so its weights map
onto ours by name and torch-pruning sees plain Conv2d/BatchNorm2d modules everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class ConvBNReLU(nn.Sequential):
    """Conv2d (no bias) -> BatchNorm2d -> ReLU, with 'same' padding for odd kernels."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 1, dilation: int = 1) -> None:
        padding = (kernel_size - 1) // 2 * dilation
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel_size, padding=padding, dilation=dilation, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        )


class PoolingBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d that survives a 1x1 map with batch size 1 in training.

    The image-pooling branch normalises one value per channel and image. PyTorch's
    BatchNorm raises ("Expected more than 1 value per channel") when a training batch holds
    a single image, e.g. the last, smaller batch of an epoch or a torch-pruning trace of a
    model left in train mode. In that one case this normalises with the running statistics
    (as in eval) instead of failing; batches of 2 or more train exactly like BatchNorm2d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] * x.shape[2] * x.shape[3] == 1 and self.track_running_stats:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        return super().forward(x)


class ASPPPooling(nn.Sequential):
    """Image-level context: global average pool -> 1x1 conv -> BN -> ReLU -> upsample.

    Pooling and upsampling are functional (``adaptive_avg_pool2d(x, 1)``,
    ``interpolate(size=...)``) so the ONNX graph is a GlobalAveragePool and a Resize to the
    input's own size, valid for every input shape.
    """

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(nn.Conv2d(in_ch, out_ch, 1, bias=False), PoolingBatchNorm(out_ch), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        y = super().forward(F.adaptive_avg_pool2d(x, 1))
        return F.interpolate(y, size=size, mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """Atrous Spatial Pyramid Pooling (DeepLabV3, Chen et al. 2017).

    A 1x1 branch, one 3x3 branch per atrous rate, and optionally an image-pooling branch;
    their concatenation is projected by a 1x1 ConvBNReLU and dropout 0.1. The rates set the
    field of view and should scale with the input size (RESEARCH.md section 3).
    """

    def __init__(self, in_ch: int, out_ch: int, rates: Sequence[int], image_pooling: bool = True) -> None:
        super().__init__()
        branches: list[nn.Module] = [ConvBNReLU(in_ch, out_ch, 1)]
        branches += [ConvBNReLU(in_ch, out_ch, 3, dilation=int(r)) for r in rates]
        if image_pooling:
            branches.append(ASPPPooling(in_ch, out_ch))
        self.convs = nn.ModuleList(branches)
        self.project = nn.Sequential(*ConvBNReLU(len(branches) * out_ch, out_ch, 1), nn.Dropout(0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.convs], dim=1))


def init_weights(module: nn.Module) -> None:
    """He initialisation for convs, unit scale for norms: what the heads start from."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
