"""Label conventions shared by every dataset, and the one place raw label values are checked.

Every dataset yields masks whose values are class indices in ``[0, num_classes)`` or
:data:`IGNORE_INDEX`. Each dataset's own void values are mapped to it explicitly, through a
:class:`LabelMapping` built from a table; a value the table does not know is a broken or
mismatched mask and raises :class:`~segprune.errors.DataError` instead of being guessed at,
because a silently remapped class corrupts every metric computed afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import torch
from numpy.typing import DTypeLike

from segprune.errors import DataError

IGNORE_INDEX = 255
"""Label value that losses and metrics skip (void, boundaries, padding)."""

CAMVID_CLASSES: tuple[str, ...] = (
    "Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car", "Pedestrian",
    "Bicyclist",
)
CAMVID_VOID = 11
"""CamVid's "Unlabelled" value in the SegNet 11-class masks, mapped to :data:`IGNORE_INDEX`."""

VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)


def cityscapes_train_table() -> tuple[tuple[str, ...], dict[int, int]]:
    """Return the 19 train-id class names and the label-id -> train-id table.

    Both come from cityscapesscripts' own ``labels`` list, so segprune agrees with the
    official evaluation; train ids 255 and -1 (ignored in training) map to :data:`IGNORE_INDEX`.
    """
    from cityscapesscripts.helpers.labels import labels

    table: dict[int, int] = {}
    names: dict[int, str] = {}
    for label in labels:
        if label.id < 0:
            continue  # "license plate": never stored in labelIds images
        train_id = label.trainId if 0 <= label.trainId < IGNORE_INDEX else IGNORE_INDEX
        table[label.id] = train_id
        if train_id != IGNORE_INDEX:
            names.setdefault(train_id, label.name)
    classes = tuple(names[i] for i in range(len(names)))
    return classes, table


class LabelMapping:
    """Maps a dataset's raw mask values to class indices or :data:`IGNORE_INDEX`, or fails.

    ``table`` lists every raw value the dataset may contain; ``allowed`` describes them for
    the error message (e.g. ``"0..10 and 11 (ignore)"``). A lookup table makes the mapping
    one gather per mask, fast enough for streaming thousands of label maps.
    """

    def __init__(self, dataset: str, table: Mapping[int, int], allowed: str) -> None:
        if not table or min(table) < 0:
            raise ValueError("a label table needs non-negative raw values")
        self.dataset = dataset
        self.allowed = allowed
        self.table = dict(table)
        self._lut = np.full(max(256, max(table) + 1), -1, dtype=np.int64)
        for raw, value in table.items():
            self._lut[raw] = value
        # 8-bit masks (nearly all datasets) take byte-wide tables: a gather of bytes is what
        # keeps streaming label passes from being bound by memory traffic
        self._lut8 = self._lut[:256].clip(0, IGNORE_INDEX).astype(np.uint8)
        self._unknown8 = self._lut[:256] < 0

    @classmethod
    def identity(cls, dataset: str, num_classes: int) -> LabelMapping:
        """Masks that already hold class indices ``0..K-1`` and :data:`IGNORE_INDEX`."""
        if not 1 <= num_classes <= IGNORE_INDEX:
            raise DataError(f"{dataset} has {num_classes} classes but 8-bit masks allow 1..{IGNORE_INDEX}: "
                            "merge classes or use fewer")
        table = {i: i for i in range(num_classes)}
        table[IGNORE_INDEX] = IGNORE_INDEX
        return cls(dataset, table, f"0..{num_classes - 1} and {IGNORE_INDEX} (ignore)")

    def __call__(self, raw: np.ndarray, path: str | os.PathLike, dtype: DTypeLike = np.int64) -> np.ndarray:
        """Return ``raw`` mapped to a ``dtype`` mask; raise DataError naming ``path`` on unknown values.

        Class indices and :data:`IGNORE_INDEX` all fit a byte, so ``np.uint8`` is always exact.
        """
        if raw.dtype == np.uint8:
            # the maximum is cheap, and when no unknown value lies below it (the common
            # case) the per-pixel check is skipped
            if raw.size and self._unknown8[: int(raw.max()) + 1].any():
                unknown = np.take(self._unknown8, raw)
                if unknown.any():
                    self._refuse(raw, unknown, path)
            return np.take(self._lut8, raw).astype(dtype, copy=False)
        values = raw.astype(np.int64, copy=False)
        outside = (values < 0) | (values >= self._lut.size)
        out = self._lut[np.clip(values, 0, self._lut.size - 1)]
        out[outside] = -1
        unknown = out < 0
        if unknown.any():
            self._refuse(raw, unknown, path)
        return out.astype(dtype, copy=False)

    def _refuse(self, raw: np.ndarray, bad: np.ndarray, path: str | os.PathLike) -> None:
        found = np.unique(raw[bad]).tolist()
        shown = found if len(found) <= 12 else [*found[:12], "..."]
        raise DataError(
            f"{os.fspath(path)} holds label values {shown} but {self.dataset} allows {self.allowed}: "
            "fix the mask or choose the dataset type that matches it")


def check_mask(mask: np.ndarray, num_classes: int, what: str = "mask") -> None:
    """Raise DataError unless ``mask`` holds only ``0..num_classes-1`` and :data:`IGNORE_INDEX`.

    For masks that did not come from a file (generated, transformed), where there is no raw
    table to apply but the same contract must hold.
    """
    valid = (mask >= 0) & (mask < num_classes) | (mask == IGNORE_INDEX)
    if not valid.all():
        found = np.unique(mask[~valid]).tolist()[:12]
        raise DataError(f"{what} holds label values {found} outside 0..{num_classes - 1} and "
                        f"{IGNORE_INDEX} (ignore): fix the labels or the class count")


def one_hot(labels: torch.Tensor, num_classes: int, ignore_index: int = 255,
            dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(B, H, W)`` class indices -> ``(B, K, H, W)`` one-hot maps, zero at ignore pixels.

    Ignore pixels are routed to an extra channel that is dropped, so one ``scatter_`` does
    the whole batch.
    """
    labels = labels.to(torch.int64)
    safe = torch.where(labels == ignore_index, torch.full_like(labels, num_classes), labels)
    b, h, w = safe.shape
    out = torch.zeros(b, num_classes + 1, h, w, dtype=dtype, device=labels.device)
    out.scatter_(1, safe[:, None], 1.0)
    return out[:, :num_classes]
