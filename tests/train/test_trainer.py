"""The training loop: checkpoints, exact resume, and metric reduction across processes."""

from __future__ import annotations

import json
import socket

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from segprune.data import make_loader
from segprune.errors import CheckpointError
from segprune.models import load_checkpoint
from segprune.train import TrainConfig, evaluate, fit
from tests.helpers import tiny_model, tiny_sets

CFG = dict(epochs=2, batch_size=4, optimizer="adamw", lr=3e-3, crop_size=(32, 48), seed=0, amp=False)


def _train(tmp, **kw):
    torch.manual_seed(0)
    train, val = tiny_sets()
    return fit(tiny_model(), train, val, TrainConfig(**CFG), tmp, progress=False, **kw)


def test_fit_writes_checkpoints_that_reproduce_the_reported_metrics(tmp_path) -> None:
    summary = _train(tmp_path)
    assert [h["epoch"] for h in summary["history"]] == [1, 2]
    for name in ("best.safetensors", "last.safetensors", "last.state.safetensors", "history.json"):
        assert (tmp_path / name).is_file(), name
    model, _ = load_checkpoint(tmp_path / "last.safetensors")
    _, val = tiny_sets()
    metrics, _ = evaluate(model, make_loader(val, 2, shuffle=False), val.num_classes, progress=False)
    assert metrics.miou == pytest.approx(summary["final"]["miou"], abs=1e-9)
    assert json.loads((tmp_path / "history.json").read_text()) == summary["history"]


def test_resume_continues_exactly_where_it_stopped(tmp_path) -> None:
    _train(tmp_path / "straight")
    _train(tmp_path / "split", stop_after=1)
    resumed = _train(tmp_path / "split", resume=True)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2]
    a = load_file(str(tmp_path / "straight" / "last.safetensors"))
    b = load_file(str(tmp_path / "split" / "last.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from an uninterrupted run"


def test_resume_without_a_run_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="resume needs the run folder|no training state"):
        _train(tmp_path / "empty", resume=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world),
                      RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    torch.manual_seed(0)
    train, val = tiny_sets()
    cfg = TrainConfig(**{**CFG, "epochs": 1, "batch_size": 2})
    summary = fit(tiny_model(), train, val, cfg, out, device="cpu", progress=False)
    with open(f"{out}/rank{rank}.json", "w") as f:
        json.dump(summary["final"], f)
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_processes_reduce_metrics_like_one(tmp_path) -> None:
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    rank0 = json.loads((tmp_path / "rank0.json").read_text())
    rank1 = json.loads((tmp_path / "rank1.json").read_text())
    assert rank0 == rank1, "ranks disagree after the all-reduce"
    # One process scoring the whole (odd-sized) val split with the trained weights must agree:
    # no sample counted twice, none left out.
    model, _ = load_checkpoint(tmp_path / "last.safetensors")
    _, val = tiny_sets()
    metrics, _ = evaluate(model, make_loader(val, 3, shuffle=False), val.num_classes, progress=False)
    assert metrics.pixels == rank0["pixels"] == len(val) * 32 * 48 - _ignored(val)
    assert metrics.miou == pytest.approx(rank0["miou"], abs=1e-9)


def _ignored(dataset) -> int:
    return sum(int((dataset.read_label(i) == dataset.ignore_index).sum()) for i in range(len(dataset)))
