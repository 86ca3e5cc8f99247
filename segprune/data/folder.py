"""A generic folder of images and index masks: the format for the user's own data.

``root/classes.txt`` names one class per line (line ``i`` is class ``i``). Masks are 8-bit
PNGs of class indices with 255 as ignore, named like their image (``a.jpg`` -> ``a.png``).
Two layouts are accepted, tried in this order:

1. ``root/{split}/images/*`` and ``root/{split}/masks/*.png`` (what :func:`write_folder` writes);
2. ``root/images/*`` and ``root/masks/*.png`` with ``root/{split}.txt`` listing file stems.
"""

from __future__ import annotations

import os
from pathlib import Path

from segprune.data.base import Sample, SegmentationDataset, Transform
from segprune.data.files import IMAGE_SUFFIXES, check_exist, read_list
from segprune.data.labels import LabelMapping
from segprune.errors import DataError


def read_classes(path: Path) -> list[str]:
    """Read ``classes.txt``: one class name per non-empty line."""
    layout = "a folder dataset needs classes.txt with one class name per line (line 1 is class 0)"
    try:
        names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        raise DataError(f"{path} does not exist: {layout}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} cannot be read ({exc}): {layout}") from None
    if not names:
        raise DataError(f"{path} names no classes: {layout}")
    if len(set(names)) != len(names):
        raise DataError(f"{path} names a class twice: give every class a distinct name")
    return names


def _images_in(folder: Path) -> dict[str, Path]:
    images: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith("."):
            if path.stem in images:
                raise DataError(f"{images[path.stem]} and {path} share the stem {path.stem!r}: keep one image "
                                "per name so that each mask has exactly one image")
            images[path.stem] = path
    return images


class FolderDataset(SegmentationDataset):
    """Images and index masks in a folder (see the module docstring for the two layouts)."""

    name = "folder"

    def __init__(self, root: str | os.PathLike, split: str = "train", transform: Transform | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"folder dataset root {self.root} is not a folder: check the path")
        classes = read_classes(self.root / "classes.txt")
        split_dir, list_path = self.root / split, self.root / f"{split}.txt"
        if (split_dir / "images").is_dir():
            image_dir, mask_dir = split_dir / "images", split_dir / "masks"
            images = _images_in(image_dir)
            source = f"{image_dir} holds no .png/.jpg images"
            context = f"(the mask of an image in {image_dir})"
        elif list_path.is_file() and (self.root / "images").is_dir():
            image_dir, mask_dir = self.root / "images", self.root / "masks"
            available = _images_in(image_dir)
            images = {}
            for (entry, *_rest) in read_list(list_path, "one file stem per line"):
                stem = Path(entry).stem if Path(entry).suffix.lower() in IMAGE_SUFFIXES else entry
                if stem not in available:
                    raise DataError(f"{image_dir / entry} listed in {list_path} does not exist (no image "
                                    f"with that stem and a suffix {'/'.join(IMAGE_SUFFIXES)}): restore the "
                                    "file or fix the list")
                images[stem] = available[stem]
            source = f"{list_path} lists no file stems"
            context = f"listed in {list_path}"
        else:
            raise DataError(
                f"no split {split!r} in {self.root}: looked for {split_dir / 'images'} (with "
                f"{split_dir / 'masks'}) and for {list_path} with {self.root / 'images'} and "
                f"{self.root / 'masks'}; create one of these layouts or choose an existing split")
        samples = [Sample(id=stem, image=path, label=mask_dir / f"{stem}.png") for stem, path in images.items()]
        super().__init__(split, classes, samples, transform,
                         source=f"{source}; expected images in {image_dir} and masks of the same stem in {mask_dir}")
        check_exist((s.label for s in samples), context)
        self.label_mapping = LabelMapping.identity(self.name, len(classes))
