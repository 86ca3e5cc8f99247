"""Fixtures for the data tests: the real CamVid root, and writers for tiny fake dataset trees."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CAMVID_DEFAULT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "camvid"


@pytest.fixture(scope="session")
def camvid_root() -> Path:
    """The real CamVid folder (``SEGPRUNE_CAMVID`` overrides); skips the test when it is absent."""
    root = Path(os.environ.get("SEGPRUNE_CAMVID", CAMVID_DEFAULT))
    if not (root / "train.txt").is_file():
        pytest.skip(f"CamVid not found at {root} (set SEGPRUNE_CAMVID to its folder to run this test)")
    return root


def save_png(path: Path, array: np.ndarray, palette: list[int] | None = None) -> Path:
    """Write ``array`` (HxWx3 RGB or HxW 8-bit) as a PNG; with ``palette``, as a "P" mode PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8))
    if palette is not None:
        image.putpalette(palette)  # turns the L image into P mode, keeping the values as indices
    image.save(path)
    return path


def random_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def camvid_tree(root: Path, frames: dict[str, list[str]], size: tuple[int, int] = (8, 8)) -> Path:
    """A SegNet-layout CamVid folder holding the named frames (``<video>_<number>``) of each split:
    random images, all-zero labels, and the split lists; returns ``root``. Frame names carry the
    video, so the held-out-video splits can be built from it."""
    for split, names in frames.items():
        for i, name in enumerate(names):
            save_png(root / split / f"{name}.png", random_image(*size, seed=i))
            save_png(root / f"{split}annot" / f"{name}.png", np.zeros(size, np.uint8))
        (root / f"{split}.txt").write_text("".join(f"{split}/{n}.png {split}annot/{n}.png\n" for n in names))
    return root


@pytest.fixture
def png() -> Callable[..., Path]:
    """``png(path, array, palette=None)`` writes a PNG (see :func:`save_png`)."""
    return save_png


@pytest.fixture
def rgb() -> Callable[..., np.ndarray]:
    """``rgb(h, w, seed=0)`` makes a random uint8 RGB image."""
    return random_image


@pytest.fixture
def fake_camvid(tmp_path: Path) -> Callable[..., Path]:
    """Build a SegNet-layout CamVid tree whose masks are the given arrays; returns its root."""

    def build(masks: list[np.ndarray], split: str = "train") -> Path:
        lines = []
        for i, mask in enumerate(masks):
            name = f"0001TP_{i:06d}.png"
            save_png(tmp_path / split / name, random_image(*mask.shape, seed=i))
            save_png(tmp_path / f"{split}annot" / name, mask)
            lines.append(f"{split}/{name} {split}annot/{name}\n")
        (tmp_path / f"{split}.txt").write_text("".join(lines))
        return tmp_path

    return build
