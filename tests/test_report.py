"""segprune.report: the command line a report records."""

from __future__ import annotations

import shlex

from segprune.report import command_line, cpu_model, portable_path


def test_command_line_names_no_machine_and_reruns_from_any_checkout(tmp_path) -> None:
    """Paths inside the repository and beside it (../shared) become relative; others stay; args are quoted."""
    repo = tmp_path / "main"
    (repo / "benchmarks").mkdir(parents=True)
    line = command_line(repo / "benchmarks" / "headline.py",
                        ["--pareto", str(repo / "results" / "a b.json"), f"--camvid={tmp_path / 'shared' / 'camvid'}",
                         "--out", "/elsewhere/x.json", "--seeds", "0,1", "--data", f"camvid:{tmp_path / 'shared'}"],
                        root=repo)
    assert shlex.split(line) == ["python", "benchmarks/headline.py", "--pareto", "results/a b.json",
                                 "--camvid=../shared/camvid", "--out", "/elsewhere/x.json", "--seeds", "0,1",
                                 "--data", "camvid:../shared"]


def test_command_line_records_the_arguments_given_not_the_processs(tmp_path, monkeypatch) -> None:
    """A benchmark's main([]) called from a test records no arguments, not pytest's (``argv or sys.argv`` did)."""
    monkeypatch.setattr("sys.argv", ["pytest", "-k", "x"])
    assert command_line(tmp_path / "b.py", [], root=tmp_path) == "python b.py"
    assert command_line(tmp_path / "b.py", root=tmp_path) == "python b.py -k x"


def test_relative_paths_are_rewritten_for_the_root_when_run_from_elsewhere(tmp_path, monkeypatch) -> None:
    """Run from benchmarks/, ``cache/x`` means benchmarks/cache/x from the root; a seed list is no path."""
    repo = tmp_path / "main"
    (repo / "benchmarks" / "cache").mkdir(parents=True)
    (repo / "benchmarks" / "cache" / "x.safetensors").write_bytes(b"")
    monkeypatch.chdir(repo / "benchmarks")
    line = command_line("finetune_budget.py", ["--baseline", "cache/x.safetensors", "--out", "cache/new.json",
                                               "--seeds", "0,1", "--importances", "l1"], root=repo)
    assert line == ("python benchmarks/finetune_budget.py --baseline benchmarks/cache/x.safetensors "
                    "--out benchmarks/cache/new.json --seeds 0,1 --importances l1")


def test_portable_path_keeps_the_name_given_and_never_disguises_the_filesystem_root(tmp_path) -> None:
    """A link inside the repository is recorded under its own name; a root whose parent is / gets no ../ anchor."""
    repo = tmp_path / "main"
    (repo / "real").mkdir(parents=True)
    (repo / "link").symlink_to(tmp_path / "outside", target_is_directory=True)
    (tmp_path / "outside").mkdir()
    assert portable_path(repo / "link" / "h.json", repo) == "link/h.json"
    assert portable_path("/etc/hosts", "/tmp") == "/etc/hosts"
    assert portable_path("C:/data", repo) == "C:/data" and portable_path("synthetic:100", repo) == "synthetic:100"


def test_cpu_model_is_read_from_cpuinfo_and_falls_back(tmp_path, monkeypatch) -> None:
    """Reports name the CPU model: the same recipe trained on two CPU models differed by 2 mIoU."""
    import platform

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nflags\t: fpu\n")
    assert cpu_model(str(info)) == "AMD EPYC 7B13"
    monkeypatch.setattr(platform, "processor", lambda: "arm")
    assert cpu_model(str(tmp_path / "missing")) == "arm"
    monkeypatch.setattr(platform, "processor", lambda: "")
    info.write_text("processor\t: 0\nmodel name\t:\n")
    assert cpu_model(str(info)) is None
