"""Learning-rate schedule and the pickle-free training state."""

from __future__ import annotations

import pytest
import torch

from segprune.errors import CheckpointError, ConfigError
from segprune.train import TrainConfig, build_optimizer, load_train_state, poly_warmup, save_train_state


def test_poly_warmup_ramps_then_decays_to_zero() -> None:
    f = poly_warmup(total_iters=100, warmup_iters=10, power=0.9)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) > f(50) > f(99) > 0
    assert f(99) == pytest.approx((1 - 99 / 100) ** 0.9)


def test_optimizer_state_round_trips_without_pickle(tmp_path) -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    for name in ("sgd", "adamw"):
        opt = build_optimizer(model, TrainConfig(optimizer=name))
        model(torch.randn(2, 3, 8, 8)).sum().backward()
        opt.step()
        save_train_state(tmp_path / "s.safetensors", {"optimizer": opt.state_dict(), "epoch": 3, "best": {"miou": 1.5}})
        state = load_train_state(tmp_path / "s.safetensors")
        fresh = build_optimizer(model, TrainConfig(optimizer=name))
        fresh.load_state_dict(state["optimizer"])
        assert state["epoch"] == 3 and state["best"] == {"miou": 1.5}
        for a, b in zip(opt.state.values(), fresh.state.values(), strict=True):
            for k in a:
                assert torch.equal(torch.as_tensor(a[k]), torch.as_tensor(b[k]))


def test_state_file_that_is_not_ours_is_refused(tmp_path) -> None:
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"\x80\x04 this is a pickle")
    with pytest.raises(CheckpointError, match="not a safetensors training state"):
        load_train_state(bad)


@pytest.mark.parametrize("field,value", [("optimizer", "rmsprop"), ("epochs", 0), ("lr", -1.0),
                                         ("crop_size", (4, 4)), ("scale_range", (2.0, 1.0))])
def test_bad_training_options_are_refused(field, value) -> None:
    with pytest.raises(ConfigError, match=field.split("_")[0]):
        TrainConfig(**{field: value}).validate()
