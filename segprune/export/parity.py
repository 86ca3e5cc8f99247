"""Does the exported model compute what the PyTorch model computes? Logits and argmax, on real batches.

Two figures per file: the largest absolute logit difference (a numeric fingerprint) and
the share of pixels whose argmax class agrees (what segmentation actually outputs). The
gate is the agreement: a max difference of 0.3 on one boundary pixel is harmless, a 0.1 %
disagreement over a road is not. Thresholds differ by precision because fp16 and int8 are
expected to move near-tied pixels; their accuracy cost is measured as mIoU by
``segprune bench``, so their parity threshold only catches a broken graph.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

# Minimum share of agreeing argmax pixels per precision.
MIN_AGREEMENT = {"fp32": 0.9999, "fp16": 0.999, "int8": 0.90}


@dataclass
class ParityReport:
    precision: str
    pixels: int
    agreement: float
    max_abs_diff: float
    mean_abs_diff: float
    threshold: float
    images: int
    nonfinite: int = 0  # NaN or infinite logits, exported and PyTorch together: any one fails the check

    @property
    def passed(self) -> bool:
        # argmax of NaN is 0 on both sides and max(d, nan) keeps d: a NaN graph would "agree" 100 %
        return self.nonfinite == 0 and self.agreement >= self.threshold

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}

    def summary(self) -> str:
        if self.nonfinite:
            verdict = f"FAILED ({self.nonfinite} non-finite logits: the model or its graph computes NaN/Inf)"
        else:
            verdict = "ok" if self.passed else f"FAILED (needs >= {100 * self.threshold:.2f}%)"
        return (f"{self.precision}: argmax agreement {100 * self.agreement:.4f}% over {self.pixels} pixels, "
                f"max |dlogit| {self.max_abs_diff:.3g}, mean {self.mean_abs_diff:.3g}: {verdict}")


@torch.no_grad()
def reference_logits(model: nn.Module, batches: Iterable[np.ndarray]) -> list[np.ndarray]:
    """PyTorch's float32 logits for each NCHW batch: compute once, check every precision against them."""
    model = model.eval()
    return [model(torch.from_numpy(np.ascontiguousarray(b, dtype=np.float32))).float().numpy() for b in batches]


def check_parity(model: nn.Module, run: Callable[[np.ndarray], np.ndarray], batches: Iterable[np.ndarray],
                 precision: str = "fp32", threshold: float | None = None,
                 references: list[np.ndarray] | None = None) -> ParityReport:
    """Compare ``run`` (an exported model) with ``model`` on each NCHW float32 batch.

    ``references``, the batches' :func:`reference_logits`, spares the PyTorch forward passes.
    """
    batches = list(batches)
    references = reference_logits(model, batches) if references is None else references
    agree = pixels = images = nonfinite = 0
    max_diff, sum_diff, count = 0.0, 0.0, 0
    for batch, ref in zip(batches, references, strict=True):
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        out = run(batch)
        if out.shape != ref.shape:
            raise ValueError(f"exported model returned {out.shape}, PyTorch {ref.shape}")
        bad = int((~np.isfinite(out)).sum() + (~np.isfinite(ref)).sum())
        nonfinite += bad
        diff = np.abs(out - ref)
        max_diff = math.inf if bad else max(max_diff, float(diff.max()))
        sum_diff += float(diff.sum(dtype=np.float64))
        count += diff.size
        agree += int((out.argmax(1) == ref.argmax(1)).sum())
        pixels += ref.shape[0] * ref.shape[2] * ref.shape[3]
        images += batch.shape[0]
    if pixels == 0:
        raise ValueError("parity needs at least one batch")
    limit = MIN_AGREEMENT[precision] if threshold is None else threshold
    return ParityReport(precision=precision, pixels=pixels, agreement=agree / pixels, max_abs_diff=max_diff,
                        mean_abs_diff=sum_diff / count, threshold=limit, images=images, nonfinite=nonfinite)
