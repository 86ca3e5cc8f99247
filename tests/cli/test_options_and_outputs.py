"""Bad options and unusable output paths fail before any work: one line, exit 2 (issue #17 items 6, 8)."""

from __future__ import annotations

import errno

import pytest

from tests.helpers import run_cli

MODEL = "missing.safetensors"  # never opened: every refusal below comes first


def _refused(argv, says: str) -> None:
    code, _, err = run_cli(argv)
    assert code == 2, err
    assert says in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("argv, says", [
    (["bench", MODEL, "--runs", "0"], "--runs: 0 is not allowed: it must be at least 1"),
    (["bench", MODEL, "--rounds", "0"], "--rounds: 0 is not allowed"),
    (["bench", MODEL, "--batch-size", "0"], "--batch-size: 0 is not allowed"),
    (["bench", MODEL, "--warmup", "-1"], "--warmup: -1 is not allowed: it must be 0 or more"),
    (["bench", MODEL, "--threads", "-1"], "--threads: -1 is not allowed"),
    (["bench", MODEL, "--max-images", "-2"], "--max-images: -2 is not allowed"),
    (["bench", MODEL, "--precision", ""], "--precision: invalid choice"),
    (["eval", MODEL, "--data", "synthetic", "--batch-size", "0"], "--batch-size: 0 is not allowed"),
    (["eval", MODEL, "--data", "synthetic", "--workers", "-1"], "--workers: -1 is not allowed"),
    (["eval", MODEL, "--data", "synthetic", "--threads", "-1"], "--threads: -1 is not allowed"),
    (["eval", MODEL, "--data", "synthetic", "--device", "foo"], "'foo' is not a device: use cpu, cuda"),
    (["export", MODEL, "--calib-images", "0"], "--calib-images: 0 is not allowed"),
    (["export", MODEL, "--calib", "-5"], "--calib: -5 is not allowed"),
    (["prune", MODEL, "--data", "synthetic", "--calib-images", "0"], "--calib-images: 0 is not allowed"),
    (["prune", MODEL, "--data", "synthetic", "--prune-steps", "0"], "--prune-steps: 0 is not allowed"),
    (["train", "--data", "synthetic", "--epochs", "0"], "--epochs: 0 is not allowed"),
])
def test_impossible_counts_and_devices_are_refused_when_parsed(argv, says) -> None:
    _refused(argv, says)


def test_export_with_no_precision_is_refused(tmp_path) -> None:
    from segprune.errors import ConfigError
    from segprune.export import ExportPlan

    with pytest.raises(ConfigError, match="names no precision"):
        ExportPlan(precisions=()).validate()


def _commands_with_out(out) -> list[list[str]]:
    return [["train", "--data", "synthetic", "--out", out], ["prune", MODEL, "--data", "synthetic", "--out", out],
            ["analyze", "--data", "synthetic", "--out", out], ["export", MODEL, "--out", out],
            ["erf", MODEL, "--data", "synthetic", "--out", out], ["data", "synth", "--out", out]]


def test_out_that_is_a_file_or_under_proc_is_refused_before_work(tmp_path) -> None:
    file = tmp_path / "taken"
    file.write_text("x")
    for argv in _commands_with_out(file):
        _refused(argv, f"--out {file} is a file")
    for argv in _commands_with_out("/proc/segprune-out"):
        _refused(argv, "--out /proc/segprune-out cannot be written")
    assert not list(tmp_path.glob(".segprune-write-test-*"))


def test_read_only_out_is_refused_before_work(tmp_path, monkeypatch) -> None:
    import tempfile

    def read_only(*_args, **_kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)  # root ignores permission bits: fake the filesystem
    for argv in _commands_with_out(tmp_path / "run"):
        _refused(argv, "cannot be written (Read-only file system)")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", [["eval", MODEL, "--data", "synthetic"], ["bench", MODEL],
                                     ["train", "--data", "synthetic"], ["data", "check", "--data", "synthetic"]])
def test_report_pointing_at_a_folder_or_proc_is_refused_before_work(tmp_path, command) -> None:
    _refused([*command, "--report", tmp_path], f"--report {tmp_path} is a folder: pass a file path")
    _refused([*command, "--report", "/proc/r.json"], "cannot be written")


def test_record_into_a_missing_folder_says_to_create_it(tmp_path) -> None:
    _refused(["bench", MODEL, "--record", tmp_path / "cards" / "m"], "create the model card folder first (mkdir -p")


def test_a_disk_too_full_for_the_outputs_is_refused_before_work(tmp_path, monkeypatch) -> None:
    import collections
    import shutil

    from segprune.models import save_checkpoint
    from tests.helpers import tiny_model

    save_checkpoint(tmp_path / "m.safetensors", tiny_model(num_classes=3))
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _path: usage(10**9, 10**9 - 1000, 1000))  # 1000 bytes free
    data = "synthetic:n=4,n_val=2,size=32x48,classes=3"
    for argv in (["train", "--data", data, "--arch", "deeplabv3plus_resnet18", "--out", tmp_path / "t"],
                 ["prune", tmp_path / "m.safetensors", "--data", data, "--keep-freq", "0.5", "--out", tmp_path / "p"],
                 ["export", tmp_path / "m.safetensors", "--input-size", "32x48", "--out", tmp_path / "e"]):
        _refused(argv, "MiB free on that disk")
        assert not argv[-1].exists()  # refused before anything was written


@pytest.mark.parametrize("width, says", [("0", "--aspp-channels: 0 is not allowed"),
                                         ("1000000", "over segprune's limit"), ("1000000000", "over segprune's limit")])
def test_a_fresh_model_too_wide_to_build_is_refused_before_allocating(tmp_path, width, says) -> None:
    code, _, err = run_cli(["train", "--data", "synthetic:n=2,size=32x48", "--aspp-channels", width,
                            "--out", tmp_path / "run"])
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert says in err or "too large to build" in err, err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("options, says", [
    (["--channel-ratio", "0.5", "--prune-steps", "2", "--finetune-epochs", "2"], "--prune-steps 2 needs --target-macs"),
    (["--target-macs", "0.5", "--prune-steps", "3", "--finetune-epochs", "2"],
     "at least one fine-tuning epoch per step"),
])
def test_a_gradual_plan_that_cannot_run_is_refused_before_the_model_loads(tmp_path, options, says) -> None:
    """The model path does not exist: the plan is refused first, so no data or model is read for it."""
    _refused(["prune", tmp_path / "absent.safetensors", "--data", "synthetic", *options, "--out", tmp_path / "p"], says)
    assert not (tmp_path / "p").exists()
