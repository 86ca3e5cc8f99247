"""Cross-entropy written as a sum over frequencies (Parseval), and its share per band.

Over the valid pixels ``V`` of a map, ``CE = -(1/|V|) sum_x sum_k y_k(x) s_k(x)`` with
``y`` the one-hot labels (zero at ignore pixels) and ``s = log_softmax(logits)``. For real
maps ``sum_x a(x) b(x) = (1/N) sum_w A(w) conj(B(w))`` (``N = H*W``), so

    CE = sum_w CE(w),   CE(w) = -(1/(|V| N)) sum_k Re[Y_k(w) conj(S_k(w))]

(RESEARCH.md 1.2(a)). Histogramming ``CE(w)`` by band radius gives the cross-entropy each
band carries; the bins sum to ``F.cross_entropy`` over the valid pixels, to float64
rounding. Terms can be negative: a band can lower the loss as well as raise it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from segprune.data.labels import one_hot
from segprune.spectral.bands import NBINS, band_index, band_radius, rfft_multiplicity


def ce_by_band(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = 255,
               nbins: int = NBINS) -> tuple[torch.Tensor, int]:
    """Per-band CE sums ``(nbins + 1,)`` (not yet divided by the valid pixel count) and that count.

    Summing the returned vector and dividing by the count gives the batch cross-entropy;
    returning the parts lets callers accumulate over a dataset exactly.
    """
    if logits.shape[-2:] != target.shape[-2:]:
        logits = F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
    b, k, h, w = logits.shape
    logp = F.log_softmax(logits.to(torch.float64), dim=1)
    y = one_hot(target, k, ignore_index, dtype=torch.float64)
    # Only y needs the ignore mask: y is zero there, so the product vanishes pixel-wise.
    ys, ss = torch.fft.rfft2(y), torch.fft.rfft2(logp)
    cross = (ys.real * ss.real + ys.imag * ss.imag).sum((0, 1)) * rfft_multiplicity(w, logits.device)
    idx = band_index(band_radius(h, w, "dft", onesided=True, device=logits.device), nbins).reshape(-1)
    hist = torch.zeros(nbins + 1, dtype=torch.float64, device=logits.device)
    hist.index_add_(0, idx, -cross.reshape(-1) / (h * w))
    valid = int((target != ignore_index).sum())
    return hist.cpu(), valid


def band_ce_share(hist: torch.Tensor) -> torch.Tensor:
    """Cumulative share of the total CE carried by bands up to each ``f_i`` (``(nbins+1,)``)."""
    total = hist.sum()
    return hist.cumsum(0) / total if total != 0 else torch.zeros_like(hist)
