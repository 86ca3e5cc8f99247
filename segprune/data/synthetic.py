"""Synthetic road scenes generated in memory: the demo's and the tests' data.

Each sample is a deterministic function of ``(seed, split, index)``: the label layout comes
from :mod:`segprune.data.scene`, and the image paints every class with its own base colour
and texture (oriented stripes, a checker pattern or grain), under a per-image illumination
gain, gradient and colour cast, plus sensor noise. No single pixel value identifies a
class, so a model has to learn colour and texture together, yet a small CNN learns the
task in a few epochs. Class appearance depends only on the class index, never on the seed
or split, so train and val describe the same world.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
from numpy.typing import DTypeLike

from segprune.data.base import Sample, SegmentationDataset, Transform
from segprune.data.labels import IGNORE_INDEX
from segprune.data.scene import ROLES, class_names, draw_scene
from segprune.errors import DataError
from segprune.limits import check_memory

_ROLE_COLOURS = {
    "sky": (128, 170, 215), "road": (96, 92, 100), "building": (150, 112, 92), "pole": (215, 205, 70),
    "car": (190, 45, 50), "sign": (240, 120, 30), "vegetation": (70, 130, 55), "pavement": (175, 165, 150),
    "lane_marking": (235, 235, 235), "pedestrian": (200, 70, 190),
}
_MIN_SIDE = 8
_RENDER_BYTES_PER_PIXEL = 80  # render() holds about twenty float32 values per pixel at once


@dataclass(frozen=True)
class _Appearance:
    """Per-class rendering parameters, arrays indexed by class id."""

    colour: np.ndarray  # (K, 3) base RGB
    tint: np.ndarray  # (K, 3) how the texture modulates each channel
    kx: np.ndarray  # (K,) texture wave vector, radians per pixel
    ky: np.ndarray
    stripe: np.ndarray  # (K,) amplitudes of the three texture components
    checker: np.ndarray
    grain: np.ndarray


def _appearance(num_classes: int) -> _Appearance:
    cols = np.zeros((num_classes, 3), np.float32)
    tint = np.zeros((num_classes, 3), np.float32)
    params = np.zeros((5, num_classes), np.float32)
    for c in range(num_classes):
        rng = np.random.default_rng([7919, c])  # fixed per class: identical across seeds and splits
        name = ROLES[c] if c < len(ROLES) else None
        cols[c] = _ROLE_COLOURS[name] if name else rng.uniform(30, 225, 3)
        tint[c] = rng.uniform(0.5, 1.0, 3)
        freq, angle = rng.uniform(0.04, 0.25) * 2 * np.pi, rng.uniform(0, np.pi)
        kind = c % 3  # 0 stripes, 1 checker, 2 grain
        amp = rng.uniform(14, 28)
        params[:, c] = (freq * np.cos(angle), freq * np.sin(angle), amp if kind == 0 else 3.0,
                        amp if kind == 1 else 0.0, amp * 0.6 if kind == 2 else 3.0)
    return _Appearance(cols, tint, *params)


def render(lab: np.ndarray, app: _Appearance, rng: np.random.Generator) -> np.ndarray:
    """Paint a label map into a ``uint8`` RGB image; one vectorised pass, gathers by class id."""
    h, w = lab.shape
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    k = app.colour.shape[0]
    phase = rng.uniform(0, 2 * np.pi, (2, k)).astype(np.float32)
    kx, ky = app.kx[lab], app.ky[lab]
    s1 = np.sin(kx * xx + ky * yy + phase[0][lab])
    s2 = np.sin(ky * xx - kx * yy + phase[1][lab])
    texture = app.stripe[lab] * s1 + app.checker[lab] * np.sign(s1 * s2)
    texture += app.grain[lab] * rng.standard_normal((h, w), dtype=np.float32)
    gain, gx, gy = rng.uniform(0.75, 1.2), rng.uniform(-0.25, 0.25), rng.uniform(-0.25, 0.25)
    light = gain * (1.0 + gx * (xx / w - 0.5) + gy * (yy / h - 0.5))
    cast = rng.uniform(0.92, 1.08, 3).astype(np.float32)
    image = (app.colour[lab] + texture[..., None] * app.tint[lab]) * (light[..., None] * cast)
    image += rng.uniform(2.0, 7.0) * rng.standard_normal((h, w, 3), dtype=np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


class SyntheticScenes(SegmentationDataset):
    """``n`` generated road scenes of ``size`` (H, W) with ``num_classes`` classes; no files.

    Sample ``i`` is seeded from ``(seed, split, i)``, so different splits never repeat each
    other's scenes and every run sees the same data. There are no ignore pixels.
    """

    name = "synthetic"

    def __init__(self, n: int = 64, size: tuple[int, int] = (96, 128), num_classes: int = 6, seed: int = 0,
                 split: str = "train", transform: Transform | None = None) -> None:
        height, width = (int(v) for v in size)
        if min(height, width) < _MIN_SIDE:
            raise DataError(f"synthetic size {height}x{width} is too small: use at least "
                            f"{_MIN_SIDE}x{_MIN_SIDE} pixels")
        if not 2 <= num_classes < IGNORE_INDEX:
            raise DataError(f"synthetic data needs 2..{IGNORE_INDEX - 1} classes, got {num_classes}")
        if seed < 0:
            raise DataError(f"synthetic seed must be non-negative, got {seed}")
        check_memory(f"synthetic size {height}x{width}", height * width * _RENDER_BYTES_PER_PIXEL,
                     "use a smaller size=HxW")
        self.size = (height, width)
        self.seed = int(seed)
        samples = [Sample(id=f"{split}_{i:05d}") for i in range(max(int(n), 0))]
        super().__init__(split, class_names(num_classes), samples, transform,
                         source=f"n={n} scenes were asked for; use n >= 1")
        self._app = _appearance(num_classes)

    def _rngs(self, i: int) -> tuple[np.random.Generator, np.random.Generator]:
        self._sample(i)
        index = i % len(self.samples)
        seq = np.random.SeedSequence([self.seed, zlib.crc32(self.split.encode()), index])
        label_seq, image_seq = seq.spawn(2)
        return np.random.default_rng(label_seq), np.random.default_rng(image_seq)

    def read_label(self, i: int, dtype: DTypeLike = np.int64) -> np.ndarray:
        label_rng, _ = self._rngs(i)
        return draw_scene(*self.size, self.num_classes, label_rng).astype(dtype)

    def read(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        label_rng, image_rng = self._rngs(i)
        lab = draw_scene(*self.size, self.num_classes, label_rng)
        return render(lab, self._app, image_rng), lab.astype(np.int64)
