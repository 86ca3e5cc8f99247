"""Label spectrum: known answers, Parseval, DCT/DFT agreement, cut-offs, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from segprune.errors import ConfigError, DataError
from segprune.spectral import LabelSpectrum, band_mask, band_radius, check_keep
from tests.spectral.reference import numpy_band_energy, numpy_cutoff

sizes = st.tuples(st.integers(2, 40), st.integers(2, 40))


def test_constant_map_has_all_energy_at_dc() -> None:
    s = LabelSpectrum(3)
    s.update(torch.full((2, 17, 24), 1))
    assert s.energy[1, 0] == pytest.approx(2.0)
    assert float(s.energy[:, 1:].abs().sum()) < 1e-12
    assert s.cumulative(exclude_dc=False)[0] == pytest.approx(1.0)


@settings(max_examples=30, deadline=None)
@given(h=st.integers(1, 12), half_period=st.integers(1, 6), repeats=st.integers(1, 5))
def test_vertical_stripes_put_energy_at_the_predicted_bin(h: int, half_period: int, repeats: int) -> None:
    period = 2 * half_period
    w = period * repeats * 2
    stripes = (torch.arange(w) // half_period % 2).expand(h, w)
    s = LabelSpectrum(2, nbins=w)
    s.update(stripes)
    # A square wave of period p has odd harmonics m * w / p; the fundamental sits at radius 2 / p.
    nonzero = torch.nonzero(s.energy.sum(0) > 1e-12).flatten().tolist()
    assert nonzero[0] == 0 and nonzero[1] == 2 * w // period
    fundamental_radius = (w / period) / (w / 2)
    assert s.cutoff(0.8) == pytest.approx(fundamental_radius)


@settings(max_examples=25, deadline=None)
@given(size=sizes, k=st.integers(2, 5), seed=st.integers(0, 10_000))
def test_dft_and_dct_both_satisfy_parseval(size, k, seed) -> None:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, k, (2, *size), generator=g)
    labels[0, 0, 0] = 255
    valid_fraction = float((labels != 255).double().mean())
    for transform in ("dft", "dct"):
        s = LabelSpectrum(k, transform=transform, dtype=torch.float64)
        s.update(labels)
        # sum over classes of mean(y_k^2) = share of valid pixels, per map
        assert float(s.energy.sum()) / 2 == pytest.approx(valid_fraction, rel=1e-9)
        fast = LabelSpectrum(k, transform=transform)
        fast.update(labels)
        assert float(fast.energy.sum()) / 2 == pytest.approx(valid_fraction, rel=1e-6)


@settings(max_examples=20, deadline=None)
@given(size=sizes, k=st.integers(2, 4), seed=st.integers(0, 10_000))
def test_matches_an_independent_numpy_implementation(size, k, seed) -> None:
    rng = np.random.default_rng(seed)
    maps = [rng.integers(0, k, size) for _ in range(2)]
    s = LabelSpectrum(k, dtype=torch.float64)
    s.update(torch.from_numpy(np.stack(maps)))
    r, e = numpy_band_energy(maps, k)
    assert float(s.energy.sum()) == pytest.approx(e.sum(), rel=1e-9)
    for tau in (0.5, 0.9):
        assert s.cutoff(tau) == pytest.approx(numpy_cutoff(r, e, tau))


def test_maps_of_several_sizes_accumulate() -> None:
    s = LabelSpectrum(2)
    s.update(torch.zeros(1, 8, 8, dtype=torch.long))
    s.update(torch.ones(2, 5, 7, dtype=torch.long))
    assert s.maps == 3 and s.pixels == 64 + 70


@settings(max_examples=20, deadline=None)
@given(size=sizes)
def test_band_one_is_everything_and_radius_is_bounded(size) -> None:
    h, w = size
    assert bool(band_mask(h, w, 1.0).all())
    r = band_radius(h, w, onesided=False)
    assert float(r.max()) <= 1.0 + 1e-12 and float(r[0, 0]) == 0.0


def test_bad_thresholds_and_keep_are_refused() -> None:
    s = LabelSpectrum(2)
    with pytest.raises(DataError, match="no label maps"):
        s.cutoff(0.9)
    s.update(torch.zeros(1, 4, 4, dtype=torch.long))
    with pytest.raises(DataError, match="outside"):
        s.cutoff(1.5)
    for bad in (0.0, -0.1, 1.2):
        with pytest.raises(ConfigError, match=r"outside \(0, 1\]"):
            check_keep(bad)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), flush=st.integers(1, 5), split=st.integers(1, 4))
def test_batching_and_flushing_do_not_change_the_histogram(seed: int, flush: int, split: int) -> None:
    """Pending per-class power, chunked transforms and interleaved sizes give one answer."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(0, 6, (5, 12, 18), generator=g)
    a[a == 5] = 255
    b = torch.randint(0, 5, (3, 9, 7), generator=g)
    whole_a, whole_b = LabelSpectrum(5, dtype=torch.float64), LabelSpectrum(5, dtype=torch.float64)
    whole_a.update(a)
    whole_b.update(b)
    mixed = LabelSpectrum(5, dtype=torch.float64, flush_every=flush)
    for part_a, part_b in zip(a.split(split), b.split(split), strict=False):
        mixed.update(part_a)
        mixed.update(part_b)
    for rest in (a.split(split)[len(b.split(split)):]):
        mixed.update(rest)
    torch.testing.assert_close(mixed.energy, whole_a.merge(whole_b).energy, rtol=1e-12, atol=1e-15)
    assert mixed.maps == 8


def test_uint8_labels_and_long_labels_agree() -> None:
    g = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 4, (3, 10, 14), generator=g)
    labels[:, 0] = 255
    as_long, as_bytes = LabelSpectrum(4), LabelSpectrum(4)
    as_long.update(labels)
    as_bytes.update(labels.to(torch.uint8))
    assert torch.equal(as_long.energy, as_bytes.energy)
