"""Training never silently loses a run or trains on nonsense: NaN options, divergence, overwrites, torn saves."""

from __future__ import annotations

import shutil

import pytest

from segprune.errors import ConfigError
from segprune.train import TrainConfig, fit
from segprune.train.trainer import TrainingDiverged
from tests.helpers import run_cli, tiny_model, tiny_sets

DATA = "synthetic:n=6,size=32x48,classes=3,seed=1"
TRAIN = ["train", "--data", DATA, "--epochs", "1", "--batch-size", "3", "--crop-size", "32x48", "--aspp-channels",
         "8", "--decoder-channels", "8", "--no-progress"]


@pytest.mark.parametrize("field, value", [("lr", float("nan")), ("lr", float("inf")), ("weight_decay", float("nan")),
                                          ("momentum", float("-inf")), ("grad_clip", float("nan"))])
def test_non_finite_options_are_refused(field, value) -> None:
    with pytest.raises(ConfigError, match="is not a finite number"):
        TrainConfig(**{field: value}).validate()


def test_a_diverging_run_stops_with_a_clear_error_and_saves_nothing(tmp_path) -> None:
    train, val = tiny_sets(n_train=6, n_val=3)
    cfg = TrainConfig(epochs=1, batch_size=3, lr=1e30, optimizer="sgd", crop_size=(32, 48))
    with pytest.raises(TrainingDiverged, match=r"loss became (nan|inf) at epoch 1: the run diverged"):
        fit(tiny_model(), train, val, cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "last.safetensors").exists()


def test_an_existing_run_is_never_replaced_without_being_asked(tmp_path) -> None:
    run = tmp_path / "run"
    code, _, err = run_cli([*TRAIN, "--out", run])
    assert code == 0, err
    before = (run / "last.safetensors").read_bytes()
    code, _, err = run_cli([*TRAIN, "--out", run, "--seed", "5"])
    assert code == 2 and "already holds a run" in err and "--overwrite" in err and "--resume" in err
    assert (run / "last.safetensors").read_bytes() == before
    code, _, err = run_cli([*TRAIN, "--out", run, "--seed", "5", "--overwrite"])
    assert code == 0, err
    assert (run / "last.safetensors").read_bytes() != before
    (tmp_path / "file").write_text("x")
    code, _, err = run_cli([*TRAIN, "--out", tmp_path / "file"])
    assert code == 2 and "is a file" in err


def test_resume_refuses_weights_and_state_of_different_epochs(tmp_path) -> None:
    """A kill between the two renames of a save leaves epoch N+1 weights beside epoch N state."""
    run, old = tmp_path / "run", tmp_path / "old"
    code, _, err = run_cli([*TRAIN, "--epochs", "2", "--stop-after", "1", "--out", run])
    assert code == 0, err
    shutil.copytree(run, old)  # the state of epoch 1
    code, _, err = run_cli([*TRAIN, "--epochs", "2", "--out", run, "--resume"])
    assert code == 0, err
    shutil.copy(old / "last.state.safetensors", run / "last.state.safetensors")  # weights of 2, state of 1
    code, _, err = run_cli([*TRAIN, "--epochs", "3", "--out", run, "--resume"])
    assert code == 2 and "holds epoch 2 but last.state.safetensors epoch 1" in err
