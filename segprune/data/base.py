"""The dataset contract every segprune stage relies on.

Training, evaluation, spectral analysis and calibration all read data through
:class:`SegmentationDataset`, so they share one promise: ``read`` returns an RGB ``uint8``
image and an ``int64`` mask of the same size whose values are class indices or
:data:`~segprune.data.labels.IGNORE_INDEX`, already checked. ``read_label`` keeps that promise
without decoding the image, because the label spectrum streams thousands of label maps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from numpy.typing import DTypeLike
from torch.utils.data import Dataset

from segprune.data.files import read_image, read_mask
from segprune.data.labels import IGNORE_INDEX, LabelMapping
from segprune.errors import DataError

Transform = Callable[[np.ndarray, np.ndarray], tuple[torch.Tensor, torch.Tensor]]
"""``(image uint8 HxWx3, mask int64 HxW) -> (image float32 3xHxW, mask int64 HxW)``."""


@dataclass(frozen=True)
class Sample:
    """One image and its label map; ``id`` is a short unique name (the file stem)."""

    id: str
    image: Path | None = None
    label: Path | None = None


class SegmentationDataset(Dataset):
    """Base class: a list of samples, class names, and checked reads.

    Subclasses set ``samples``, ``classes`` and ``label_mapping`` (raw mask values -> class
    indices); datasets without files (synthetic) override :meth:`read` and :meth:`read_label`.
    ``transform`` turns a read sample into tensors; the default only normalises.
    """

    name: str = "dataset"
    ignore_index: int = IGNORE_INDEX

    def __init__(self, split: str, classes: list[str] | tuple[str, ...], samples: list[Sample],
                 transform: Transform | None = None, *, source: str = "") -> None:
        self.split = split
        self.classes: list[str] = list(classes)
        self.samples: list[Sample] = list(samples)
        if not self.samples:
            raise DataError(f"the {self.name} split {split!r} is empty: {source or 'no samples were found'}")
        if transform is None:
            from segprune.data.transforms import EvalTransform

            transform = EvalTransform()
        self.transform: Transform = transform
        self.label_mapping: LabelMapping | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.samples)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(split={self.split!r}, samples={len(self)}, "
                f"classes={self.num_classes})")

    def _sample(self, i: int) -> Sample:
        if not -len(self.samples) <= i < len(self.samples):
            raise IndexError(f"index {i} out of range for {len(self.samples)} samples")
        return self.samples[i]

    def sample_id(self, i: int) -> str:
        """A short unique name for sample ``i`` (used as the file stem when writing it out)."""
        return self._sample(i).id

    def read_label(self, i: int, dtype: DTypeLike = np.int64) -> np.ndarray:
        """Return sample ``i``'s checked mask, without decoding its image.

        ``dtype=np.uint8`` (exact: classes and the ignore value fit a byte) is an eighth of
        the memory traffic of ``int64``, which is what streaming passes over labels want.
        """
        sample = self._sample(i)
        if sample.label is None or self.label_mapping is None:
            raise NotImplementedError(f"{type(self).__name__} must override read_label")
        return self.label_mapping(read_mask(sample.label), sample.label, dtype)

    def read(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Return sample ``i`` as (``uint8`` HxWx3 RGB image, checked ``int64`` HxW mask)."""
        sample = self._sample(i)
        if sample.image is None:
            raise NotImplementedError(f"{type(self).__name__} must override read")
        mask = self.read_label(i)
        image = read_image(sample.image)
        if image.shape[:2] != mask.shape:
            raise DataError(
                f"{sample.image} is {image.shape[0]}x{image.shape[1]} but its mask {sample.label} is "
                f"{mask.shape[0]}x{mask.shape[1]} (HxW): resize the mask with nearest-neighbour "
                "interpolation to the image size, or fix the image/mask pairing")
        return image, mask

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.read(i)
        return self.transform(image, mask)
