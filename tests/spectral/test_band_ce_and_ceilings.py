"""CE by band sums to cross-entropy; ceilings are exact at full resolution; block labels."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from segprune.data.blocks import block_labels
from segprune.spectral import Ceilings, band_ce_share, ce_by_band, grid_labels, lowpass_labels, recommend_grid

sizes = st.tuples(st.integers(1, 33), st.integers(1, 33))


@settings(max_examples=40, deadline=None)
@given(size=sizes, k=st.integers(2, 6), b=st.integers(1, 3), seed=st.integers(0, 10_000))
def test_ce_by_band_sums_to_cross_entropy(size, k, b, seed) -> None:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, k, *size, generator=g) * 3
    target = torch.randint(0, k, (b, *size), generator=g)
    target[torch.rand(b, *size, generator=g) < 0.2] = 255
    hist, valid = ce_by_band(logits, target)
    if valid == 0:
        assert float(hist.abs().sum()) < 1e-9
        return
    expected = F.cross_entropy(logits.double(), target, ignore_index=255)
    assert float(hist.sum()) / valid == pytest.approx(float(expected), rel=1e-5)


def test_ce_share_reaches_one_at_nyquist() -> None:
    logits, target = torch.randn(1, 3, 16, 20), torch.randint(0, 3, (1, 16, 20))
    share = band_ce_share(ce_by_band(logits, target)[0])
    assert float(share[-1]) == pytest.approx(1.0)


@settings(max_examples=25, deadline=None)
@given(size=sizes, k=st.integers(2, 5), seed=st.integers(0, 10_000))
def test_ceilings_are_identity_at_full_resolution(size, k, seed) -> None:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, k, (2, *size), generator=g)
    assert torch.equal(lowpass_labels(labels, k, 1.0), labels)
    assert torch.equal(grid_labels(labels, k, size), labels)
    assert torch.equal(block_labels(labels, k, 1), labels)
    c = Ceilings(k, keeps=[1.0], grids=[size], blocks=[1])
    c.update(labels)
    res = c.results()
    assert res["lowpass"][0]["miou"] == res["grid"][0]["miou"] == res["block"][0]["miou"] == 100.0


def test_lowpass_of_a_smooth_map_survives_truncation() -> None:
    labels = torch.zeros(1, 32, 32, dtype=torch.long)
    labels[:, 8:24, 8:24] = 1
    assert (lowpass_labels(labels, 2, 0.5) == labels).float().mean() > 0.97
    assert (lowpass_labels(labels, 2, 0.05) == labels).float().mean() < 1.0


def test_recommended_grid_resolves_the_cutoff() -> None:
    rec = recommend_grid(0.1, (360, 480))
    assert rec["grid"] == [36, 48]
    assert rec["output_stride"] == 8  # OS8 gives 45x60 >= 36x48; OS16 (23x30) does not
    assert rec["keep_freq"] == pytest.approx(0.4)  # 36/90 and 48/120 of the OS4 decoder grid
    assert recommend_grid(1.0, (360, 480))["keep_freq"] == 1.0
