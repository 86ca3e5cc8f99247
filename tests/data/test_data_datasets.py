"""CamVid, Cityscapes and VOC on tiny generated trees, plus two real CamVid samples when present."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from segprune.data import IGNORE_INDEX, VOC, CamVid, Cityscapes, build_dataset
from segprune.errors import DataError


def test_camvid_maps_unlabelled_to_ignore(fake_camvid):
    raw = np.array([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]], dtype=np.uint8)
    root = fake_camvid([raw, np.full((3, 4), 11, np.uint8)])
    ds = build_dataset(f"camvid:{root}", "train")
    assert isinstance(ds, CamVid) and len(ds) == 2 and ds.num_classes == 11 and ds.classes[10] == "Bicyclist"
    expected = raw.astype(np.int64)
    expected[2, 3] = IGNORE_INDEX
    np.testing.assert_array_equal(ds.read_label(0), expected)
    np.testing.assert_array_equal(ds.read(1)[1], np.full((3, 4), IGNORE_INDEX))
    assert ds.sample_id(0) == "0001TP_000000"


def test_camvid_byte_masks_are_exact(fake_camvid):
    raw = np.array([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]], dtype=np.uint8)
    ds = build_dataset(f"camvid:{fake_camvid([raw])}", "train")
    small = ds.read_label(0, np.uint8)
    assert small.dtype == np.uint8
    np.testing.assert_array_equal(small, ds.read_label(0))


@pytest.mark.parametrize("dtype", [np.int64, np.uint8])
def test_camvid_rejects_values_of_other_labelings(fake_camvid, dtype):
    root = fake_camvid([np.array([[0, 12], [40, 11]], np.uint8)])
    with pytest.raises(DataError) as err:
        CamVid(root, "train").read_label(0, dtype)
    msg = str(err.value)
    assert "0001TP_000000.png holds label values [12, 40] but camvid allows 0..10, 11 (ignore)" in msg
    assert "choose the dataset type that matches it" in msg


def test_camvid_list_parsing(tmp_path, png, rgb):
    png(tmp_path / "val" / "a.png", rgb(4, 5))
    png(tmp_path / "valannot" / "a.png", np.zeros((4, 5), np.uint8))
    # comments and blank lines are skipped; SegNet's absolute paths fall back to root/<dir>/<file>
    (tmp_path / "val.txt").write_text("# SegNet list\n\n/SegNet/CamVid/val/a.png /SegNet/CamVid/valannot/a.png\n")
    ds = CamVid(tmp_path, "val")
    assert ds.samples[0].image == tmp_path / "val" / "a.png" and ds.read(0)[0].shape == (4, 5, 3)
    (tmp_path / "val.txt").write_text("val/a.png\n")
    with pytest.raises(DataError, match=r"val\.txt line 1 has 1 fields: CamVid \(SegNet layout\) expects"):
        CamVid(tmp_path, "val")


def _cityscapes_tree(root, label_ids, png, rgb):
    city = "aachen"
    png(root / "leftImg8bit" / "val" / city / f"{city}_000000_000019_leftImg8bit.png", rgb(*label_ids.shape))
    png(root / "gtFine" / "val" / city / f"{city}_000000_000019_gtFine_labelIds.png", label_ids)
    return root


def test_cityscapes_label_ids_to_train_ids(tmp_path, png, rgb):
    ids = np.array([[7, 26, 0], [23, 8, 33]], np.uint8)  # road, car, unlabeled / sky, sidewalk, bicycle
    ds = build_dataset(f"cityscapes:{_cityscapes_tree(tmp_path, ids, png, rgb)}", "val")
    assert isinstance(ds, Cityscapes) and ds.num_classes == 19
    assert ds.classes[0] == "road" and ds.classes[13] == "car" and ds.classes[18] == "bicycle"
    image, mask = ds.read(0)
    np.testing.assert_array_equal(mask, [[0, 13, IGNORE_INDEX], [10, 1, 18]])
    assert ds.sample_id(0) == "aachen_000000_000019"


def test_cityscapes_rejects_unknown_ids_and_missing_labels(tmp_path, png, rgb):
    root = _cityscapes_tree(tmp_path, np.array([[7, 34]], np.uint8), png, rgb)
    with pytest.raises(DataError, match=r"holds label values \[34\] but cityscapes allows the label ids 0\.\.33"):
        Cityscapes(root, "val").read_label(0)
    next((root / "gtFine").rglob("*.png")).unlink()
    with pytest.raises(DataError, match=r"_gtFine_labelIds\.png \(the gtFine label of an image in .*does not exist"):
        Cityscapes(root, "val")


@pytest.mark.parametrize("nest", ["", "VOCdevkit"])
def test_voc_palette_masks_with_border(tmp_path, nest, png, rgb):
    voc = tmp_path / "VOC2012"
    mask = np.full((6, 7), 255, np.uint8)  # 255 border around the object, as in VOC
    mask[1:5, 1:6] = 0
    mask[2:4, 2:5] = 15
    palette = [0, 0, 0] * 256
    palette[15 * 3: 16 * 3] = [192, 128, 128]
    palette[255 * 3:] = [224, 224, 192]
    png(voc / "SegmentationClass" / "2007_000032.png", mask, palette=palette)
    voc.joinpath("JPEGImages").mkdir()
    Image.fromarray(rgb(6, 7)).save(voc / "JPEGImages" / "2007_000032.jpg")
    (voc / "ImageSets" / "Segmentation").mkdir(parents=True)
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text("2007_000032\n")
    if nest:
        (tmp_path / nest).mkdir()
        voc.rename(tmp_path / nest / "VOC2012")
    assert Image.open(next(tmp_path.rglob("*.png"))).mode == "P"
    for root in (tmp_path, tmp_path / nest / "VOC2012"):
        ds = build_dataset(f"voc:{root}", "val")
        assert isinstance(ds, VOC) and ds.num_classes == 21 and ds.classes[15] == "person"
        np.testing.assert_array_equal(ds.read(0)[1], mask.astype(np.int64))


def test_camvid_sequence_held_out_splits(tmp_path):
    from tests.data.conftest import camvid_tree

    camvid_tree(tmp_path, {"train": ["0001TP_000010", "0006R0_000020", "0016E5_000030", "0016E5_000040"],
                           "val": ["0016E5_000050"]})
    without = CamVid(tmp_path, "train-without-0016E5")
    assert [s.id for s in without.samples] == ["0001TP_000010", "0006R0_000020"]
    assert without.videos == {"0001TP": 1, "0006R0": 1}
    video = build_dataset(f"camvid:{tmp_path}", "video-0016E5")  # train and val frames of the video
    assert video.videos == {"0016E5": 3} and len(video) == 3
    assert not {s.id for s in video.samples} & {s.id for s in without.samples}
    assert CamVid(tmp_path, "train").videos == {"0001TP": 1, "0006R0": 1, "0016E5": 2}
    with pytest.raises(DataError, match="selects no frames.*0001TP, 0006R0, 0016E5"):
        CamVid(tmp_path, "video-Seq05VD")
    with pytest.raises(DataError, match="names no video"):
        CamVid(tmp_path, "train-without-")


@pytest.mark.camvid
def test_real_camvid_held_out_video(camvid_root):
    held_out, rest = CamVid(camvid_root, "video-0006R0"), CamVid(camvid_root, "train-without-0006R0")
    assert held_out.videos == {"0006R0": 101} and rest.videos == {"0001TP": 62, "0016E5": 204}


@pytest.mark.camvid
def test_real_camvid_samples(camvid_root):
    for split in ("train", "val"):
        ds = CamVid(camvid_root, split)
        assert ds.num_classes == 11 and len(ds) > 50
        for i in (0, len(ds) - 1) if split == "train" else (0,):
            image, mask = ds.read(i)
            assert image.shape == (360, 480, 3) and image.dtype == np.uint8
            assert mask.shape == (360, 480) and mask.dtype == np.int64
            values = np.unique(mask)
            assert ((values <= 10) | (values == IGNORE_INDEX)).all()
            assert (values <= 10).sum() >= 3  # a real road scene has several classes
