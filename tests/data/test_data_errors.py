"""Every user-data problem ends in one DataError line that names the file and the fix."""

from __future__ import annotations

import numpy as np
import pytest

from segprune.data import FolderDataset, SyntheticScenes, build_dataset, write_folder
from segprune.errors import DataError


@pytest.fixture
def folder(tmp_path):
    """A valid two-image folder dataset with 3 classes."""
    write_folder(SyntheticScenes(2, size=(12, 20), num_classes=3), tmp_path, "train", progress=False)
    return tmp_path


def test_label_outside_classes_and_ignore(folder, png):
    bad = np.zeros((12, 20), np.uint8)
    bad[0, :3] = [7, 40, 255]
    path = png(folder / "train" / "masks" / "train_00001.png", bad)
    ds = FolderDataset(folder, "train")
    for read in (ds.read, ds.read_label):
        with pytest.raises(DataError) as err:
            read(1)
        msg = str(err.value)
        assert str(path) in msg and "[7, 40]" in msg and "0..2 and 255 (ignore)" in msg
        assert "fix the mask or choose the dataset type" in msg
    ds.read(0)  # the other sample is still fine


def test_image_and_mask_of_different_size(folder, png):
    path = png(folder / "train" / "masks" / "train_00000.png", np.zeros((11, 20), np.uint8))
    with pytest.raises(DataError) as err:
        FolderDataset(folder, "train").read(0)
    msg = str(err.value)
    assert str(folder / "train" / "images" / "train_00000.png") in msg and str(path) in msg
    assert "12x20" in msg and "11x20" in msg and "nearest-neighbour" in msg


def test_missing_file_listed_in_split_file(fake_camvid):
    root = fake_camvid([np.zeros((6, 8), np.uint8)] * 2)
    (root / "trainannot" / "0001TP_000001.png").unlink()
    with pytest.raises(DataError) as err:
        build_dataset(f"camvid:{root}", "train")
    msg = str(err.value)
    assert str(root / "trainannot" / "0001TP_000001.png") in msg and str(root / "train.txt") in msg
    assert "restore the file or fix" in msg


def test_missing_mask_in_folder_layout(folder):
    (folder / "train" / "masks" / "train_00001.png").unlink()
    with pytest.raises(DataError, match=r"train_00001\.png .*does not exist.*restore the file"):
        FolderDataset(folder, "train")


def test_unreadable_image(folder):
    path = folder / "train" / "images" / "train_00001.png"
    path.write_bytes(b"\x89PNG this is not an image at all")
    with pytest.raises(DataError) as err:
        FolderDataset(folder, "train").read(1)
    msg = str(err.value)
    assert str(path) in msg and "not a readable image" in msg and "re-export or re-download" in msg


def test_colour_mask_refused(folder, png):
    path = png(folder / "train" / "masks" / "train_00000.png", np.zeros((12, 20, 3), np.uint8))
    with pytest.raises(DataError, match="RGB image.*convert its colours to class indices") as err:
        FolderDataset(folder, "train").read_label(0)
    assert str(path) in str(err.value)


def test_empty_split(fake_camvid, tmp_path):
    root = fake_camvid([np.zeros((6, 8), np.uint8)])
    (root / "val.txt").write_text("# nothing here\n\n")
    with pytest.raises(DataError) as err:
        build_dataset(f"camvid:{root}", "val")
    msg = str(err.value)
    assert "empty" in msg and str(root / "val.txt") in msg and "'image label' pair" in msg


def test_empty_folder_split(tmp_path):
    (tmp_path / "classes.txt").write_text("a\nb\n")
    (tmp_path / "train" / "images").mkdir(parents=True)
    with pytest.raises(DataError, match=r"empty: .*images holds no \.png/\.jpg images; expected images in"):
        FolderDataset(tmp_path, "train")


@pytest.mark.parametrize("spec", ["imagenet:/data", "", "camvid", "synthetic:n=abc", "synthetic:depth=3",
                                  "synthetic:size=96", "synthetic:n"])
def test_bad_spec_lists_valid_forms(spec):
    with pytest.raises(DataError) as err:
        build_dataset(spec, "train")
    assert "camvid:PATH, cityscapes:PATH, voc:PATH, folder:PATH, synthetic" in str(err.value)


def test_unknown_kind_names_it():
    with pytest.raises(DataError, match=r"unknown dataset kind 'imagenet' in 'imagenet:/data'"):
        build_dataset("imagenet:/data", "train")


def test_missing_root(tmp_path):
    with pytest.raises(DataError, match=r"nowhere does not exist: check the path"):
        build_dataset(f"voc:{tmp_path / 'nowhere'}", "train")


def _data_check(folder) -> tuple[int, str]:
    from tests.helpers import run_cli

    code, _, err = run_cli(["data", "check", "--data", f"folder:{folder}", "--split", "train"])
    return code, err


def test_data_check_refuses_what_the_loaders_refuse(folder, png):
    assert _data_check(folder)[0] == 0
    image = folder / "train" / "images" / "train_00001.png"
    original = image.read_bytes()
    image.write_bytes(original[: len(original) // 2])  # truncated: a download cut short
    code, err = _data_check(folder)
    assert code == 2 and str(image) in err and "not a readable image" in err
    image.write_bytes(original)
    png(folder / "train" / "masks" / "train_00000.png", np.zeros((11, 20), np.uint8))
    code, err = _data_check(folder)
    assert code == 2 and "12x20 but its mask" in err.strip().splitlines()[-1]  # after the progress bar


@pytest.mark.parametrize("spec, says", [
    ("synthetic:n=-4", "n=-4 asks for no scenes: use n >= 1"),
    ("synthetic:n=8,n_val=0", "n_val=0 asks for no scenes: use n_val >= 1"),
])
def test_synthetic_counts_are_named_as_written(spec, says):
    for split in ("train", "val"):  # a negative n no longer passes on the val split
        with pytest.raises(DataError, match=says):
            build_dataset(spec, split)


def test_synthetic_size_is_bounded_before_anything_is_drawn(monkeypatch):
    from segprune.errors import ConfigError

    with pytest.raises(ConfigError, match=r"synthetic size 100000x100000 needs at least .* GiB, over segprune's "
                                          r"limit of 16 GiB: use a smaller size=HxW"):
        build_dataset("synthetic:size=100000x100000", "train")
    monkeypatch.setenv("SEGPRUNE_MEMORY_LIMIT_GIB", "0.0005")  # 0.5 MiB: 96x128 scenes need about 1 MB
    with pytest.raises(ConfigError, match="limit of 0.0005 GiB"):
        build_dataset("synthetic:size=96x128", "train")
