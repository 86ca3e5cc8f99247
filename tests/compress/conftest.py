"""Small models for the compression tests: 16-channel heads, so ``round_to=8`` can halve them."""

from __future__ import annotations

import pytest
import torch

HEIGHT, WIDTH = 64, 96


def small_model(arch: str = "deeplabv3plus_resnet18", num_classes: int = 3, **overrides) -> torch.nn.Module:
    from segprune.models import create_model

    torch.manual_seed(0)
    overrides = {"aspp_channels": 16, "decoder_channels": 16, "low_level_channels": 16, **overrides}
    return create_model(arch, num_classes=num_classes, **overrides).eval()


@pytest.fixture
def example() -> torch.Tensor:
    return torch.randn(1, 3, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(1))


@pytest.fixture
def calib() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Two (images, labels) batches of two images."""
    g = torch.Generator().manual_seed(2)
    return [(torch.randn(2, 3, HEIGHT, WIDTH, generator=g), torch.randint(0, 3, (2, HEIGHT, WIDTH), generator=g))
            for _ in range(2)]
