"""``segprune analyze`` as a library call: stream a dataset's labels (and optionally a model) once.

:func:`analyze_labels` computes the label spectrum over every map of a split (batched FFTs,
label decoding in DataLoader workers, bounded memory), the cut-offs for each threshold, the
grid each cut-off needs, and reconstruction ceilings on an evenly spaced subset of maps.
:func:`analyze_model` adds what a model tells: the cross-entropy each band carries and the
per-channel spectra of its decoder features.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from segprune.data.blocks import annotation_cost
from segprune.data.loader import spread
from segprune.errors import DataError
from segprune.models.grid import held_band, recommend_grid
from segprune.spectral.band_ce import band_ce_share, ce_by_band
from segprune.spectral.bands import NBINS, band_grid, check_keep
from segprune.spectral.ceilings import Ceilings
from segprune.spectral.features import FeatureSpectra, recording
from segprune.spectral.spectrum import LabelSpectrum

DEFAULT_TAUS = (0.90, 0.95, 0.99)
CEILING_KEEPS = (0.02, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0)
CEILING_STRIDES = (1, 2, 4, 8, 16, 32)
CEILING_BLOCKS = (1, 2, 4, 8, 16, 32)
REPORT_POINTS = 100  # JSON curves are sampled at f = 0, 0.01, ..., 1


class _Labels(Dataset):
    """Label maps only: spectral passes never decode the images."""

    def __init__(self, dataset, indices: list[int] | None = None) -> None:
        self.dataset = dataset
        self.indices = list(range(len(dataset))) if indices is None else list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.dataset.read_label(self.indices[i], np.uint8))


def _collate(maps: list[torch.Tensor]) -> list[torch.Tensor]:
    """Stack maps of equal size; a mixed-size batch (VOC) becomes one tensor per size."""
    by_size: dict[tuple[int, int], list[torch.Tensor]] = {}
    for m in maps:
        by_size.setdefault(tuple(m.shape), []).append(m)
    return [torch.stack(group) for group in by_size.values()]


def label_batches(dataset, batch_size: int = 16, workers: int = 0, indices: list[int] | None = None):
    """Batches of label tensors ``(B, H, W)`` (of ``indices`` only, if given), decoded by ``workers`` processes.

    Without workers the maps are read in this process directly: a DataLoader's per-batch
    machinery costs ~10% of a CamVid label pass and buys nothing there.
    """
    labels = _Labels(dataset, indices)
    if workers == 0:
        return _InProcessBatches(labels, batch_size)
    return DataLoader(labels, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=_collate)


@dataclass
class _InProcessBatches:
    """What a DataLoader without workers yields, without its machinery (and with a length)."""

    labels: _Labels
    batch_size: int

    def __len__(self) -> int:
        return -(-len(self.labels) // self.batch_size)

    def __iter__(self):
        n = len(self.labels)
        for start in range(0, n, self.batch_size):
            yield _collate([self.labels[i] for i in range(start, min(start + self.batch_size, n))])


@dataclass
class LabelAnalysis:
    spectrum: LabelSpectrum
    sizes: Counter
    ceilings: dict[str, list[dict]] | None
    report: dict[str, Any]


def analyze_labels(dataset, *, taus=DEFAULT_TAUS, transform: str = "dft", nbins: int = NBINS,
                   batch_size: int = 2, workers: int = 0, ceiling_images: int | None = 32,
                   blocks=CEILING_BLOCKS, input_size: tuple[int, int] | None = None,
                   progress: bool = True) -> LabelAnalysis:
    """Label spectrum, cut-offs, grids and ceilings of a dataset split.

    The grid each cut-off needs is set by the label size; ``input_size`` (default: the
    label size) is the size the model runs at, which sets the decoder grid and so the
    keep-freq and whether the decoder can hold the cut-off at all (:func:`recommend_grid`).

    ``ceiling_images`` maps, evenly spaced over the split, are used for the ceilings (they
    cost one inverse transform per setting and map); ``None`` or 0 uses all, and a negative
    value skips them.
    """
    if len(dataset) == 0:
        raise DataError(f"{getattr(dataset, 'source', 'the dataset')} has no label maps in split "
                        f"{getattr(dataset, 'split', '?')!r}: check the path and the split name")
    spectrum = LabelSpectrum(dataset.num_classes, dataset.ignore_index, transform, nbins, list(dataset.classes))
    sizes: Counter = Counter()
    for batch in tqdm(label_batches(dataset, batch_size, workers), desc="label spectrum", unit="batch",
                      disable=not progress, leave=False):
        for group in batch:
            spectrum.update(group)
            sizes[tuple(group.shape[-2:])] += group.shape[0]
    size = sizes.most_common(1)[0][0]
    cutoffs = []
    for tau in taus:
        fc = spectrum.cutoff(tau, exclude_dc=True)
        cutoffs.append({"tau": tau, "cutoff": fc, "cutoff_with_dc": spectrum.cutoff(tau, exclude_dc=False),
                        **{k: v for k, v in recommend_grid(fc, size, input_size).items() if k != "cutoff"}})
    ceilings = None
    if ceiling_images is None or ceiling_images >= 0:
        ceilings = _ceilings(dataset, size, blocks, ceiling_images, batch_size, workers, progress)
    curve = _curve(spectrum.cumulative(exclude_dc=False), nbins), _curve(spectrum.cumulative(exclude_dc=True), nbins)
    per_class = spectrum.cumulative(exclude_dc=True, per_class=True)
    report = {
        "maps": spectrum.maps,
        "pixels": spectrum.pixels,
        "sizes": {f"{h}x{w}": n for (h, w), n in sizes.most_common()},
        "reference_size": list(size),
        "transform": transform,
        "band": "square: max(|ky|/(H/2), |kx|/(W/2)) <= f",
        "nbins": nbins,
        "cumulative_energy": {"f": _curve(band_grid(nbins), nbins), "with_dc": curve[0], "without_dc": curve[1]},
        "per_class_cutoff_95": {name: _first(per_class[k], 0.95, nbins)
                                for k, name in enumerate(dataset.classes)},
        "cutoffs": cutoffs,
        "ceilings": ceilings,
        "annotation_cost": [annotation_cost(size, b) for b in blocks],
    }
    return LabelAnalysis(spectrum, sizes, ceilings, report)


def _ceilings(dataset, size, blocks, images, batch_size, workers, progress) -> dict[str, list[dict]]:
    h, w = size
    grids = sorted({(-(-h // s), -(-w // s)) for s in CEILING_STRIDES}, reverse=True)
    ceil = Ceilings(dataset.num_classes, CEILING_KEEPS, grids, blocks, dataset.ignore_index)
    subset = spread(len(dataset), images)
    loader = label_batches(dataset, batch_size, workers, subset)
    for batch in tqdm(loader, desc="ceilings", unit="batch", disable=not progress, leave=False):
        for group in batch:
            ceil.update(group)
    out = ceil.results()
    for row in out["grid"]:
        row["stride"] = max(s for s in CEILING_STRIDES if (-(-h // s), -(-w // s)) == tuple(row["grid"]))
    out["images"] = len(subset)
    return out


def _curve(values: torch.Tensor, nbins: int) -> list[float]:
    step = max(1, nbins // REPORT_POINTS)
    return [float(v) for v in values[::step]]


def _first(cum: torch.Tensor, tau: float, nbins: int) -> float:
    hit = torch.nonzero(cum >= tau - 1e-12)
    return float(hit[0]) / nbins if hit.numel() else 1.0


@dataclass(frozen=True)
class Band:
    """The decoder band chosen for an energy threshold ``tau`` at one input size.

    ``held`` is the share of the labels' non-DC energy the chosen decoder grid resolves:
    ``tau`` or more when ``resolves``; otherwise what keep-freq 1 holds at this input size,
    and ``input_size_needed`` is the input whose decoder would hold ``tau``.
    """

    tau: float
    cutoff: float
    keep_freq: float
    held: float
    resolves: bool
    grid: tuple[int, int]
    decoder_grid: tuple[int, int]
    label_size: tuple[int, int]
    input_size: tuple[int, int]
    input_size_needed: tuple[int, int]

    def note(self) -> str:
        """One line for the user: what was chosen, or why ``tau`` cannot be held."""
        need, dec = "x".join(map(str, self.grid)), "x".join(map(str, self.decoder_grid))
        size = "x".join(map(str, self.input_size))
        if self.resolves:
            return (f"--energy {self.tau:g}: the labels need a {need} grid (f_c {self.cutoff:.3f} of the "
                    f"{'x'.join(map(str, self.label_size))} labels' Nyquist); at input {size} the decoder's {dec} "
                    f"grid gives it at keep-freq {self.keep_freq:.3f}")
        return (f"--energy {self.tau:g} is beyond what the decoder can hold at input {size}: the labels need a "
                f"{need} grid and the decoder has {dec}, holding {self.held:.3f} of the label energy at keep-freq 1; "
                f"input {'x'.join(map(str, self.input_size_needed))} or larger would hold {self.tau:g}")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}


def held_energy(spectrum: LabelSpectrum, keep: float, label_size: tuple[int, int],
                input_size: tuple[int, int], decoder_stride: int = 4) -> float:
    """Share of the labels' non-DC energy inside the band a decoder at ``keep`` resolves (its finest grid at
    ``decoder_stride``: 4 for DeepLabV3+, 1 for U-Net; the model adapter's ``decoder_stride``)."""
    f = held_band(keep, label_size, input_size, decoder_stride)
    return float(spectrum.cumulative(exclude_dc=True)[int(np.floor(f * spectrum.nbins + 1e-9))])


