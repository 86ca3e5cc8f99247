"""Training criteria. Every loss takes ``ignore_index`` so ignore pixels never move the model."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from segprune.errors import ConfigError
from segprune.metrics import class_map


class CrossEntropy(nn.Module):
    """Pixel cross-entropy averaged over valid (non-ignore) pixels.

    Logits smaller than the labels (a model that predicts on a coarse grid) are upsampled
    bilinearly first, the usual DeepLab practice.
    """

    def __init__(self, ignore_index: int = 255, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = resize_like(logits, target.shape[-2:])
        if not (target != self.ignore_index).any():
            return logits.sum() * 0.0  # keeps the graph (and DDP) intact on an all-ignore batch
        return F.cross_entropy(logits.float(), target, ignore_index=self.ignore_index,
                               label_smoothing=self.label_smoothing)


RECALL_COMPAT = ("segprune", "official")


class RecallCrossEntropy(nn.Module):
    """Cross-entropy re-weighted per class by the batch's false-negative rate (Tian et al. 2021).

    Recall loss is hard-class mining: a class the model currently misses gets weight
    ``w_c = 1 - recall_c``, so the loss moves between plain CE (every class equally missed)
    and inverse-frequency CE (equal misses per class) [DERIVED, RESEARCH 2.1]. Here
    ``w_c = (FN_c + eps) / (N_c + eps)`` from the argmax predictions over *valid* pixels only;
    ``eps=1`` plays the role of the official counters that start at 1 [CODE, RESEARCH 2.1/2.4].
    Recall is instantaneous (per batch) by default, as in the official code [CODE]; ``ema`` in
    (0, 1) keeps running FN and N counts instead (history weight ``ema``), and a class absent
    from a batch keeps its last recall [INFERRED option, RESEARCH 2.4]. Weights come from
    integer counts, so they carry no gradient. The loss is averaged over valid pixels, so
    ignore pixels never change it.

    ``compat="official"`` reproduces ``ptsemseg/loss/recall_loss.py`` for paper reproduction
    [CODE, RESEARCH 2.1]: counters start at 1 and are *overwritten* by the counts of present
    classes (``w_c = max(FN_c, 1) / N_c``), and the mean runs over all pixels, ignored ones
    included. Its ignore-label remapping (which clobbers class 1, and indexes out of range on
    CUDA) is a bug, not a quirk, and is not reproduced: ignore pixels are never counted.
    Under DDP the counts are per rank.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255, eps: float = 1.0,
                 ema: float | None = None, compat: str = "segprune") -> None:
        super().__init__()
        if num_classes < 1:
            raise ConfigError(f"recall loss needs num_classes >= 1, got {num_classes}")
        if eps < 0:
            raise ConfigError(f"recall loss eps must be >= 0, got {eps}")
        if ema is not None and not 0.0 < ema < 1.0:
            raise ConfigError(f"recall loss ema must lie in (0, 1) or be None, got {ema}")
        if compat not in RECALL_COMPAT:
            raise ConfigError(f"recall compat {compat!r} is not one of {', '.join(RECALL_COMPAT)}")
        if compat == "official" and ema is not None:
            raise ConfigError("recall compat 'official' uses batch recall: drop ema or use compat 'segprune'")
        self.num_classes, self.ignore_index, self.eps = num_classes, ignore_index, eps
        self.ema, self.compat = ema, compat
        if ema is not None:
            self.register_buffer("running_fn", torch.zeros(num_classes))
            self.register_buffer("running_n", torch.zeros(num_classes))
        self.last_weights: torch.Tensor | None = None

    @torch.no_grad()
    def class_weights(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-class weights (K,) from ``logits`` (B, K, H, W) and ``target`` (B, H, W) of one size."""
        k = self.num_classes
        valid = target != self.ignore_index
        t = target[valid]
        wrong = class_map(logits)[valid] != t
        n = torch.bincount(t, minlength=k)[:k].float()
        fn = torch.bincount(t[wrong], minlength=k)[:k].float()
        if self.compat == "official":
            present = n > 0
            return torch.where(fn > 0, fn, 1.0) / torch.where(present, n, 1.0)
        if self.ema is not None:
            present = n > 0
            running_fn, running_n = self.running_fn.to(n.device), self.running_n.to(n.device)
            first = present & (running_n == 0)
            mixed_fn = torch.where(first, fn, self.ema * running_fn + (1 - self.ema) * fn)
            mixed_n = torch.where(first, n, self.ema * running_n + (1 - self.ema) * n)
            self.running_fn = torch.where(present, mixed_fn, running_fn)
            self.running_n = torch.where(present, mixed_n, running_n)
            fn, n = self.running_fn, self.running_n
        denom = n + self.eps
        return torch.where(denom > 0, (fn + self.eps) / denom.clamp(min=1e-12), 1.0)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = resize_like(logits, target.shape[-2:])
        valid = target != self.ignore_index
        if not valid.any():
            return logits.sum() * 0.0
        logits = logits.float()
        weights = self.class_weights(logits, target)
        self.last_weights = weights
        pixel_w = torch.where(valid, weights[target.clamp(0, self.num_classes - 1)], 0.0)
        ce = F.cross_entropy(logits, target, ignore_index=self.ignore_index, reduction="none")
        total = (pixel_w * ce).sum()
        return total / (target.numel() if self.compat == "official" else valid.sum())


def resize_like(logits: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (B, K, h, w) logits to ``size``; a no-op when it already matches."""
    if logits.shape[-2:] == tuple(size):
        return logits
    return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)


def pixel_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """KL(softmax(teacher/T) || softmax(student/T)) * T^2 per pixel, (B, H, W), in fp32.

    The T^2 factor keeps the gradient scale independent of T (Hinton et al. 2015).
    """
    log_s = F.log_softmax(student.float() / temperature, dim=1)
    log_t = F.log_softmax(teacher.float() / temperature, dim=1)
    return (log_t.exp() * (log_t - log_s)).sum(1) * temperature**2


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` where ``mask`` holds; zero (graph kept) when nothing does."""
    return torch.where(mask, values, 0.0).sum() / mask.sum().clamp(min=1)
