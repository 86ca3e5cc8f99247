"""CE by band sums to cross-entropy; ceilings are exact at full resolution; block labels."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from segprune.data.blocks import block_labels
from segprune.spectral import (
    Ceilings,
    band_ce_share,
    ce_by_band,
    grid_labels,
    held_band,
    lowpass_labels,
    recommend_grid,
)

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


def test_the_grid_is_set_by_the_labels_and_the_keep_by_the_input_size() -> None:
    # The #14 case: CamVid labels (360x480) with f_c(0.95) = 0.195 need 71x94 samples across the
    # image at any input size; a model run at 180x240 has a 45x60 decoder grid, which cannot hold it.
    at_label = recommend_grid(0.195, (360, 480))
    at_half = recommend_grid(0.195, (360, 480), (180, 240))
    assert at_label["grid"] == at_half["grid"] == [71, 94]
    assert at_label["keep_freq"] == pytest.approx(71 / 90) and at_label["decoder_resolves_cutoff"]
    assert at_half["decoder_grid"] == [45, 60] and at_half["keep_freq"] == 1.0
    assert not at_half["decoder_resolves_cutoff"]
    assert at_half["input_size_needed"] == [288, 384]  # decoder 72x96 >= 71x94; multiples of 16
    assert recommend_grid(0.195, (360, 480), (288, 384))["decoder_resolves_cutoff"]
    # a smaller cut-off at half size needs twice the keep-freq it needs at full size
    assert recommend_grid(0.1, (360, 480), (180, 240))["keep_freq"] == pytest.approx(
        2 * recommend_grid(0.1, (360, 480))["keep_freq"])


def test_held_band_inverts_the_recommendation() -> None:
    assert held_band(1.0, (360, 480), (180, 240)) == pytest.approx(45 / 360)
    assert held_band(0.5, (360, 480), (360, 480)) == pytest.approx(45 / 360)
    for cutoff in (0.05, 0.1, 0.2):
        rec = recommend_grid(cutoff, (360, 480), (360, 480))
        assert held_band(rec["keep_freq"], (360, 480), (360, 480)) >= cutoff - 1e-9


def test_choose_band_says_when_the_decoder_cannot_hold_tau() -> None:
    from segprune.spectral import LabelSpectrum, choose_band

    g = torch.Generator().manual_seed(0)
    blocks = (torch.rand(2, 4, 4, generator=g) > 0.5).long()  # 16-pixel blocks: f_c(0.9) about 0.28
    spectrum = LabelSpectrum(2)
    spectrum.update(blocks.repeat_interleave(16, 1).repeat_interleave(16, 2))
    large = choose_band(spectrum, 0.9, (64, 64), (128, 128))  # decoder 32x32: more than the labels need
    assert large.resolves and large.held >= 0.9 and large.keep_freq < 1
    small = choose_band(spectrum, 0.9, (64, 64), (32, 32))  # decoder 8x8
    assert not small.resolves and small.keep_freq == 1.0 and small.held < 0.9
    need = small.input_size_needed
    assert choose_band(spectrum, 0.9, (64, 64), need).resolves and not choose_band(
        spectrum, 0.9, (64, 64), (need[0] - 16, need[1] - 16)).resolves
    assert "beyond what the decoder can hold" in small.note() and "32x32" in small.note()
    assert f"{small.held:.3f}" in small.note() and "{}x{}".format(*need) in small.note()


