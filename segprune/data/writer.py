"""Writing a dataset to disk in the folder layout that :class:`FolderDataset` reads.

This backs ``segprune data synth --out DIR``: it turns any dataset (the synthetic one in
practice) into ``DIR/{split}/images/*.png``, ``DIR/{split}/masks/*.png`` and
``DIR/classes.txt``. Images are PNG, so reading them back is bit-exact. Each file is written
atomically, so an interrupted run never leaves a truncated PNG for a later run to trip on.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from segprune.data.base import SegmentationDataset
from segprune.data.labels import IGNORE_INDEX
from segprune.errors import DataError
from segprune.io import atomic_path, atomic_write


def _write_classes(path: Path, classes: list[str]) -> None:
    if path.is_file():
        existing = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        if existing != classes:
            raise DataError(f"{path} already names the classes {existing}, not {classes}: write to an empty "
                            "folder, or generate the splits with the same classes")
        return
    with atomic_write(path, "w") as handle:
        handle.write("".join(f"{name}\n" for name in classes))


def write_folder(dataset: SegmentationDataset, out_dir: str | os.PathLike, split: str, *,
                 progress: bool = True) -> Path:
    """Write every sample of ``dataset`` as split ``split`` of a folder dataset under ``out_dir``.

    Files are named by :meth:`SegmentationDataset.sample_id`; masks are 8-bit grey PNGs of
    class indices with 255 for ignore. Returns ``out_dir``. A ``classes.txt`` already in
    ``out_dir`` must match the dataset's classes (several splits share one).
    """
    out = Path(out_dir)
    if dataset.num_classes > IGNORE_INDEX:
        raise DataError(f"{dataset.num_classes} classes do not fit 8-bit masks with {IGNORE_INDEX} as ignore: "
                        f"use at most {IGNORE_INDEX} classes")
    if out.exists() and not out.is_dir():
        raise DataError(f"{out} exists and is not a folder: choose another --out")
    _write_classes(out / "classes.txt", list(dataset.classes))
    image_dir, mask_dir = out / split / "images", out / split / "masks"
    image_dir.mkdir(parents=True, exist_ok=True)
    mask_dir.mkdir(parents=True, exist_ok=True)
    bar = tqdm(range(len(dataset)), desc=f"writing {split}", unit="img", file=sys.stderr,
               disable=not progress, leave=False)
    for i in bar:
        image, mask = dataset.read(i)
        stem = dataset.sample_id(i)
        with atomic_path(image_dir / f"{stem}.png") as tmp:
            Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(tmp, format="PNG")
        with atomic_path(mask_dir / f"{stem}.png") as tmp:
            Image.fromarray(mask.astype(np.uint8)).save(tmp, format="PNG")
    return out
