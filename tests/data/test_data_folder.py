"""write_folder and FolderDataset: exact round trip, both layouts, and the errors a user can hit."""

from __future__ import annotations

import numpy as np
import pytest

from segprune.data import FolderDataset, SyntheticScenes, build_dataset, write_folder
from segprune.errors import DataError


def test_round_trip_is_exact(tmp_path):
    data = {split: SyntheticScenes(3, size=(21, 34), num_classes=7, seed=3, split=split) for split in ("train", "val")}
    for split, ds in data.items():
        write_folder(ds, tmp_path, split, progress=False)
    assert (tmp_path / "classes.txt").read_text().splitlines() == data["train"].classes
    assert not list(tmp_path.rglob("*.tmp")), "temporary files left behind"
    for split, ds in data.items():
        back = build_dataset(f"folder:{tmp_path}", split)
        assert isinstance(back, FolderDataset) and back.classes == ds.classes and len(back) == len(ds)
        for i in range(len(ds)):
            (image, mask), (image2, mask2) = ds.read(i), back.read(i)
            assert back.sample_id(i) == ds.sample_id(i)
            np.testing.assert_array_equal(image, image2)
            np.testing.assert_array_equal(mask, mask2)
            np.testing.assert_array_equal(back.read_label(i), mask)


def test_write_refuses_other_classes(tmp_path):
    write_folder(SyntheticScenes(1, size=(16, 16), num_classes=3), tmp_path, "train", progress=False)
    with pytest.raises(DataError, match=r"classes\.txt already names"):
        write_folder(SyntheticScenes(1, size=(16, 16), num_classes=4, split="val"), tmp_path, "val", progress=False)


def test_list_layout_with_jpg_and_ignore(tmp_path, png):
    (tmp_path / "classes.txt").write_text("bg\nthing\n")
    mask = np.array([[0, 1, 255], [1, 0, 255]], dtype=np.uint8)
    png(tmp_path / "masks" / "a.png", mask)
    (tmp_path / "images").mkdir()
    from PIL import Image

    Image.fromarray(np.full((2, 3, 3), 200, np.uint8)).save(tmp_path / "images" / "a.jpg", quality=95)
    (tmp_path / "val.txt").write_text("a\n")
    ds = FolderDataset(tmp_path, "val")
    image, got = ds.read(0)
    assert image.shape == (2, 3, 3) and ds.num_classes == 2
    np.testing.assert_array_equal(got, mask.astype(np.int64))


def test_missing_split_lists_what_was_looked_for(tmp_path):
    (tmp_path / "classes.txt").write_text("a\nb\n")
    with pytest.raises(DataError) as err:
        FolderDataset(tmp_path, "test")
    msg = str(err.value)
    assert str(tmp_path / "test" / "images") in msg and str(tmp_path / "test.txt") in msg


def test_missing_classes_txt(tmp_path):
    with pytest.raises(DataError, match=r"classes\.txt does not exist: .*one class name per line"):
        FolderDataset(tmp_path, "train")
