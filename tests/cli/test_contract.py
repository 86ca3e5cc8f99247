"""The CLI contract scripts rely on: --help without torch, and one exit code per class of outcome."""

from __future__ import annotations

import subprocess
import sys

import pytest

from segprune.cli.main import SUBCOMMANDS, main

# torch set to None in sys.modules: any `import torch` raises ImportError, so a help that imports it fails
_NO_TORCH = ("import sys; sys.modules['torch'] = None; from segprune.cli.main import main\n"
             "try:\n    main({argv!r})\nexcept SystemExit as e:\n    sys.exit(e.code)\n")


@pytest.mark.parametrize("argv", [["--help"], *[[name, "--help"] for name in SUBCOMMANDS]])
def test_help_never_imports_torch(argv) -> None:
    done = subprocess.run([sys.executable, "-c", _NO_TORCH.format(argv=argv)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-1500:]
    assert "usage: segprune" in done.stdout


def test_exit_codes_by_class_of_failure(tmp_path, monkeypatch, capsys) -> None:
    import segprune.cli.info_cmd as info_cmd

    assert main(["eval", str(tmp_path / "missing.safetensors"), "--data", "synthetic:n=2"]) == 2  # user error
    capsys.readouterr()

    def crash(args):
        raise RuntimeError("planted bug")

    monkeypatch.setattr(info_cmd, "run", crash)
    assert main(["info"]) == 3
    err = capsys.readouterr().err
    assert "internal error (RuntimeError: planted bug); this is a bug in segprune" in err and "Traceback" in err


@pytest.mark.parametrize("argv, dest, value, canonical", [
    (["train", "--data", "synthetic", "--model", "dan_resnet18"], "arch", "dan_resnet18", "--arch"),
    (["demo", "--model", "dan_resnet18"], "arch", "dan_resnet18", "--arch"),
    (["export", "m.safetensors", "--calib", "7"], "calib_images", 7, "--calib-images"),
    (["erf", "m.safetensors", "--data", "synthetic", "--no-plot"], "no_plots", True, "--no-plots"),
])
def test_old_spellings_still_work_for_a_release_and_say_the_new_one(argv, dest, value, canonical, capsys) -> None:
    from segprune.cli.main import build_parser

    args = build_parser().parse_args(argv)
    assert getattr(args, dest) == value
    assert f"is deprecated and goes in the next release: use {canonical}" in capsys.readouterr().err
    old = {"--model", "--calib", "--no-plot"}
    args = build_parser().parse_args([canonical if a in old else a for a in argv])
    assert getattr(args, dest) == value and "deprecated" not in capsys.readouterr().err


def test_help_shows_no_empty_defaults() -> None:
    from segprune.cli.main import build_parser

    parser = build_parser()
    for name in SUBCOMMANDS:
        text = parser._subparsers._group_actions[0].choices[name].format_help()
        assert "(default: None)" not in text and "(default: False)" not in text, name


@pytest.mark.parametrize("where", ["start-up", "command"])
def test_ctrl_c_anywhere_is_one_line_and_exit_130(where, monkeypatch, capsys) -> None:
    import segprune.cli.main as cli
    from segprune.cli import info_cmd

    def interrupt(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupt) if where == "start-up" else monkeypatch.setattr(
        info_cmd, "run", interrupt)
    assert main(["info"]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "interrupted" in err and "Traceback" not in err
