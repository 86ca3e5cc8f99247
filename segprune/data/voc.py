"""PASCAL VOC 2012 segmentation: 20 object classes plus background.

Layout (as unpacked from the official tar): ``VOC2012/JPEGImages/{id}.jpg``,
``VOC2012/SegmentationClass/{id}.png`` (palette PNGs whose palette *indices* are the class
ids) and ``VOC2012/ImageSets/Segmentation/{split}.txt``. VOC already marks object
boundaries and void with 255, which is :data:`~segprune.data.labels.IGNORE_INDEX`, so the
labels need no remapping; they are still checked.
"""

from __future__ import annotations

import os
from pathlib import Path

from segprune.data.base import Sample, SegmentationDataset, Transform
from segprune.data.files import check_exist, read_list
from segprune.data.labels import VOC_CLASSES, LabelMapping
from segprune.errors import DataError


def find_voc_root(root: Path) -> Path:
    """Return the ``VOC2012`` folder for ``root`` pointing at it, at ``VOCdevkit``, or at its parent."""
    candidates = [root, root / "VOC2012", root / "VOCdevkit" / "VOC2012"]
    for candidate in candidates:
        if (candidate / "ImageSets" / "Segmentation").is_dir():
            return candidate
    tried = ", ".join(str(c / "ImageSets" / "Segmentation") for c in candidates)
    raise DataError(f"no VOC2012 layout under {root} (looked for {tried}): point voc: at VOCdevkit/VOC2012 "
                    "or its parent, holding JPEGImages/, SegmentationClass/ and ImageSets/Segmentation/")


class VOC(SegmentationDataset):
    """PASCAL VOC 2012; ``split`` names ``ImageSets/Segmentation/{split}.txt`` (train, val, trainval)."""

    name = "voc"

    def __init__(self, root: str | os.PathLike, split: str = "train", transform: Transform | None = None) -> None:
        self.root = find_voc_root(Path(root))
        list_path = self.root / "ImageSets" / "Segmentation" / f"{split}.txt"
        layout = "VOC expects ImageSets/Segmentation/{split}.txt listing one image id (e.g. 2007_000032) per line"
        samples = [
            Sample(id=fields[0], image=self.root / "JPEGImages" / f"{fields[0]}.jpg",
                   label=self.root / "SegmentationClass" / f"{fields[0]}.png")
            for fields in read_list(list_path, layout.format(split=split))
        ]
        super().__init__(split, VOC_CLASSES, samples, transform,
                         source=f"{list_path} lists no images; {layout.format(split=split)}")
        check_exist((p for s in samples for p in (s.image, s.label)), f"listed in {list_path}")
        self.label_mapping = LabelMapping.identity(self.name, len(VOC_CLASSES))