def choose_band(spectrum: LabelSpectrum, tau: float, label_size: tuple[int, int],
                input_size: tuple[int, int] | None = None, decoder_stride: int = 4) -> Band:
    """``--energy tau`` -> ``--keep-freq``: the truncation whose decoder grid resolves ``f_c(tau)``.

    The one conversion ``analyze``, ``prune`` and the demo use: the cut-off is measured on
    the labels (``label_size``, e.g. a split's most common size), the decoder grid follows
    the size the model runs at (``input_size``, default the label size). A model run at half
    the label size has half the decoder grid for the same cycles per image, so it needs
    twice the keep-freq; past 1 it cannot hold ``tau`` at all, and the band says so.
    ``decoder_stride`` is the stride of the decoder's finest grid, which keep-freq is a fraction of.
    """
    label_size = (int(label_size[0]), int(label_size[1]))
    input_size = (int(input_size[0]), int(input_size[1])) if input_size else label_size
    fc = spectrum.cutoff(tau)
    rec = recommend_grid(fc, label_size, input_size, decoder_stride)
    keep = rec["keep_freq"]
    return Band(tau=tau, cutoff=fc, keep_freq=keep,
                held=held_energy(spectrum, keep, label_size, input_size, decoder_stride),
                resolves=rec["decoder_resolves_cutoff"], grid=tuple(rec["grid"]),
                decoder_grid=tuple(rec["decoder_grid"]), label_size=label_size, input_size=input_size,
                input_size_needed=tuple(rec["input_size_needed"]))


