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
