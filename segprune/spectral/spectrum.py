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
    """Unnormalised coefficient power, in the maps' dtype: the expensive, batched part."""
    squares = _squared_parts(maps, transform)
    return squares[..., 0] + squares[..., 1] if transform == "dft" else squares


def _squared_parts(maps: torch.Tensor, transform: str) -> torch.Tensor:
    """Squared coefficients, DFT real and imaginary parts kept apart in a trailing axis of 2.

    Leaving the final ``re^2 + im^2`` to the summed accumulator saves a pass over every
    map's spectrum: a reduction over an axis of length 2 is slow on a CPU.
    """
    h, w = maps.shape[-2:]
    if transform == "dft":
        return torch.view_as_real(torch.fft.rfft2(maps)).square_()
    ch, cw = dct_matrix(h, maps.device, maps.dtype), dct_matrix(w, maps.device, maps.dtype)
    return (ch @ maps @ cw.T).square_()


def normalise_power(power: torch.Tensor, size: tuple[int, int], transform: str = "dft") -> torch.Tensor:
    """float64 power of maps of ``size``, normalised as :func:`power_spectrum` documents."""
    h, w = size
    power = power.to(torch.float64)
    if transform == "dft":
        return power * rfft_multiplicity(w, power.device) / (h * w) ** 2
    return power / (h * w)


_CHUNK = 4
"""One-hot maps transformed per step. A few maps keep the one-hot, its spectrum and their
squares in cache from comparison to accumulation: 1.6x faster than a whole batch at once
on CamVid (2-core EPYC), where the pass is bound by memory traffic."""


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
    flush_every: int = 32
    maps: int = field(init=False, default=0)
    pixels: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        if self.transform not in TRANSFORMS:
            raise DataError(f"transform {self.transform!r} is not one of {TRANSFORMS}")
        self._energy = torch.zeros(self.num_classes, self.nbins + 1, dtype=torch.float64)
        self._bins: dict[tuple[int, int], torch.Tensor] = {}
        self._pending: torch.Tensor | None = None  # per-class squared coefficients not yet binned
        self._pending_size: tuple[int, int] | None = None
        self._pending_maps = 0

    @property
    def energy(self) -> torch.Tensor:
        """``(K, nbins + 1)`` float64 energy histogram of every map seen so far."""
        self._flush()
        return self._energy

    def update(self, labels: torch.Tensor) -> None:
        """Add a batch of label maps ``(B, H, W)`` (or one ``(H, W)``) of class indices.

        On a CPU the label pass is bound by memory traffic more than by the FFTs, so every
        step avoids a pass over the spectra it can: only the (map, class) pairs that occur
        are transformed (an absent class has no energy, and road scenes rarely hold every
        class), a few at a time (:data:`_CHUNK`); the one-hot maps are written by a single
        comparison straight into the transform's dtype; and coefficient power is summed per
        class over up to ``flush_every`` maps of one size before it is binned into the
        float64 histogram.
        """
        labels = torch.as_tensor(labels)
        if labels.dim() == 2:
            labels = labels[None]
        small = labels.to(torch.uint8) if self.num_classes < 256 and self.ignore_index < 256 else labels.long()
        b, h, w = labels.shape
        maps, classes = torch.nonzero(present_classes(small, self.num_classes, self.ignore_index), as_tuple=True)
        for start in range(0, maps.numel(), _CHUNK):
            m, c = maps[start:start + _CHUNK], classes[start:start + _CHUNK]
            onehot = torch.empty(m.numel(), h, w, dtype=self.dtype, device=small.device)
            # index_select, not small[m]: advanced indexing is ~20x slower on a CPU here
            torch.eq(small.index_select(0, m), c.to(small.dtype).view(-1, 1, 1), out=onehot)
            squares = _squared_parts(onehot, self.transform)
            self._pending_for((h, w), squares).index_add_(0, c.to(squares.device), squares)
        self._pending_maps += b if maps.numel() else 0
        self.maps += b
        self.pixels += labels.numel()
        if self._pending_maps >= self.flush_every:
            self._flush()

    def _pending_for(self, size: tuple[int, int], like: torch.Tensor) -> torch.Tensor:
        """The accumulator for maps of ``size``; a different size first bins the last one's."""
        if self._pending is not None and (self._pending_size != size or self._pending.device != like.device):
            self._flush()
        if self._pending is None:
            self._pending = torch.zeros(self.num_classes, *like.shape[1:], dtype=like.dtype, device=like.device)
            self._pending_size = size
        return self._pending

    def _flush(self) -> None:
        """Bin the pending per-class power into the float64 histogram (normalised by map size)."""
        if self._pending is None:
            return
        (h, w), power = self._pending_size, self._pending
        k = self.num_classes
        if self.transform == "dft":  # in the pending dtype: a float64 copy would double peak memory
            power = power.sum(-1).mul_(rfft_multiplicity(w, power.device).to(power.dtype))
        hist = torch.zeros(k, self.nbins + 1, dtype=power.dtype, device=power.device)
        hist.index_add_(1, self._bin_index(h, w, power.device), power.reshape(k, -1))
        scale = (h * w) ** 2 if self.transform == "dft" else h * w
        self._energy += hist.to(torch.float64).cpu() / scale
        self._pending, self._pending_size, self._pending_maps = None, None, 0

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
        self._energy = self.energy + other.energy
        self.maps += other.maps
        self.pixels += other.pixels
        return self
