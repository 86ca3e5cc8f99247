"""Adding an architecture is registering an adapter: a network defined here, unknown to segprune's
modules, is truncated, pruned, saved and reloaded through the same pipeline."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from segprune.compress import CompressConfig, compress_
from segprune.errors import ConfigError
from segprune.models import (
    ModelAdapter,
    adapter_for,
    families,
    get_adapter,
    load_checkpoint,
    register_adapter,
    save_checkpoint,
)
from segprune.models.channels import apply_channel_overrides, channel_diff
from segprune.models.grid import decoder_grid, resize_to_grid


def block(i: int, o: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(i, o, 3, stride, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU())


class TinyNet(nn.Module):
    """An encoder (stride 4 then 8), a context conv, and a decoder fusing both at stride 4."""

    def __init__(self, classes: int = 3, width: int = 16) -> None:
        super().__init__()
        self.init = {"classes": classes, "width": width}
        self.stem = nn.Sequential(block(3, width, 2), block(width, width, 2))
        self.deep = block(width, 2 * width, 2)
        self.context = block(2 * width, 2 * width)
        self.skip = block(width, width)
        self.fuse = nn.Sequential(block(3 * width, 2 * width), block(2 * width, 2 * width))
        self.head = nn.Conv2d(2 * width, classes, 1)
        self.keep, self.mode = 1.0, "area"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.stem(x)
        context = self.context(self.deep(low))
        skip = self.skip(low)
        grid = decoder_grid(skip.shape[-2], skip.shape[-1], self.keep)
        skip = resize_to_grid(skip, grid, self.mode)
        context = F.interpolate(context, size=grid, mode="bilinear", align_corners=False)
        logits = self.head(self.fuse(torch.cat([context, skip], 1)))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


@register_adapter
class TinyAdapter(ModelAdapter):
    family = "tiny-test"
    scopes = {"decoder": ("skip", "fuse"), "head": ("context", "skip", "fuse"),
              "all": ("stem", "deep", "context", "skip", "fuse")}
    feature_layers = ("fuse:in", "fuse")

    def matches(self, model: nn.Module) -> bool:
        return isinstance(model, TinyNet)

    def describe(self, model: nn.Module) -> str:
        return f"TinyNet(width {model.init['width']})"

    def config_of(self, model: nn.Module) -> dict[str, Any]:
        return {"init": dict(model.init), "keep": model.keep, "mode": model.mode,
                "channels": channel_diff(model, self.reference(model))}

    def build(self, config: dict[str, Any]) -> nn.Module:
        model = TinyNet(**config["init"])
        apply_channel_overrides(model, config.get("channels") or {})
        model.keep, model.mode = config["keep"], config["mode"]
        return model

    def reference(self, model: nn.Module) -> nn.Module:
        with torch.device("meta"):
            return TinyNet(**model.init)

    def truncation(self, model: nn.Module) -> tuple[float, str]:
        return model.keep, model.mode

    def set_truncation(self, model: nn.Module, keep: float, mode: str) -> None:
        model.keep, model.mode = keep, mode

    def num_classes(self, model: nn.Module) -> int:
        return model.head.out_channels

    def output_stride(self, model: nn.Module) -> int:
        return 8

    def skip_layers(self, model: nn.Module) -> tuple[str, ...]:
        return ("skip",)


def test_a_registered_family_goes_through_the_pipeline(tmp_path) -> None:
    torch.manual_seed(0)
    model = TinyNet().eval()
    assert adapter_for(model).family == "tiny-test" and "tiny-test" in families()
    calib = [torch.randn(2, 3, 32, 48)]
    result = compress_(model, CompressConfig(keep_freq=0.75, target_macs=0.4, scope="all", round_to=4),
                       example=(32, 48), calib=calib)
    assert result.family == "tiny-test" and result.macs_fraction <= 0.4
    assert model.head.out_channels == 3 and model.fuse[1][0].out_channels < 32
    x = torch.randn(1, 3, 32, 48)
    with torch.no_grad():
        expected = model(x)
    save_checkpoint(tmp_path / "t.safetensors", model)
    again, info = load_checkpoint(tmp_path / "t.safetensors")
    assert isinstance(again, TinyNet) and info["family"] == "tiny-test" and again.keep == 0.75
    with torch.no_grad():
        assert torch.equal(again(x), expected)


def test_unknown_networks_and_families_say_how_to_add_an_adapter() -> None:
    with pytest.raises(ConfigError, match=r"Linear has no segprune adapter: .*register_adapter"):
        adapter_for(nn.Linear(2, 2))
    with pytest.raises(ConfigError, match=r"no model adapter for family 'nope': known families are .*segprune.*smp"):
        get_adapter("nope")
