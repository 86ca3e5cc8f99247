"""Fixtures for the model tests (one thread per test comes from tests/conftest.py)."""

from __future__ import annotations

import pytest
import torch

from tests.models._model_conformance import HEIGHT, WIDTH


@pytest.fixture
def image() -> torch.Tensor:
    """A tiny odd, non-square batch: every stride rounds differently along the two axes."""
    return torch.randn(2, 3, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(1))
