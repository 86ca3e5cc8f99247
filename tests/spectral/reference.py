"""An independent numpy implementation of the label-spectrum definitions, for cross-checks.

Written from the definitions, not from segprune's code: full complex ``np.fft.fft2`` per
image and class (no one-sided tricks), band radius from ``np.fft.fftfreq``, a plain sort
for the cumulative curve.
"""

from __future__ import annotations

import numpy as np


def numpy_band_energy(labels: list[np.ndarray], num_classes: int, ignore: int = 255):
    """(radius, energy) pairs over all maps, energy normalised by (H*W)^2 per map."""
    radii, energies = [], []
    for lab in labels:
        h, w = lab.shape
        ky = np.abs(np.fft.fftfreq(h) * h) / (h / 2)
        kx = np.abs(np.fft.fftfreq(w) * w) / (w / 2)
        r = np.maximum(ky[:, None], kx[None, :])
        power = np.zeros((h, w))
        for k in range(num_classes):
            power += np.abs(np.fft.fft2((lab == k).astype(np.float64))) ** 2
        radii.append(r.ravel())
        energies.append(power.ravel() / (h * w) ** 2)
    return np.concatenate(radii), np.concatenate(energies)


def numpy_cutoff(radius: np.ndarray, energy: np.ndarray, tau: float, nbins: int = 1000) -> float:
    """Smallest f = i/nbins with (non-DC energy at r <= f) >= tau * (non-DC energy)."""
    keep = radius > 0
    radius, energy = radius[keep], energy[keep]
    total = energy.sum()
    for i in range(nbins + 1):
        if energy[radius <= i / nbins + 1e-9].sum() >= tau * total - 1e-12:
            return i / nbins
    return 1.0
