"""Cityscapes fine annotations, as the 19 train-id classes of the official benchmark.

Layout: ``root/leftImg8bit/{split}/{city}/{name}_leftImg8bit.png`` with labels in
``root/gtFine/{split}/{city}/{name}_gtFine_labelIds.png``. Masks store label ids (0..33);
they are turned into train ids with cityscapesscripts' own table, so ids that the benchmark
ignores (train id 255 or -1) become :data:`~segprune.data.labels.IGNORE_INDEX`. The
``*_gtFine_labelTrainIds.png`` files some tools generate are not needed.
"""

from __future__ import annotations

import os
from pathlib import Path

from segprune.data.base import Sample, SegmentationDataset, Transform
from segprune.data.files import check_exist
from segprune.data.labels import LabelMapping, cityscapes_train_table
from segprune.errors import DataError

_IMAGE_SUFFIX = "_leftImg8bit.png"
_LABEL_SUFFIX = "_gtFine_labelIds.png"


class Cityscapes(SegmentationDataset):
    """Cityscapes ``gtFine``; ``split`` is train, val or test (test labels are all void)."""

    name = "cityscapes"

    def __init__(self, root: str | os.PathLike, split: str = "train", transform: Transform | None = None) -> None:
        self.root = Path(root)
        image_dir = self.root / "leftImg8bit" / split
        label_dir = self.root / "gtFine" / split
        layout = (f"Cityscapes expects {image_dir}/CITY/*{_IMAGE_SUFFIX} with labels in "
                  f"{label_dir}/CITY/*{_LABEL_SUFFIX}: point cityscapes: at the folder holding "
                  "leftImg8bit/ and gtFine/")
        if not image_dir.is_dir():
            raise DataError(f"{image_dir} is not a folder: {layout}")
        samples = []
        for image in sorted(image_dir.glob(f"*/*{_IMAGE_SUFFIX}")):
            stem = image.name[: -len(_IMAGE_SUFFIX)]
            label = label_dir / image.parent.name / f"{stem}{_LABEL_SUFFIX}"
            samples.append(Sample(id=stem, image=image, label=label))
        classes, table = cityscapes_train_table()
        super().__init__(split, classes, samples, transform, source=f"{image_dir} holds no images; {layout}")
        check_exist((s.label for s in samples), f"(the gtFine label of an image in {image_dir})")
        self.label_mapping = LabelMapping(self.name, table,
                                          f"the label ids {min(table)}..{max(table)} of cityscapesscripts")
