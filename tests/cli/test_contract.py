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
