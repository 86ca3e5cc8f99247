"""Atomic writes: all or nothing under the final name, ordinary permissions."""

from __future__ import annotations

import os

import pytest

from segprune.errors import SegpruneError
from segprune.io import atomic_path, atomic_write, load_json, save_json


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path) -> None:
    target = tmp_path / "report.json"
    save_json(target, {"v": 1})
    with pytest.raises(RuntimeError), atomic_write(target, "w") as handle:
        handle.write('{"v": 2')
        raise RuntimeError("interrupted")
    assert load_json(target) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_outputs_get_umask_permissions_not_mkstemp_ones(tmp_path) -> None:
    mask = os.umask(0o022)
    try:
        save_json(tmp_path / "a.json", {})
        with atomic_path(tmp_path / "b.bin") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(mask)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.bin").stat().st_mode & 0o777 == 0o644


def test_malformed_json_is_a_user_error(tmp_path) -> None:
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(SegpruneError, match="not valid JSON"):
        load_json(tmp_path / "bad.json")


def test_reports_are_strict_json_with_null_for_missing_values(tmp_path) -> None:
    import json
    import math

    import torch

    from segprune.io import json_text, save_json
    from segprune.metrics import ConfusionMatrix

    cm = ConfusionMatrix(3)
    cm.update(torch.tensor([[0, 1]]), torch.tensor([[0, 1]]))  # class 2 absent from the split
    report = {"metrics": cm.compute(["a", "b", "c"]).to_dict(), "ratio": float("inf"), "nested": [float("nan"), 1.0]}
    save_json(tmp_path / "r.json", report)

    def refuse(token):
        raise AssertionError(f"bare {token} in a report")

    for text in ((tmp_path / "r.json").read_text(), json_text(report)):
        data = json.loads(text, parse_constant=refuse)
        assert data["metrics"]["per_class_iou"]["c"] is None and data["ratio"] is None
        assert data["nested"] == [None, 1.0] and math.isfinite(data["metrics"]["miou"])


def _dead_pid() -> int:
    """The pid of a process that has exited (what a SIGKILLed save leaves in its temporary names)."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_later_save_removes_temporaries_a_killed_save_left(tmp_path) -> None:
    from segprune import io

    dead, old = _dead_pid(), io._STARTED - 60
    stale = [tmp_path / f".last.safetensors.{dead}-abcd1234.safetensors", tmp_path / f".h.json.{dead}-zz_y9876.tmp"]
    running = tmp_path / f".last.safetensors.{os.getpid()}-abcd1234.safetensors"  # a save in progress
    user = tmp_path / ".last.safetensors.backup"  # not segprune's pattern
    for path in (*stale, running, user):
        path.write_bytes(b"x" * 10)
        os.utime(path, (old, old))
    io._SWEPT.discard(tmp_path.resolve())
    save_json(tmp_path / "history.json", {})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([running.name, user.name, "history.json"])


def test_staged_dir_replaces_the_folder_whole_or_not_at_all(tmp_path) -> None:
    from segprune.io import staged_dir

    out = tmp_path / "exp"
    with staged_dir(out) as stage:
        (stage / "a.onnx").write_text("1")
        (stage / "b.onnx").write_text("1")
    with pytest.raises(RuntimeError), staged_dir(out) as stage:
        (stage / "a.onnx").write_text("2")
        raise RuntimeError("killed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]  # no temporary folder left
    assert sorted(p.name for p in out.iterdir()) == ["a.onnx", "b.onnx"] and (out / "a.onnx").read_text() == "1"
    with staged_dir(out) as stage:
        (stage / "a.onnx").write_text("3")
    assert [p.name for p in out.iterdir()] == ["a.onnx"] and (out / "a.onnx").read_text() == "3"
    with pytest.raises(RuntimeError), staged_dir(tmp_path / "new" / "deeper" / "exp"):
        raise RuntimeError("failed")
    assert not (tmp_path / "new").exists()  # parents it created are removed again
