"""CamVid in the SegNet layout: 11 road-scene classes at 360x480.

``root/{split}.txt`` lists ``image label`` pairs relative to ``root`` (e.g.
``train/0001TP_006690.png trainannot/0001TP_006690.png``). Label 11 ("Unlabelled") is void
and becomes :data:`~segprune.data.labels.IGNORE_INDEX`; masks that already use 255 for void
are accepted as well. Any other value above 10 means the folder is not the 11-class SegNet
version (e.g. the 32-class original) and is refused.

Sequence-held-out splits. SegNet's val split is 101 frames of video 0016E5, which also
gives 204 of the 367 train frames, so val measures footage the model has seen the like of.
Two derived splits measure unseen footage from train and val alone (a frame's video is the
prefix of its file name, e.g. ``0006R0_f02370``):

- ``train-without-SEQ``: the train list without video ``SEQ``;
- ``video-SEQ``: every frame of video ``SEQ`` in the train and val lists.

``--split train-without-0006R0`` to train and ``--split video-0006R0`` to score gives a
held-out video while the test split stays untouched.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from segprune.data.base import Sample, SegmentationDataset, Transform
from segprune.data.files import check_exist, read_list
from segprune.data.labels import CAMVID_CLASSES, CAMVID_VOID, IGNORE_INDEX, LabelMapping
from segprune.errors import DataError

_LAYOUT = ("CamVid (SegNet layout) expects {split}.txt in the root, one 'image label' pair of paths "
           "relative to the root per line, e.g. 'train/0001TP_006690.png trainannot/0001TP_006690.png'")


def _resolve(root: Path, entry: str) -> Path:
    """Resolve a list entry relative to ``root``.

    The lists shipped with the SegNet tutorial hold absolute paths of its authors' machine
    (``/SegNet/CamVid/train/x.png``); when such a path does not exist, its last two parts
    (``train/x.png``) are taken relative to ``root`` instead.
    """
    path = Path(entry)
    if not path.is_absolute():
        return root / path
    if path.exists():
        return path
    return root.joinpath(*PurePosixPath(entry).parts[-2:])


def video_of(frame: str) -> str:
    """The video a CamVid frame comes from: its file name's prefix (``0016E5_07959`` -> ``0016E5``)."""
    return frame.split("_", 1)[0]


def _split_lists(split: str) -> tuple[tuple[str, ...], Callable[[str], bool] | None]:
    """The list files a split reads and which videos it keeps (``None``: every frame)."""
    if split.startswith("train-without-"):
        lists, seq, wanted = ("train",), split.removeprefix("train-without-"), False
    elif split.startswith("video-"):
        lists, seq, wanted = ("train", "val"), split.removeprefix("video-"), True
    else:
        return (split,), None
    if not seq:
        raise DataError(f"CamVid split {split!r} names no video: write e.g. {split}0006R0")
    return lists, lambda video: (video == seq) == wanted


def _read(root: Path, name: str) -> list[Sample]:
    """The samples ``root/{name}.txt`` lists."""
    list_path, layout = root / f"{name}.txt", _LAYOUT.format(split=name)
    samples = []
    for lineno, fields in enumerate(read_list(list_path, layout), start=1):
        if len(fields) != 2:
            raise DataError(f"{list_path} line {lineno} has {len(fields)} fields: {layout}")
        image, label = (_resolve(root, f) for f in fields)
        samples.append(Sample(id=image.stem, image=image, label=label))
    return samples


class CamVid(SegmentationDataset):
    """CamVid, SegNet's 11-class version; ``split`` names the list file (train, val, test) or a held-out split.

    ``videos`` counts the frames of each video in the split.
    """

    name = "camvid"

    def __init__(self, root: str | os.PathLike, split: str = "train", transform: Transform | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"CamVid root {self.root} is not a folder: point camvid: at the folder holding "
                            "train.txt and val.txt")
        lists, keep = _split_lists(split)
        listed = [s for name in lists for s in _read(self.root, name)]
        samples = listed if keep is None else [s for s in listed if keep(video_of(s.id))]
        if listed and not samples:
            raise DataError(f"CamVid split {split!r} selects no frames: the videos in {' and '.join(lists)} are "
                            f"{', '.join(sorted({video_of(s.id) for s in listed}))}")
        where = " and ".join(f"{self.root / name}.txt" for name in lists)
        super().__init__(split, CAMVID_CLASSES, samples, transform,
                         source=f"{where} lists no images; {_LAYOUT.format(split=lists[0])}")
        check_exist((p for s in samples for p in (s.image, s.label)), f"listed in {where}")
        self.videos = dict(sorted(Counter(video_of(s.id) for s in samples).items()))
        table = {i: i for i in range(len(CAMVID_CLASSES))}
        table[CAMVID_VOID] = IGNORE_INDEX
        table[IGNORE_INDEX] = IGNORE_INDEX
        self.label_mapping = LabelMapping(
            self.name, table, f"0..{len(CAMVID_CLASSES) - 1}, {CAMVID_VOID} (ignore) and {IGNORE_INDEX} (ignore)")
