import pytest
import torch
from torch import nn

from segprune.compress import TruncationConfig, count_macs, truncate_
from segprune.models import create_model
from tests.compress.conftest import HEIGHT, WIDTH, small_model


def test_conv_macs_agree_with_torch_pruning():
    tp = pytest.importorskip("torch_pruning")
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=2, dilation=2, bias=False),
        nn.Conv2d(16, 16, 3, padding=1, groups=4, bias=False),
        nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5, bias=False)).eval()
    report = count_macs(model, (30, 41))
    _, params, layer_flops, _ = tp.utils.count_ops_and_params(model, torch.zeros(1, 3, 30, 41), layer_wise=True)
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            assert report.layers[name] == layer_flops[module], name
    assert report.total_params == params == sum(p.numel() for p in model.parameters())
    assert report.macs["total"] == sum(report.layers.values())


def test_research_decoder_figure():
    """RESEARCH.md 1.2(b): DeepLabV3+ fuse convs + classifier at 360x480, K=11: 13.97 / 3.49 GMAC."""
    with torch.device("meta"):  # shapes only: no compute, no memory
        model = create_model("deeplabv3plus_resnet50", 11)
    for keep, expected in ((1.0, 13.97e9), (0.5, 3.49e9)):
        truncate_(model, TruncationConfig(keep, "area"))
        report = count_macs(model, (360, 480))
        assert report.macs_of(["decoder.fuse", "decoder.classifier"]) == pytest.approx(expected, rel=0.01)
    assert report.macs["aspp"] == pytest.approx(10.36e9, rel=0.01)  # the table's ASPP reference column


def test_groups_truncation_and_spectral_matmuls():
    model = small_model().train()
    full = count_macs(model, (HEIGHT, WIDTH))
    assert model.training  # mode restored
    assert set(full.macs) == {"backbone", "aspp", "decoder", "total"}
    assert full.macs["total"] == full.macs["backbone"] + full.macs["aspp"] + full.macs["decoder"]
    assert full.params["total"] == sum(p.numel() for p in model.parameters())
    truncate_(model, TruncationConfig(0.5, "area"))
    area = count_macs(model, (HEIGHT, WIDTH))
    assert area.macs["backbone"] == full.macs["backbone"] and area.macs["aspp"] == full.macs["aspp"]
    fuse = ["decoder.fuse", "decoder.classifier"]
    assert area.macs_of(fuse) * 4 == full.macs_of(fuse)  # 16x24 -> 8x12: exactly a quarter
    truncate_(model, TruncationConfig(0.5, "spectral"))
    spectral = count_macs(model, (HEIGHT, WIDTH))
    # 16 projected channels, 16x24 -> 8x12: rows first costs h*W*(H+w) = 8*24*28 per channel
    assert spectral.layers["decoder@matmul"] == 16 * 8 * 24 * (16 + 12)
    assert spectral.macs["decoder"] == area.macs["decoder"] + spectral.layers["decoder@matmul"]
