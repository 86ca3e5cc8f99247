"""Shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _few_threads():
    """Two cores are shared by everything on CI; one thread per test keeps timings sane."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def camvid_root() -> Path:
    root = Path(os.environ.get("SEGPRUNE_CAMVID", REPO.parent / "shared" / "data" / "camvid"))
    if not (root / "train.txt").is_file():
        pytest.skip(f"CamVid not found at {root} (set SEGPRUNE_CAMVID to its folder)")
    return root
