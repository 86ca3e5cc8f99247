"""Label spectra: per-class one-hot maps, 2-D transform, power summed over images.

This is the measurement the whole toolkit rests on (RESEARCH.md 1.2(a)): segmentation
labels are piecewise constant, so their one-hot maps carry most of their energy at low
frequencies, and the cut-off ``f_c(tau)`` (the smallest band holding a fraction ``tau`` of
the non-DC energy) says how coarse a grid can still resolve them.

:class:`LabelSpectrum` is an accumulator: feed it batches of label maps of any size (it
keeps per-class radial histograms, never the maps), so memory stays bounded on
Cityscapes-sized datasets. All transforms of a batch run as one batched FFT (or two
matrix products for the DCT) over ``batch x classes``, without Python loops over classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from segprune.errors import DataError
from segprune.spectral.bands import NBINS, TRANSFORMS, band_grid, band_index, band_radius, rfft_multiplicity
from segprune.spectral.transforms import dct_matrix


def present_classes(labels: torch.Tensor, num_classes: int, ignore_index: int = 255) -> torch.Tensor:
    """Pixel count of every class in every map, ``(B, K)``; label values are already checked."""
    return torch.stack([torch.bincount(m.reshape(-1), minlength=max(num_classes, ignore_index + 1))[:num_classes]
                        for m in labels])


def power_spectrum(maps: torch.Tensor, transform: str = "dft") -> torch.Tensor:
    """Power of each coefficient of ``(..., H, W)`` maps, in the layout of :func:`band_radius`.

    DFT power is ``|Y|^2`` on the one-sided grid, weighted by the column multiplicity so that
    sums over it equal sums over the full spectrum. DCT power is that of the orthonormal
    DCT-II, whose sum equals the maps' squared norm. Both are normalised by ``H * W`` so that
    the total is the mean of the squared map (Parseval), comparable across image sizes.
    """
    return normalise_power(raw_power(maps, transform), tuple(maps.shape[-2:]), transform)


def raw_power(maps: torch.Tensor, transform: str = "dft") -> torch.Tensor:
    """Unnormalised coefficient power, in the maps' dtype: the expensive, batched part.

    Summing raw power over maps first and normalising the much smaller sum in float64
    afterwards is what keeps the label pass fast.
    """
    h, w = maps.shape[-2:]
    if transform == "dft":
        spec = torch.fft.rfft2(maps)
        return spec.real.square() + spec.imag.square()
    ch, cw = dct_matrix(h, maps.device, maps.dtype), dct_matrix(w, maps.device, maps.dtype)
    return (ch @ maps @ cw.T).square()


def normalise_power(power: torch.Tensor, size: tuple[int, int], transform: str = "dft") -> torch.Tensor:
    """float64 power of maps of ``size``, normalised as :func:`power_spectrum` documents."""
    h, w = size
    power = power.to(torch.float64)
    if transform == "dft":
        return power * rfft_multiplicity(w, power.device) / (h * w) ** 2
    return power / (h * w)


@dataclass
class LabelSpectrum:
    """Per-class label energy histogram over square bands.

    ``energy[k, i]`` is the power of class ``k`` in bin ``i`` (bin 0 = DC; see
    :mod:`segprune.spectral.bands`), summed over all maps seen; ``maps`` counts them.
    Transforms run in ``dtype`` (float32: relative error ~1e-7, twice as fast as float64);
    histograms always accumulate in float64.
    """

    num_classes: int
    ignore_index: int = 255
    transform: str = "dft"
    nbins: int = NBINS
    class_names: list[str] | None = None
    dtype: torch.dtype = torch.float32
    energy: torch.Tensor = field(init=False)
    maps: int = field(init=False, default=0)
    pixels: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        if self.transform not in TRANSFORMS:
            raise DataError(f"transform {self.transform!r} is not one of {TRANSFORMS}")
        self.energy = torch.zeros(self.num_classes, self.nbins + 1, dtype=torch.float64)
        self._bins: dict[tuple[int, int], torch.Tensor] = {}

    def update(self, labels: torch.Tensor) -> None:
        """Add a batch of label maps ``(B, H, W)`` (or one ``(H, W)``) of class indices.

        Only the (map, class) pairs that occur are transformed: an absent class has an
        all-zero one-hot map and no energy, and road scenes rarely hold every class. Labels
        travel as bytes and power is binned in the transform's dtype before the float64
        accumulation: on a CPU the label pass is bound by memory traffic, not by the FFTs.
        """
        labels = torch.as_tensor(labels)
        if labels.dim() == 2:
            labels = labels[None]
        small = labels.to(torch.uint8) if self.num_classes < 256 and self.ignore_index < 256 else labels.long()
        b, h, w = labels.shape
        k, bins = self.num_classes, self.nbins + 1
        maps, classes = torch.nonzero(present_classes(small, k, self.ignore_index), as_tuple=True)
        if maps.numel():
            onehot = (small[maps] == classes.to(small.dtype)[:, None, None]).to(self.dtype)  # (P, H, W)
            power = raw_power(onehot, self.transform)  # (P, h, w'), unnormalised, in self.dtype
            per_class = torch.zeros(k, *power.shape[1:], dtype=power.dtype, device=power.device)
            per_class.index_add_(0, classes, power)  # rows: fast; a flat scatter would not be
            if self.transform == "dft":
                per_class *= rfft_multiplicity(w, power.device).to(power.dtype)
            hist = torch.zeros(k, bins, dtype=power.dtype, device=power.device)
            hist.index_add_(1, self._bin_index(h, w, power.device), per_class.reshape(k, -1))
            scale = (h * w) ** 2 if self.transform == "dft" else h * w
            self.energy += hist.to(torch.float64).cpu() / scale
        self.maps += b
        self.pixels += labels.numel()

    def _bin_index(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        idx = self._bins.get((h, w))
        if idx is None:
            radius = band_radius(h, w, self.transform, onesided=True, device=device)
            idx = self._bins[(h, w)] = band_index(radius, self.nbins).reshape(-1)
        return idx

    def cumulative(self, exclude_dc: bool = True, per_class: bool = False) -> torch.Tensor:
        """Fraction of the energy inside band ``f_i = i / nbins`` for every ``i``.

        Shape ``(nbins + 1,)``, or ``(K, nbins + 1)`` with ``per_class``. With ``exclude_dc``
        the DC term (class frequency, not shape) is left out of both sides.
        """
        e = self.energy.clone()
        if exclude_dc:
            e[:, 0] = 0.0
        if not per_class:
            e = e.sum(0, keepdim=True)
        total = e.sum(1, keepdim=True)
        cum = e.cumsum(1) / torch.where(total > 0, total, torch.ones_like(total))
        return cum if per_class else cum[0]

    def cutoff(self, tau: float, exclude_dc: bool = True) -> float:
        """``f_c(tau)``: the smallest band fraction holding at least ``tau`` of the energy."""
        if not 0.0 < tau <= 1.0:
            raise DataError(f"energy threshold {tau} is outside (0, 1]: use e.g. 0.95")
        if self.maps == 0:
            raise DataError("no label maps were analysed: the dataset split is empty")
        cum = self.cumulative(exclude_dc)
        hit = torch.nonzero(cum >= tau - 1e-12)
        return float(band_grid(self.nbins)[int(hit[0])]) if hit.numel() else 1.0

    def class_energy_density(self) -> torch.Tensor:
        """Per-class energy per unit band (for plots), non-DC bins only, ``(K, nbins)``."""
        return self.energy[:, 1:] * self.nbins

    def merge(self, other: LabelSpectrum) -> LabelSpectrum:
        self.energy += other.energy
        self.maps += other.maps
        self.pixels += other.pixels
        return self
