"""Reading images, label maps and split lists, with one-line errors that name the file.

Datasets are user data: a missing file, a truncated PNG or a colour-coded mask must end in
a :class:`~segprune.errors.DataError` that says which file and what to do, not in a PIL
traceback halfway through an epoch.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from segprune.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
"""Image file types accepted where a folder is scanned for images."""

_MASK_MODES = {"L", "P", "I", "I;16", "1"}


def _open(path: Path, what: str) -> Image.Image:
    try:
        image = Image.open(path)
        image.load()
    except FileNotFoundError:
        raise DataError(f"{path} does not exist: check the dataset root and the split list") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        detail = "unknown format" if isinstance(exc, UnidentifiedImageError) else f"{type(exc).__name__}: {exc}"
        raise DataError(f"{path} is not a readable {what} ({detail}): re-export or re-download it, or "
                        "remove it from the split") from None
    return image


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file to ``uint8`` ``H x W x 3`` RGB (grey and RGBA are converted)."""
    path = Path(path)
    with _open(path, "image") as image:
        return np.array(image.convert("RGB"), dtype=np.uint8)


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Decode a label map to its raw integer values, ``H x W``, without any mapping.

    Palette PNGs (VOC) yield their palette indices, not colours. Colour-coded masks are
    refused: their RGB values are not class indices, and guessing the colour table is how
    silent label corruption starts.
    """
    path = Path(path)
    with _open(path, "label map") as image:
        if image.mode not in _MASK_MODES:
            raise DataError(f"{path} is a {image.mode} image, but a mask must hold one class index per pixel "
                            "(8-bit grey or palette PNG): convert its colours to class indices")
        return np.array(image)


def read_list(path: Path, layout: str) -> list[list[str]]:
    """Read a split list: one entry per line, whitespace-separated fields, ``#`` comments skipped.

    ``layout`` describes the expected content for the error raised when the list is missing.
    """
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise DataError(f"{path} does not exist: {layout}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} cannot be read as a text split list ({exc}): {layout}") from None
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            rows.append(line.split())
    return rows


def check_exist(paths: Iterable[Path], context: str) -> None:
    """Raise DataError naming the first missing file and how many are missing.

    ``context`` says where the file was expected from, e.g. ``"listed in root/train.txt"``.

    Checked when a dataset is built, so a broken list fails before training starts rather
    than an hour into the first epoch.
    """
    paths = list(paths)
    missing = [p for p in paths if not p.is_file()]
    if missing:
        more = f" ({len(missing)} of {len(paths)} files are missing)" if len(missing) > 1 else ""
        raise DataError(f"{missing[0]} {context} does not exist{more}: restore the file or fix "
                        "the list or layout that names it")
