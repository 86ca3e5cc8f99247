"""Segmentation metrics from one confusion matrix.

Every backend (PyTorch, onnxruntime, TensorRT) reports its accuracy through this class, so
the numbers are comparable by construction. The matrix is a ``(K, K)`` int64 tensor
(rows: ground truth, columns: prediction) accumulated with one ``torch.bincount`` per
batch; pixels whose label is the ignore index never enter it. Because it is a sum, it
merges across batches, processes (:meth:`ConfusionMatrix.all_reduce`) and runs (``+``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from segprune.errors import DataError


def class_map(scores: torch.Tensor) -> torch.Tensor:
    """Index of the highest score along dim 1 of ``(B, K, H, W)`` (ties: the lowest index).

    The same as ``scores.argmax(1)``, but ``torch.max`` over that strided axis is about ten
    times faster on a CPU (torch 2.14: 5 ms against 62 ms for 2 x 11 x 360 x 480).
    """
    return scores.max(1).indices


class ConfusionMatrix:
    """Accumulates a ground-truth x prediction count matrix over ``num_classes`` classes."""

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray) -> None:
        """Add a batch. ``pred`` holds class indices, or logits ``(B, K, H, W)`` that are argmaxed."""
        pred = torch.as_tensor(pred)
        target = torch.as_tensor(target)
        if pred.dim() == target.dim() + 1:
            pred = class_map(pred)
        if pred.shape != target.shape:
            raise DataError(f"prediction shape {tuple(pred.shape)} differs from label shape "
                            f"{tuple(target.shape)}: upsample the logits to the label size first")
        pred = pred.reshape(-1).to(torch.int64).cpu()
        target = target.reshape(-1).to(torch.int64).cpu()
        valid = target != self.ignore_index
        k = self.num_classes
        bad_target = valid & ((target < 0) | (target >= k))
        if bad_target.any():
            bad = sorted(set(target[bad_target].unique().tolist()))[:5]
            raise DataError(f"label values {bad} are outside 0..{k - 1} and not the ignore index "
                            f"{self.ignore_index}: the model and the dataset disagree on the classes")
        bad_pred = valid & ((pred < 0) | (pred >= k))
        if bad_pred.any():
            raise DataError(f"predicted class indices reach {int(pred[bad_pred].max())} but there are {k} "
                            "classes: the model was built for another class count")
        # ignore pixels go to one extra bin that is dropped: no boolean indexing, which costs
        # more than the count itself on a CPU
        cell = torch.where(valid, target * k + pred, k * k)
        self.matrix += torch.bincount(cell, minlength=k * k + 1)[: k * k].reshape(k, k)

    def all_reduce(self) -> ConfusionMatrix:
        """Sum the matrix over all processes of the default ``torch.distributed`` group."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.matrix, op=dist.ReduceOp.SUM)
        return self

    def __add__(self, other: ConfusionMatrix) -> ConfusionMatrix:
        if other.num_classes != self.num_classes:
            raise ValueError("cannot add confusion matrices of different class counts")
        out = ConfusionMatrix(self.num_classes, self.ignore_index)
        out.matrix = self.matrix + other.matrix
        return out

    def reset(self) -> None:
        self.matrix.zero_()

    def compute(self, class_names: list[str] | None = None) -> SegMetrics:
        """Metrics over the classes present in the ground truth or the predictions (mmsegmentation's convention).

        IoU is undefined (0/0) for a class that occurs neither in the labels nor in the
        predictions, and accuracy (recall) for a class absent from the labels, even if it is
        predicted; undefined values are NaN in the result (``null`` in JSON reports) and left
        out of mIoU and mAcc. A class predicted but absent from the labels has IoU 0 and counts
        in mIoU. (torchmetrics differs: it scores such absent classes 0 in mean accuracy.)
        """
        m = self.matrix.to(torch.float64)
        tp = m.diag()
        gt = m.sum(1)
        pr = m.sum(0)
        union = gt + pr - tp
        iou = torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))
        acc = torch.where(gt > 0, tp / gt.clamp(min=1), torch.full_like(tp, float("nan")))
        total = m.sum()
        names = class_names or [str(i) for i in range(self.num_classes)]
        return SegMetrics(
            miou=_nanmean(iou) * 100,
            macc=_nanmean(acc) * 100,
            pixel_acc=float(tp.sum() / total * 100) if total > 0 else float("nan"),
            per_class_iou={n: float(v * 100) for n, v in zip(names, iou, strict=True)},
            per_class_acc={n: float(v * 100) for n, v in zip(names, acc, strict=True)},
            pixels=int(total),
        )


@dataclass
class SegMetrics:
    """mIoU, mean class accuracy (mean recall) and pixel accuracy, all in percent."""

    miou: float
    macc: float
    pixel_acc: float
    per_class_iou: dict[str, float]
    per_class_acc: dict[str, float]
    pixels: int

    def to_dict(self) -> dict:
        return {"miou": self.miou, "macc": self.macc, "pixel_acc": self.pixel_acc,
                "per_class_iou": self.per_class_iou, "per_class_acc": self.per_class_acc,
                "pixels": self.pixels}


def _nanmean(values: torch.Tensor) -> float:
    finite = values[~torch.isnan(values)]
    return float(finite.mean()) if finite.numel() else float("nan")