def band_for_energy(train_set, energy: float, input_size: tuple[int, int], decoder_stride: int, *,
                    workers: int = 0, progress: bool = True) -> tuple[Band, LabelAnalysis]:
    """``--energy`` -> the band, from ``train_set``'s labels; refused when the model cannot hold it at ``input_size``.

    Not a silent cap at keep-freq 1: the user asked for a band this model cannot resolve,
    and the error gives the largest energy it can hold. ``prune`` and ``compress`` call this.
    """
    import math

    from segprune.errors import ConfigError

    labels = analyze_labels(train_set, taus=(energy,), ceiling_images=-1, workers=workers, progress=progress)
    band = choose_band(labels.spectrum, energy, labels.report["reference_size"], input_size, decoder_stride)
    if not band.resolves:
        raise ConfigError(f"{band.note()}; pass --energy {math.floor(band.held * 1000) / 1000:.3f} or less, "
                          "--keep-freq 1, or that --input-size")
    return band, labels


@torch.no_grad()
def analyze_model(model, loader, *, keep: float = 1.0, input_size: tuple[int, int] | None = None,
                  layers=None, nbins: int = NBINS, max_batches: int | None = None, device="cpu",
                  progress: bool = True) -> tuple[dict[str, Any], FeatureSpectra]:
    """CE carried by each band (at label resolution) and decoder feature spectra of ``model``.

    Both come from one forward pass per batch: the feature hooks record while the logits
    are scored against the labels.
    """
    import torch.nn.functional as F

    check_keep(keep)
    model.eval().to(device)
    hist, valid = torch.zeros(nbins + 1, dtype=torch.float64), 0
    with recording(model, layers, nbins) as spectra:
        for i, (images, labels) in enumerate(tqdm(loader, desc="model spectra", unit="batch", leave=False,
                                                  disable=not progress, total=max_batches)):
            if max_batches is not None and i >= max_batches:
                break
            if input_size is not None:
                images = F.interpolate(images, size=input_size, mode="bilinear", align_corners=False)
            logits = model(images.to(device)).cpu()
            spectra.images += images.shape[0]
            h, v = ce_by_band(logits, labels, nbins=nbins)
            hist += h
            valid += v
    share = band_ce_share(hist)
    kept = spectra.kept_fraction(keep)
    report = {
        "images": spectra.images,
        "cross_entropy": float(hist.sum() / max(valid, 1)),
        "ce_share": {"f": _curve(band_grid(nbins), nbins), "cumulative": _curve(share, nbins)},
        "ce_share_at_keep": float(share[int(round(keep * nbins))]),
        "keep_freq": keep,
        "features": {layer: {"channels": int(e.shape[0]), "grid": list(spectra.grids[layer]),
                             "kept_fraction": [float(v) for v in kept[layer]],
                             "mean_kept_fraction": float(kept[layer].mean())}
                     for layer, e in spectra.energy.items()},
    }
    return report, spectra
