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


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A tiny DeepLabV3+ trained on synthetic 32x48 scenes (keep-freq 1), shared by the deployment tests."""
    from tests.helpers import train_tiny

    torch.set_num_threads(1)
    return train_tiny(tmp_path_factory.mktemp("tiny_train"))


@pytest.fixture(scope="session")
def tiny_export(tiny_checkpoint, tmp_path_factory) -> Path:
    """``segprune export`` of the tiny model: fp32, fp16 and int8, dynamic batch and H/W."""
    from tests.helpers import run_cli

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("tiny_export")
    code, _, err = run_cli(["export", tiny_checkpoint, "--out", out, "--input-size", "32x48", "--precision",
                            "fp32,fp16,int8", "--int8-rest", "fp16", "--dynamic", "batch,hw", "--calib-images", "8", "--parity-images", "4",
                            "--quiet"])
    assert code == 0, err
    return out
