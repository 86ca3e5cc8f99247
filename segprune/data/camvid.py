"""CamVid in the SegNet layout: 11 road-scene classes at 360x480.

``root/{split}.txt`` lists ``image label`` pairs relative to ``root`` (e.g.
``train/0001TP_006690.png trainannot/0001TP_006690.png``). Label 11 ("Unlabelled") is void
and becomes :data:`~segprune.data.labels.IGNORE_INDEX`; masks that already use 255 for void
are accepted as well. Any other value above 10 means the folder is not the 11-class SegNet
version (e.g. the 32-class original) and is refused.
"""

from __future__ import annotations

import os
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


class CamVid(SegmentationDataset):
    """CamVid, SegNet's 11-class version; ``split`` names the list file (train, val, test)."""

    name = "camvid"

    def __init__(self, root: str | os.PathLike, split: str = "train", transform: Transform | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"CamVid root {self.root} is not a folder: point camvid: at the folder holding "
                            "train.txt and val.txt")
        list_path = self.root / f"{split}.txt"
        layout = _LAYOUT.format(split=split)
        samples = []
        for lineno, fields in enumerate(read_list(list_path, layout), start=1):
            if len(fields) != 2:
                raise DataError(f"{list_path} line {lineno} has {len(fields)} fields: {layout}")
            image, label = (_resolve(self.root, f) for f in fields)
            samples.append(Sample(id=image.stem, image=image, label=label))
        super().__init__(split, CAMVID_CLASSES, samples, transform,
                         source=f"{list_path} lists no images; {layout}")
        check_exist((p for s in samples for p in (s.image, s.label)), f"listed in {list_path}")
        table = {i: i for i in range(len(CAMVID_CLASSES))}
        table[CAMVID_VOID] = IGNORE_INDEX
        table[IGNORE_INDEX] = IGNORE_INDEX
        self.label_mapping = LabelMapping(
            self.name, table, f"0..{len(CAMVID_CLASSES) - 1}, {CAMVID_VOID} (ignore) and {IGNORE_INDEX} (ignore)")
