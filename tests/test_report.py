"""segprune.report: the command line a report records."""

from __future__ import annotations

import shlex

from segprune.report import command_line


def test_command_line_names_no_machine_and_reruns_from_any_checkout(tmp_path) -> None:
    """Paths inside the repository and beside it (../shared) become relative; others stay; args are quoted."""
    repo = tmp_path / "main"
    (repo / "benchmarks").mkdir(parents=True)
    line = command_line(repo / "benchmarks" / "headline.py",
                        ["--pareto", str(repo / "results" / "a b.json"), f"--camvid={tmp_path / 'shared' / 'camvid'}",
                         "--out", "/elsewhere/x.json", "--seeds", "0,1"], root=repo)
    assert shlex.split(line) == ["python", "benchmarks/headline.py", "--pareto", "results/a b.json",
                                 "--camvid=../shared/camvid", "--out", "/elsewhere/x.json", "--seeds", "0,1"]


def test_command_line_records_the_arguments_given_not_the_processs(tmp_path, monkeypatch) -> None:
    """A benchmark's main([]) called from a test records no arguments, not pytest's (``argv or sys.argv`` did)."""
    monkeypatch.setattr("sys.argv", ["pytest", "-k", "x"])
    assert command_line(tmp_path / "b.py", [], root=tmp_path) == "python b.py"
    assert command_line(tmp_path / "b.py", root=tmp_path) == "python b.py -k x"
