"""Training augmentation and evaluation preprocessing, on (image, mask) pairs.

Both transforms are callables ``t(image, mask, generator=None) -> (image, mask)`` taking a
``uint8`` ``H x W x 3`` RGB array and an ``int64`` ``H x W`` mask (what
:meth:`SegmentationDataset.read` returns) and returning a normalised ``float32``
``3 x H x W`` tensor and an ``int64`` ``H x W`` tensor. Random draws come from torch's RNG
(``generator``, or torch's global one, which a DataLoader seeds per worker), so a seeded
loader gives the same augmentations on every run. Masks are only ever resized by
nearest-neighbour index selection: interpolating class ids invents classes at boundaries.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from segprune.data.labels import IGNORE_INDEX

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def _as_tensors(image: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 HxWx3 image, got {image.dtype} {image.shape}")
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} differs from image shape {image.shape[:2]}")
    if not image.flags.writeable:  # torch warns on read-only arrays (e.g. np.asarray of a PIL image)
        image = image.copy()
    img = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    return img, torch.tensor(mask, dtype=torch.int64)


def resize_image(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear (antialiased when shrinking) resize of a ``C x H x W`` image to ``size`` (H, W)."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return TF.resize(image, list(size), interpolation=InterpolationMode.BILINEAR, antialias=True)


def resize_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize of an ``H x W`` mask by index selection (pixel centres, like PIL)."""
    h, w = mask.shape[-2:]
    out_h, out_w = size
    if (h, w) == (out_h, out_w):
        return mask
    rows = ((torch.arange(out_h, dtype=torch.float64) + 0.5) * (h / out_h)).long().clamp_(max=h - 1)
    cols = ((torch.arange(out_w, dtype=torch.float64) + 0.5) * (w / out_w)).long().clamp_(max=w - 1)
    return mask[..., rows[:, None], cols[None, :]]


def normalize(image: torch.Tensor, mean: tuple[float, ...] = IMAGENET_MEAN,
              std: tuple[float, ...] = IMAGENET_STD) -> torch.Tensor:
    """``uint8`` ``C x H x W`` -> ``float32`` ``(x / 255 - mean) / std``; also the export/bench preprocessing."""
    mean_t = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
    return (image.to(torch.float32).div_(255.0).sub_(mean_t).div_(std_t)).contiguous()


def _check_size(size: tuple[int, int] | None, what: str) -> tuple[int, int] | None:
    if size is None:
        return None
    size = (int(size[0]), int(size[1]))
    if min(size) < 1:
        raise ValueError(f"{what} must be positive (H, W), got {size}")
    return size


class TrainTransform:
    """Resize to ``base_size`` (optional), random scale, pad, random crop, random flip, colour jitter, normalise.

    The image is padded with 0 after normalisation (the mean colour) and the mask with
    :data:`IGNORE_INDEX`, so padding never enters the loss. Every call makes the same four
    draws (scale, top, left, flip) whatever the image size, so the RNG stream stays aligned;
    ``color_jitter`` ``s > 0`` adds three more (brightness, contrast and saturation factors in
    ``[1 - s, 1 + s]``, torchvision's functional adjustments), so ``s = 0`` keeps the stream
    of earlier runs. Jitter is there for footage under other light than the training videos'.
    """

    def __init__(self, crop_size: tuple[int, int], scale_range: tuple[float, float] = (0.5, 2.0),
                 hflip: bool = True, mean: tuple[float, ...] = IMAGENET_MEAN,
                 std: tuple[float, ...] = IMAGENET_STD, base_size: tuple[int, int] | None = None,
                 color_jitter: float = 0.0) -> None:
        self.crop_size = _check_size(crop_size, "crop_size")
        if not (isinstance(color_jitter, (int, float)) and math.isfinite(color_jitter) and 0 <= color_jitter < 1):
            raise ValueError(f"color_jitter must be a number in [0, 1), got {color_jitter!r}")
        self.color_jitter = float(color_jitter)
        self.base_size = _check_size(base_size, "base_size")
        lo, hi = float(scale_range[0]), float(scale_range[1])
        if not 0 < lo <= hi:
            raise ValueError(f"scale_range must satisfy 0 < low <= high, got {scale_range}")
        self.scale_range = (lo, hi)
        self.hflip = hflip
        self.mean, self.std = tuple(mean), tuple(std)

    def __call__(self, image: np.ndarray, mask: np.ndarray,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        img, lab = _as_tensors(image, mask)
        if self.base_size is not None:
            img, lab = resize_image(img, self.base_size), resize_mask(lab, self.base_size)
        draws = torch.rand(4, generator=generator, dtype=torch.float64).tolist()
        lo, hi = self.scale_range
        scale = lo + (hi - lo) * draws[0]
        h, w = lab.shape
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        img, lab = resize_image(img, size), resize_mask(lab, size)
        ch, cw = self.crop_size
        top = math.floor(draws[1] * (max(size[0] - ch, 0) + 1))
        left = math.floor(draws[2] * (max(size[1] - cw, 0) + 1))
        img = img[:, top:top + ch, left:left + cw]
        lab = lab[top:top + ch, left:left + cw]
        if self.hflip and draws[3] < 0.5:
            img, lab = img.flip(-1), lab.flip(-1)
        if self.color_jitter:
            s = self.color_jitter
            b, c, sat = (1 + s * (2 * d - 1) for d in torch.rand(3, generator=generator, dtype=torch.float64).tolist())
            img = TF.adjust_saturation(TF.adjust_contrast(TF.adjust_brightness(img, b), c), sat)
        out = normalize(img, self.mean, self.std)
        pad_h, pad_w = ch - out.shape[1], cw - out.shape[2]
        if pad_h or pad_w:
            out = torch.nn.functional.pad(out, (0, pad_w, 0, pad_h), value=0.0)
            lab = torch.nn.functional.pad(lab, (0, pad_w, 0, pad_h), value=IGNORE_INDEX)
        return out, lab.contiguous()

    def __repr__(self) -> str:
        return (f"TrainTransform(crop_size={self.crop_size}, scale_range={self.scale_range}, "
                f"hflip={self.hflip}, base_size={self.base_size}, color_jitter={self.color_jitter})")


class EvalTransform:
    """Optional resize (image bilinear, mask nearest) and normalisation; deterministic.

    With ``size=None`` the sample keeps its size, so batches need equal-sized images
    (CamVid, Cityscapes, synthetic) or ``batch_size=1`` (VOC).
    """

    def __init__(self, size: tuple[int, int] | None = None, mean: tuple[float, ...] = IMAGENET_MEAN,
                 std: tuple[float, ...] = IMAGENET_STD) -> None:
        self.size = _check_size(size, "size")
        self.mean, self.std = tuple(mean), tuple(std)

    def __call__(self, image: np.ndarray, mask: np.ndarray,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        img, lab = _as_tensors(image, mask)
        if self.size is not None:
            img, lab = resize_image(img, self.size), resize_mask(lab, self.size)
        return normalize(img, self.mean, self.std), lab.contiguous()

    def __repr__(self) -> str:
        return f"EvalTransform(size={self.size})"
