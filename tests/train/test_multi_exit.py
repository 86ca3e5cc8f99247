"""Self-regulation (RESEARCH 4.4): training-only exits, SR losses, warm-up gate, detached teachers."""

from __future__ import annotations

import copy

import pytest
import torch

from segprune.errors import ConfigError
from segprune.train import CrossEntropy, MultiExitWrapper, Objective, SRLoss
from segprune.train.multi_exit import presence_targets
from tests.helpers import tiny_model

K = 3


def _data(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, K, (2, 32, 48), generator=g)
    labels[:, :4] = 255
    return torch.randn(2, 3, 32, 48, generator=g), labels


def _wrapper(**kw) -> MultiExitWrapper:
    torch.manual_seed(0)
    return MultiExitWrapper(tiny_model(K), **{"width": 8, **kw})


def test_training_output_follows_the_contract() -> None:
    wrapper = _wrapper().train()
    x, _ = _data()
    out = wrapper(x)
    assert set(out) == {"logits", "exits", "presence"}
    assert out["logits"].shape == (2, K, 32, 48)
    assert [e.shape for e in out["exits"]] == [(2, K, 32, 48)] * 4
    assert [p.shape for p in out["presence"]] == [(2, K)] * 5
    assert all(((p > 0) & (p < 1)).all() for p in out["presence"])
    assert not wrapper.model.backbone._forward_hooks, "the capture hook must not outlive the forward"


def test_eval_is_exactly_the_base_model_and_computes_no_exit() -> None:
    wrapper = _wrapper()
    calls = []
    for head in wrapper.heads.values():
        head.register_forward_hook(lambda *_: calls.append(1))
    for head in wrapper.presence.values():
        head.register_forward_hook(lambda *_: calls.append(1))
    x, _ = _data()
    wrapper.eval()
    out = wrapper(x)
    assert isinstance(out, torch.Tensor) and calls == []
    assert torch.equal(out, wrapper.model(x))
    wrapper.train()(x)
    assert len(calls) == 4 + 5


def test_exit_parameters_are_the_new_ones_and_stay_out_of_the_model() -> None:
    wrapper = _wrapper(exits=("stem", "layer2"))
    exit_ids = {id(p) for p in wrapper.exit_parameters()}
    model_ids = {id(p) for p in wrapper.model.parameters()}
    assert exit_ids and not exit_ids & model_ids
    assert exit_ids | model_ids == {id(p) for p in wrapper.parameters()}
    assert wrapper.heads["stem"][0][0].out_channels == 8  # width is configurable
    assert set(wrapper.model.state_dict()) == set(tiny_model(K).state_dict())
    copy.deepcopy(wrapper.model)  # no hook or back-reference to the wrapper


@pytest.mark.parametrize("kwargs", [dict(exits=("layer9",)), dict(exits=()), dict(width=0)])
def test_bad_exit_options_are_config_errors(kwargs) -> None:
    with pytest.raises(ConfigError):
        _wrapper(**kwargs)


def test_zero_exit_and_sr_weights_reduce_to_the_base_cross_entropy() -> None:
    wrapper = _wrapper().train()
    x, labels = _data()
    zero = dict(lambda_seg=0.0, lambda_cls=0.0, lambda_srl=0.0, lambda_srf=0.0, warmup_iters=0)
    objective = Objective({"ce": 1.0, "sr": 1.0}, K, sr=zero)
    torch.manual_seed(1)
    got = objective(wrapper(x), labels)
    torch.manual_seed(1)  # the same ASPP dropout mask; train-mode BN uses the same batch statistics
    base = CrossEntropy()(wrapper.model(x), labels)
    assert got.item() == pytest.approx(base.item(), rel=1e-6)


def test_warmup_gate_switches_at_the_right_call() -> None:
    wrapper = _wrapper().train()
    x, labels = _data()
    out = wrapper(x)
    objective = Objective({"ce": 1.0, "sr": 1.0}, K, sr=dict(warmup_iters=2))
    seen = []
    for _ in range(4):
        objective(out, labels)
        seen.append("sr/srf" in objective.last_terms and "sr/srl" in objective.last_terms)
    assert seen == [False, False, True, True] and objective.step == 4
    assert SRLoss(total_iters=40).warmup_iters == 10  # warmup_fraction 0.25 of a known schedule
    assert SRLoss().warmup_iters == 10_000  # the demo's 10k iterations when the total is unknown
    state = objective.state_dict()
    fresh = Objective({"ce": 1.0, "sr": 1.0}, K, sr=dict(warmup_iters=2))
    fresh.load_state_dict(state)
    assert fresh.step == 4


@pytest.mark.parametrize("srl,srf", [("bce", "hard_ce"), ("kl", "soft_kl"), ("bce", "mse")])
def test_no_gradient_reaches_the_teachers(srl: str, srf: str) -> None:
    x = torch.randn(2, K, 32, 48)
    exits = [x.clone().requires_grad_(True) for _ in range(4)]
    presence = [torch.rand(2, K).clamp(0.05, 0.95).requires_grad_(True) for _ in range(5)]
    final = torch.randn(2, K, 32, 48, requires_grad=True)
    _, labels = _data()
    sr = SRLoss(lambda_seg=0.0, lambda_cls=0.0, srl=srl, srf=srf, temperature=2.0, warmup_iters=0)
    loss = sr({"logits": final, "exits": exits, "presence": presence}, labels)
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    assert exits[0].grad is None and presence[-1].grad is None, "teachers must be detached"
    assert all(e.grad is not None for e in exits[1:]) and final.grad is not None
    assert all(p.grad is not None for p in presence[:-1])


def test_sr_f_pseudo_labels_are_masked_where_the_ground_truth_is_ignore() -> None:
    _, labels = _data()
    student = torch.randn(2, K, 32, 48)
    teacher = torch.randn(2, K, 32, 48)
    moved = teacher.clone()
    moved[:, :, :4] = torch.randn(2, K, 4, 48) * 5
    results = {}
    for mask in (True, False):
        sr = SRLoss(mask_ignore=mask, warmup_iters=0)
        results[mask] = [sr._srf(student, t, labels).item() for t in (teacher, moved)]
    assert results[True][0] == pytest.approx(results[True][1])
    assert results[False][0] != pytest.approx(results[False][1])


def test_presence_targets_count_valid_pixels_only() -> None:
    labels = torch.tensor([[[0, 0], [255, 255]], [[2, 255], [2, 2]]])
    assert presence_targets(labels, K, 255).tolist() == [[1, 0, 0], [0, 0, 1]]


@pytest.mark.parametrize("kwargs", [dict(srl="mse"), dict(srf="l1"), dict(lambda_srf=-1.0),
                                    dict(temperature=0.0), dict(warmup_fraction=2.0)])
def test_bad_sr_options_are_config_errors(kwargs) -> None:
    with pytest.raises(ConfigError):
        SRLoss(**kwargs)
