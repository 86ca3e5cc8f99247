"""Datasets, transforms and loaders.

Every dataset is a :class:`SegmentationDataset`: ``read(i)`` gives a ``uint8`` RGB image and
an ``int64`` mask of class indices or :data:`IGNORE_INDEX` (255), checked against the
dataset's label table; ``read_label(i)`` gives the mask alone without decoding the image;
``dataset[i]`` applies ``dataset.transform`` and gives tensors. :func:`build_dataset` builds
one from a spec string such as ``camvid:../shared/data/camvid`` or ``synthetic:n=64``.
"""

from __future__ import annotations

from segprune.data.base import Sample, SegmentationDataset, Transform
from segprune.data.camvid import CamVid
from segprune.data.cityscapes import Cityscapes
from segprune.data.files import read_image, read_mask
from segprune.data.folder import FolderDataset
from segprune.data.labels import (
    CAMVID_CLASSES,
    IGNORE_INDEX,
    VOC_CLASSES,
    LabelMapping,
    check_mask,
    cityscapes_train_table,
)
from segprune.data.loader import image_batches, make_loader, spread, spread_loader
from segprune.data.registry import DATASET_KINDS, build_dataset, synthetic_spec
from segprune.data.synthetic import SyntheticScenes
from segprune.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    EvalTransform,
    TrainTransform,
    normalize,
    resize_image,
    resize_mask,
)
from segprune.data.voc import VOC
from segprune.data.writer import write_folder

__all__ = [
    "CAMVID_CLASSES",
    "DATASET_KINDS",
    "IGNORE_INDEX",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "VOC",
    "VOC_CLASSES",
    "CamVid",
    "Cityscapes",
    "EvalTransform",
    "FolderDataset",
    "LabelMapping",
    "Sample",
    "SegmentationDataset",
    "SyntheticScenes",
    "TrainTransform",
    "Transform",
    "build_dataset",
    "synthetic_spec",
    "check_mask",
    "cityscapes_train_table",
    "image_batches",
    "make_loader",
    "spread",
    "spread_loader",
    "normalize",
    "read_image",
    "read_mask",
    "resize_image",
    "resize_mask",
    "write_folder",
]
