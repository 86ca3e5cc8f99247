"""Evaluation: one confusion matrix over a split, shared by training and ``segprune eval``."""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from segprune.metrics import ConfusionMatrix, SegMetrics, class_map
from segprune.train.distributed import DistContext
from segprune.train.losses import resize_like


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, out_size: tuple[int, int],
                   input_size: tuple[int, int] | None = None) -> torch.Tensor:
    """Logits at ``out_size`` for a batch, optionally run at a reduced ``input_size``.

    Scoring always happens at the label's resolution: a model run on smaller inputs has
    its logits upsampled bilinearly, so its mIoU is comparable with a full-size model's.
    """
    if input_size is not None and tuple(images.shape[-2:]) != tuple(input_size):
        images = F.interpolate(images, size=input_size, mode="bilinear", align_corners=False)
    return resize_like(model(images), out_size)


@torch.no_grad()
def evaluate(model: nn.Module, loader, num_classes: int, *, device: torch.device | str = "cpu",
             input_size: tuple[int, int] | None = None, ignore_index: int = 255,
             class_names: list[str] | None = None, ctx: DistContext | None = None,
             progress: bool = True, amp: bool = False) -> tuple[SegMetrics, dict]:
    """mIoU and friends over ``loader``; with ``ctx`` the matrix is summed over ranks.

    Returns the metrics and timing facts (images, seconds, images per second).
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    cm = ConfusionMatrix(num_classes, ignore_index)
    show = progress and (ctx is None or ctx.is_main)
    start, seen = time.perf_counter(), 0
    for images, labels in tqdm(loader, desc="eval", unit="batch", disable=not show, leave=False):
        images = images.to(device, non_blocking=True)
        with torch.autocast(device.type, enabled=amp and device.type == "cuda"):
            logits = predict_logits(model, images, tuple(labels.shape[-2:]), input_size)
        cm.update(class_map(logits).cpu(), labels)
        seen += images.shape[0]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    if ctx is not None and ctx.enabled:
        cm.all_reduce()
        counts = torch.tensor([seen], dtype=torch.int64)
        torch.distributed.all_reduce(counts)
        seen = int(counts)
    model.train(was_training)
    timing = {"images": seen, "seconds": seconds, "images_per_s": seen / seconds if seconds > 0 else float("nan")}
    return cm.compute(class_names), timing
