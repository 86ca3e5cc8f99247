"""SyntheticScenes: determinism, label contract, and the road-scene structure it promises."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segprune.data import IGNORE_INDEX, SyntheticScenes
from segprune.data.scene import ROLES, class_names
from segprune.errors import DataError


def _runs(row: np.ndarray) -> list[int]:
    """Lengths of the runs of True in a 1-D boolean array."""
    padded = np.concatenate([[False], row, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return (edges[1::2] - edges[::2]).tolist()


def test_same_seed_same_arrays_and_label_only_read_agrees():
    a, b = SyntheticScenes(3, size=(40, 56), seed=5), SyntheticScenes(3, size=(40, 56), seed=5)
    for i in range(3):
        (ia, ma), (ib, mb) = a.read(i), b.read(i)
        np.testing.assert_array_equal(ia, ib)
        np.testing.assert_array_equal(ma, mb)
        np.testing.assert_array_equal(a.read_label(i), ma)


@pytest.mark.parametrize("other", [dict(seed=1), dict(split="val")])
def test_other_seed_or_split_differs(other):
    base = SyntheticScenes(4, size=(40, 56), seed=0, split="train")
    changed = SyntheticScenes(4, size=(40, 56), **{"seed": 0, "split": "train", **other})
    for i in range(4):
        assert not np.array_equal(base.read_label(i), changed.read_label(i))
        assert not np.array_equal(base.read(i)[0], changed.read(i)[0])


@pytest.mark.parametrize("k", [2, 6, 13, 20])
def test_every_class_appears_and_labels_are_valid(k):
    data = SyntheticScenes(12, size=(64, 80), num_classes=k)
    assert data.num_classes == k == len(data.classes) == len(set(data.classes))
    seen = np.zeros(k, dtype=bool)
    for i in range(len(data)):
        image, mask = data.read(i)
        assert image.dtype == np.uint8 and image.shape == (64, 80, 3)
        assert mask.dtype == np.int64 and mask.shape == (64, 80)
        assert mask.min() >= 0 and mask.max() < k  # no ignore pixels, no stray values
        seen[np.unique(mask)] = True
    assert seen.all(), f"classes never drawn: {[data.classes[c] for c in np.flatnonzero(~seen)]}"


def test_thin_structures_and_small_objects():
    data = SyntheticScenes(8, size=(96, 128), num_classes=6)
    pole, sign = ROLES.index("pole"), ROLES.index("sign")
    thin_rows = small_signs = 0
    for i in range(len(data)):
        mask = data.read_label(i)
        for row in mask == pole:
            runs = _runs(row)
            thin_rows += sum(1 for r in runs if r <= 3)
        fraction = (mask == sign).mean()
        small_signs += 0 < fraction < 0.01
    assert thin_rows > 20  # poles are 1-3 px wide over many rows
    assert small_signs >= 4  # signs are small discs, not regions


def test_large_regions_sky_on_top_road_at_bottom():
    mask = SyntheticScenes(1, size=(96, 128)).read_label(0)
    assert (mask[0] == ROLES.index("sky")).mean() > 0.5
    assert (mask[-1] == ROLES.index("road")).mean() > 0.3


@pytest.mark.parametrize("size", [(33, 97), (97, 33), (8, 8)])
def test_odd_and_non_square_sizes(size):
    data = SyntheticScenes(2, size=size, num_classes=11, split="val")
    image, mask = data.read(1)
    assert image.shape == (*size, 3) and mask.shape == size
    x, y = data[1]
    assert x.shape == (3, *size) and x.dtype == torch.float32 and y.shape == size and y.dtype == torch.int64


def test_class_names_cover_extra_classes():
    names = class_names(14)
    assert names[: len(ROLES)] == list(ROLES) and names[len(ROLES)] == "disc_10" and len(names) == 14


@pytest.mark.parametrize("kwargs, words", [
    (dict(n=0), "empty"), (dict(n=2, size=(4, 64)), "too small"), (dict(n=2, num_classes=1), "classes"),
    (dict(n=2, num_classes=IGNORE_INDEX), "classes"),
])
def test_bad_arguments(kwargs, words):
    with pytest.raises(DataError, match=words):
        SyntheticScenes(**kwargs)


def test_index_out_of_range():
    with pytest.raises(IndexError):
        SyntheticScenes(2, size=(16, 16)).read(2)
