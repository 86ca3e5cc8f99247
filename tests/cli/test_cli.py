"""The command line: help for every option, one-line user errors with exit 2, and real runs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from segprune.cli.main import SUBCOMMANDS, build_parser, main


def _run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_every_option_of_every_subcommand_has_help() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == set(SUBCOMMANDS)
    stack = list(sub.choices.items())
    while stack:
        name, p = stack.pop()
        for action in p._actions:
            if action.dest == "help":
                continue
            if hasattr(action, "choices") and isinstance(action.choices, dict):
                stack += [(f"{name} {k}", v) for k, v in action.choices.items()]
                continue
            assert action.help and len(action.help) > 10, f"`segprune {name}` option {action.dest} lacks help"


def test_help_runs_as_a_module_without_errors() -> None:
    out = subprocess.run([sys.executable, "-m", "segprune", "--help"], capture_output=True, text=True, check=True)
    assert "train" in out.stdout and "eval" in out.stdout


def test_missing_checkpoint_is_one_line_and_exit_2(tmp_path, capsys) -> None:
    code, out, err = _run(["eval", str(tmp_path / "nope.safetensors"), "--data", "synthetic:n=2,size=32x48"], capsys)
    assert code == 2
    assert err.count("\n") == 1 and "nope.safetensors" in err and "Traceback" not in err


def test_unknown_dataset_kind_is_one_line_and_exit_2(capsys) -> None:
    code, _, err = _run(["data", "check", "--data", "kitti:/nowhere"], capsys)
    assert code == 2 and err.count("\n") == 1 and "camvid" in err


def test_synth_then_check_round_trip(tmp_path, capsys) -> None:
    code, out, _ = _run(["data", "synth", "--out", str(tmp_path), "--train", "3", "--val", "2",
                         "--size", "24x40", "--classes", "4"], capsys)
    assert code == 0 and f"folder:{tmp_path}" in out
    code, out, _ = _run(["data", "check", "--data", f"folder:{tmp_path}", "--split", "val", "--json"], capsys)
    report = json.loads(out)
    assert code == 0 and report["images"] == 2 and report["schema"] == "segprune.data_check/1"
    assert sum(report["pixels"].values()) == 2 * 24 * 40


def test_train_then_eval_then_info(tmp_path, capsys) -> None:
    data = "synthetic:n=6,size=32x48,classes=3,seed=1"
    run = tmp_path / "run"
    code, out, _ = _run(["train", "--data", data, "--epochs", "1", "--batch-size", "3", "--crop-size", "32x48",
                         "--aspp-channels", "8", "--decoder-channels", "8", "--out", str(run),
                         "--no-progress", "--json"], capsys)
    assert code == 0
    trained = json.loads(out)
    assert trained["best"]["epoch"] == 1 and (run / "best.safetensors").is_file()
    code, out, _ = _run(["eval", str(run / "best.safetensors"), "--data", data, "--no-progress",
                         "--report", str(tmp_path / "eval.json")], capsys)
    assert code == 0 and "mean" in out
    evaluated = json.loads((tmp_path / "eval.json").read_text())
    assert evaluated["metrics"]["miou"] == pytest.approx(trained["final"]["miou"], abs=1e-9)
    code, out, _ = _run(["info", str(run / "best.safetensors")], capsys)
    assert code == 0 and "deeplabv3plus" in out and "parameters" in out


def test_eval_with_a_checkpoint_for_other_classes_is_refused(tmp_path, capsys) -> None:
    from segprune.models import save_checkpoint
    from tests.helpers import tiny_model

    save_checkpoint(tmp_path / "k5.safetensors", tiny_model(num_classes=5))
    code, _, err = _run(["eval", str(tmp_path / "k5.safetensors"), "--data", "synthetic:n=2,size=32x48,classes=3"],
                        capsys)
    assert code == 2 and "5" in err and "3" in err and err.count("\n") == 1


@pytest.mark.slow
def test_demo_runs_end_to_end_and_quotes_figures_of_one_run(tmp_path, capsys) -> None:
    code, out, err = _run(["demo", "--data", "synthetic:n=24,size=64x96,classes=4,seed=1", "--width", "16",
                           "--epochs", "1", "--crop-size", "64x96", "--finetune-epochs", "1", "--bench-runs", "2",
                           "--target-macs", "0.8", "--out", str(tmp_path), "--device", "cpu", "--no-progress",
                           "--report", str(tmp_path / "report.json")], capsys)
    assert code == 0, err
    report = json.loads((tmp_path / "report.json").read_text())
    analysis = report["analysis"]
    cut = {c["tau"]: c for c in analysis["labels"]["cutoffs"]}
    assert analysis["energy"] == 0.95 and analysis["keep_freq"] == pytest.approx(cut[0.95]["keep_freq"])
    assert report["compression"]["keep_freq"] == pytest.approx(analysis["keep_freq"])
    assert report["compression"]["macs_fraction"] <= 0.8
    assert [s["stage"] for s in report["compression"]["stages"]] == ["original", "compressed", "fine-tuned"]
    # the quoted speed-up and mIoU difference are those of the one interleaved bench run in the report
    results = {r["label"]: r for r in report["bench"]["results"]}
    base, small = results["original fp32"], results["compressed fp32"]
    summary = report["summary"]
    assert summary["speedup_fp32"] == pytest.approx(base["latency"]["p50_ms"] / small["latency"]["p50_ms"])
    assert summary["delta_miou"] == pytest.approx(small["accuracy"]["miou"] - base["accuracy"]["miou"])
    assert ("int8:" in summary["int8_note"]) == summary["int8_faster"]
    assert (tmp_path / "demo.json").is_file() and (tmp_path / "demo.png").is_file()
    # the table on stdout quotes the same run, and the band the analysis chose, with the energy it holds
    band = analysis["band"]
    assert band["keep_freq"] == pytest.approx(analysis["keep_freq"]) and band["label_size"] == [64, 96]
    assert f"{summary['speedup_fp32']:.2f}x faster" in out and f"holds {band['held']:.3f}" in out
