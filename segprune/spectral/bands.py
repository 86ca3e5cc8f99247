"""Square frequency bands: which coefficients a ``keep-freq`` fraction keeps.

A coefficient at integer frequency ``(k_y, k_x)`` of an ``H x W`` map has band radius
``r = max(|k_y| / (H/2), |k_x| / (W/2))``: it belongs to band ``f`` when ``r <= f``, so
``f = 1`` is the Nyquist band (everything) and the band is a per-axis fraction, exactly
what a grid of ``ceil(f*H) x ceil(f*W)`` samples resolves. For the DCT-II the index ``u``
of an ``H``-point transform sits at ``u / (2H)`` cycles per sample, so ``r = max(u/H, v/W)``.

Spectra are accumulated as histograms over ``nbins`` equal steps of ``r``: bin ``i`` holds
``(i-1)/nbins < r <= i/nbins`` and bin 0 holds exactly the DC term (``r = 0``). The
cumulative sum up to bin ``i`` is therefore the exact energy of band ``f = i / nbins``, and
dropping bin 0 excludes DC, whatever the map sizes in a dataset.
"""

from __future__ import annotations

import torch

from segprune.errors import ConfigError
from segprune.models.grid import check_keep  # noqa: F401  (re-exported: keep-freq's owner is models.grid)

NBINS = 1000
"""Default band resolution: cut-offs are exact multiples of 1/1000 of Nyquist."""

TRANSFORMS = ("dft", "dct")

_EPS = 1e-9


def band_radius(h: int, w: int, transform: str = "dft", *, onesided: bool = True,
                device: torch.device | str | None = None) -> torch.Tensor:
    """Band radius of every coefficient of an ``h x w`` transform (float64).

    ``onesided`` gives the ``torch.fft.rfft2`` layout ``(h, w // 2 + 1)``; otherwise the full
    ``fft2`` layout. The DCT layout is always ``(h, w)``.
    """
    if transform == "dct":
        ky = torch.arange(h, dtype=torch.float64, device=device) / h
        kx = torch.arange(w, dtype=torch.float64, device=device) / w
    elif transform == "dft":
        ky = torch.fft.fftfreq(h, d=1.0 / h, dtype=torch.float64, device=device).abs() / (h / 2)
        freq = torch.fft.rfftfreq if onesided else torch.fft.fftfreq
        kx = freq(w, d=1.0 / w, dtype=torch.float64, device=device).abs() / (w / 2)
    else:
        raise ConfigError(f"transform {transform!r} is not one of {', '.join(TRANSFORMS)}")
    return torch.maximum(ky[:, None], kx[None, :])


def rfft_multiplicity(w: int, device: torch.device | str | None = None) -> torch.Tensor:
    """How many full-spectrum columns each ``rfft`` column stands for (1 or 2).

    The one-sided transform stores column ``k`` for ``k`` and ``-k``; column 0 and, for even
    ``w``, the Nyquist column ``w/2`` have no mirror. Weighting by this makes one-sided power
    sums equal full ones (Parseval) at half the cost.
    """
    m = torch.full((w // 2 + 1,), 2.0, dtype=torch.float64, device=device)
    m[0] = 1.0
    if w % 2 == 0:
        m[-1] = 1.0
    return m


def band_index(radius: torch.Tensor, nbins: int = NBINS) -> torch.Tensor:
    """Histogram bin of each radius: 0 for DC, ``ceil(r * nbins)`` otherwise (int64)."""
    return torch.ceil(radius * nbins - _EPS).clamp_(0, nbins).to(torch.int64)


def band_mask(h: int, w: int, keep: float, transform: str = "dft", *, onesided: bool = False,
              device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean mask of the coefficients inside band ``keep`` (same layout as :func:`band_radius`)."""
    return band_radius(h, w, transform, onesided=onesided, device=device) <= keep + _EPS


def band_grid(nbins: int = NBINS) -> torch.Tensor:
    """The band fractions ``f_i = i / nbins`` that histogram bin ``i`` closes."""
    return torch.arange(nbins + 1, dtype=torch.float64) / nbins
