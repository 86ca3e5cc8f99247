"""Recall loss (RESEARCH 2.4): batch-recall weights over valid pixels, official compatibility mode."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from segprune.errors import ConfigError
from segprune.train import CrossEntropy, RecallCrossEntropy

K = 4


def _batch(seed: int = 0, ignore: int | None = 255, shape=(2, 8, 12)):
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, K, shape, generator=g)
    if ignore is not None:
        target[:, :, : shape[2] // 3] = ignore
    logits = torch.randn(shape[0], K, *shape[1:], generator=g)
    return logits, target


def _official(logits: torch.Tensor, target: torch.Tensor, n_classes: int) -> torch.Tensor:
    """ptsemseg/loss/recall_loss.py of PotatoTian/recall-semseg, on CPU, for a batch without ignore."""
    pred = logits.argmax(1)
    idex = (pred != target).view(-1)
    gt_counter = torch.ones((n_classes,))
    gt_idx, gt_count = torch.unique(target, return_counts=True)
    gt_counter[gt_idx] = gt_count.float()
    fn_counter = torch.ones((n_classes,))
    fn_idx, fn_count = torch.unique(target.view(-1)[idex], return_counts=True)
    fn_counter[fn_idx] = fn_count.float()
    weight = fn_counter / gt_counter
    return (weight[target] * F.cross_entropy(logits, target, reduction="none")).mean()


def test_perfect_predictions_give_weights_one_over_n_plus_one() -> None:
    _, target = _batch()
    logits = 8.0 * F.one_hot(target.clamp(max=K - 1), K).permute(0, 3, 1, 2).float()
    loss_fn = RecallCrossEntropy(K)
    loss = loss_fn(logits, target)
    valid = target != 255
    n = torch.bincount(target[valid], minlength=K).float()
    assert torch.allclose(loss_fn.last_weights, 1.0 / (n + 1.0))
    ce = F.cross_entropy(logits, target, ignore_index=255, reduction="none")
    expected = (ce * (1.0 / (n + 1.0))[target.clamp(max=K - 1)] * valid).sum() / valid.sum()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert loss.item() < CrossEntropy()(logits, target).item() / n.min().item()


@pytest.mark.parametrize("ignore", [255, K])  # K: an ignore label right after the last class (CamVid: 11 of 11)
def test_all_wrong_predictions_give_plain_cross_entropy(ignore: int) -> None:
    _, target = _batch(ignore=ignore)
    wrong = (target + 1) % K
    logits = 5.0 * F.one_hot(wrong, K).permute(0, 3, 1, 2).float() + 0.1 * torch.randn(2, K, 8, 12)
    got = RecallCrossEntropy(K, ignore_index=ignore)(logits, target)
    assert got.item() == pytest.approx(CrossEntropy(ignore_index=ignore)(logits, target).item(), rel=1e-6)


def test_official_mode_matches_the_official_code_without_ignore() -> None:
    for seed in range(3):
        logits, target = _batch(seed, ignore=None)
        target[target == 2] = 1  # a class absent from the batch keeps its counter at 1
        got = RecallCrossEntropy(K, compat="official")(logits, target)
        assert got.item() == pytest.approx(_official(logits, target, K).item(), rel=1e-6)


def test_default_mode_matches_the_formula_pixel_by_pixel() -> None:
    logits, target = _batch(1)
    got = RecallCrossEntropy(K, eps=0.5)(logits, target)
    valid = target != 255
    t, p = target[valid], logits.argmax(1)[valid]
    w = torch.tensor([(((t == c) & (p != c)).sum() + 0.5) / ((t == c).sum() + 0.5) for c in range(K)])
    ce = F.cross_entropy(logits.permute(0, 2, 3, 1)[valid], t, reduction="none")
    assert got.item() == pytest.approx((w[t] * ce).mean().item(), rel=1e-5)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), ema=st.sampled_from([None, 0.9]),
       compat=st.sampled_from(["segprune", "official"]))
def test_ignore_pixels_never_change_the_loss(seed: int, ema: float | None, compat: str) -> None:
    if compat == "official" and ema is not None:
        return
    logits, target = _batch(seed)
    ignore = target == 255
    noise = torch.randn(logits.shape, generator=torch.Generator().manual_seed(seed + 1)) * 10
    changed = torch.where(ignore[:, None], noise, logits)
    a = RecallCrossEntropy(K, ema=ema, compat=compat)(logits, target)
    b = RecallCrossEntropy(K, ema=ema, compat=compat)(changed, target)
    assert a.item() == pytest.approx(b.item(), rel=1e-6, abs=1e-7)
    if compat == "segprune":  # averaged over valid pixels: the valid crop alone gives the same loss
        crop = RecallCrossEntropy(K, ema=ema)(logits[..., 4:], target[..., 4:])
        assert a.item() == pytest.approx(crop.item(), rel=1e-6)


def test_weights_carry_no_gradient_and_all_ignore_is_zero() -> None:
    logits, target = _batch()
    logits.requires_grad_(True)
    loss_fn = RecallCrossEntropy(K)
    loss_fn(logits, target).backward()
    assert not loss_fn.last_weights.requires_grad
    assert logits.grad[:, :, :, :4].abs().sum() == 0  # ignore pixels get no gradient
    empty = loss_fn(logits, torch.full_like(target, 255))
    assert empty.item() == 0.0 and empty.requires_grad


def test_coarse_logits_are_upsampled_to_the_labels() -> None:
    logits, target = _batch()
    small = logits[..., ::2, ::2]
    up = F.interpolate(small, size=target.shape[-2:], mode="bilinear", align_corners=False)
    assert RecallCrossEntropy(K)(small, target).item() == pytest.approx(RecallCrossEntropy(K)(up, target).item())


def test_ema_keeps_the_last_recall_of_absent_classes() -> None:
    loss_fn = RecallCrossEntropy(K, ema=0.5)
    logits, target = _batch(2, ignore=None)
    loss_fn(logits, target)
    first = loss_fn.last_weights.clone()
    only0 = torch.zeros_like(target)
    loss_fn(logits, only0)
    assert torch.allclose(loss_fn.last_weights[1:], first[1:])
    assert not torch.allclose(loss_fn.last_weights[0], first[0])
    assert set(loss_fn.state_dict()) == {"running_fn", "running_n"}


@pytest.mark.parametrize("kwargs", [dict(eps=-1.0), dict(ema=1.0), dict(compat="paper"),
                                    dict(compat="official", ema=0.9), dict(num_classes=0)])
def test_bad_options_are_config_errors(kwargs) -> None:
    with pytest.raises(ConfigError):
        RecallCrossEntropy(**{"num_classes": K, **kwargs})
