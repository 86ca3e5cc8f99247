"""Spectral analysis of segmentation labels, losses and decoder features.

The definitions (square bands, cut-off, grid, ceilings, CE by band, feature spectra) are
documented in :mod:`segprune.spectral.bands` and the modules named below.
"""

from segprune.data.labels import one_hot
from segprune.models.grid import held_band, recommend_grid
from segprune.spectral.analyze import (
    Band,
    analyze_labels,
    analyze_model,
    band_for_energy,
    choose_band,
    held_energy,
)
from segprune.spectral.band_ce import band_ce_share, ce_by_band
from segprune.spectral.bands import NBINS, band_grid, band_index, band_mask, band_radius, check_keep
from segprune.spectral.ceilings import Ceilings, grid_labels, lowpass_labels
from segprune.spectral.features import (
    DEFAULT_LAYERS,
    FeatureSpectra,
    feature_spectra,
    recording,
    resolve_layers,
)
from segprune.spectral.spectrum import LabelSpectrum, power_spectrum
from segprune.spectral.transforms import dct_matrix

__all__ = [
    "analyze_labels",
    "band_for_energy",
    "analyze_model",
    "Band",
    "choose_band",
    "held_energy",
    "DEFAULT_LAYERS",
    "NBINS",
    "Ceilings",
    "FeatureSpectra",
    "LabelSpectrum",
    "band_ce_share",
    "band_grid",
    "band_index",
    "band_mask",
    "band_radius",
    "ce_by_band",
    "check_keep",
    "dct_matrix",
    "feature_spectra",
    "grid_labels",
    "lowpass_labels",
    "one_hot",
    "power_spectrum",
    "held_band",
    "recommend_grid",
    "recording",
    "resolve_layers",
]
