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
