"""``segprune compress``: a tiny SMP U-Net through the one command, the folder it writes, resuming, bad input."""

from __future__ import annotations

import json
import re

import pytest
import torch

smp = pytest.importorskip("segmentation_models_pytorch",
                          reason="SMP not installed: pip install 'segprune[smp]' (make test installs it)")

from tests.helpers import run_cli  # noqa: E402

DATA = "synthetic:n=6,n_val=3,size=64x96,classes=3"
QUICK = ["--data", DATA, "--target-macs", "0.6", "--scope", "all", "--finetune-epochs", "1", "--batch-size", "3",
         "--calib-images", "4", "--parity-images", "2", "--runs", "3", "--warmup", "1", "--rounds", "1",
         "--no-progress"]


@pytest.fixture(scope="module")
def unet(tmp_path_factory):
    torch.manual_seed(0)
    model = smp.Unet(encoder_name="resnet18", encoder_weights=None, classes=3, encoder_depth=3,
                     decoder_channels=(32, 16, 8))
    folder = tmp_path_factory.mktemp("models") / "unet"
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def deployed(unet, tmp_path_factory):
    out = tmp_path_factory.mktemp("deploy") / "unet-small"
    code, stdout, stderr = run_cli(["compress", unet, *QUICK, "--out", out, "--json"])
    assert code == 0, stderr
    return out, json.loads(stdout)


def _rows(card: str, header: str) -> dict[str, list[str]]:
    """The Markdown table under ``header`` in the card: first cell -> cells."""
    section = card.split(header, 1)[1].split("\n## ", 1)[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines() if line.startswith("| ")]
    return {r[0]: r[1:] for r in rows[1:]}


def test_the_folder_holds_every_output(deployed) -> None:
    out, done = deployed
    for name in ("MODEL_CARD.md", "baselines.json", "compress.json", "compressed/model.safetensors",
                 "compressed/report.json", "compressed/label_energy.png", "export/original/model.fp32.onnx",
                 "export/original/export.json", "export/compressed/model.fp32.onnx",
                 "export/compressed/model.int8.onnx", "export/compressed/export.json", "bench/bench.json",
                 "bench/compressed.json", "bench/bench.png"):
        assert (out / name).is_file(), name
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]  # no staging leftovers
    assert set(done["stages"]) == {"compressed", "export", "bench", "card"}
    prune = json.loads((out / "compressed" / "report.json").read_text())
    assert prune["family"] == "smp" and prune["band"]["tau"] == 0.95 and prune["keep_freq"] < 1
    assert prune["stages"][-1]["gmacs"] <= 0.6 * prune["stages"][0]["gmacs"] + 1e-9
    # the compressed checkpoint reloads on its own, at the folder's MACs
    from segprune.models import load_model

    model, info = load_model(out / "compressed" / "model.safetensors")
    assert info["family"] == "smp" and model(torch.zeros(1, 3, 64, 96)).shape == (1, 3, 64, 96)


def test_card_figures_equal_the_reports(deployed) -> None:
    out, _ = deployed
    card = (out / "MODEL_CARD.md").read_text()
    prune = json.loads((out / "compressed" / "report.json").read_text())
    bench = json.loads((out / "bench" / "bench.json").read_text())
    stages = _rows(card, "## Cost and accuracy")
    assert list(stages) == [s["stage"] for s in prune["stages"]]
    for s in prune["stages"]:
        assert stages[s["stage"]][0] == f"{s['gmacs']:.2f}" and stages[s["stage"]][3] == f"{s['miou']:.2f}"
    figures = _rows(card, "## Deployment figures")
    assert list(figures) == [r["label"] for r in bench["results"]] == ["original fp32", "compressed fp32",
                                                                       "compressed int8"]
    speedups = {r["model"]: r["speedup_p50"] for r in bench["ratios"]}
    for r in bench["results"]:
        row = figures[r["label"]]
        assert row[2] == f"{r['latency']['p50_ms']:.2f}" and row[5] == f"{r['accuracy']['miou']:.2f}"
        if r["label"] in speedups:
            assert row[4] == f"{speedups[r['label']]:.2f}"
    macs = 100 * prune["stages"][-1]["gmacs"] / prune["stages"][0]["gmacs"]
    assert card.splitlines()[2].startswith(f"{macs:.1f}% of the MACs")
    assert "No TensorRT engine was built" in card or "tensorrt" in figures  # said where it was not verified
    assert re.search(r"segprune compress .*--target-macs 0\.6", card)  # the command that made it


def test_check_passes_against_the_folders_own_baselines(deployed) -> None:
    out, _ = deployed
    code, stdout, stderr = run_cli(["check", out / "bench" / "compressed.json", "--baseline", out, "--remeasure", "0"])
    assert code == 0, stderr + stdout
    entries = json.loads((out / "baselines.json").read_text())["entries"]
    assert sorted(e["precision"] for e in entries) == ["fp32", "int8"]


def test_a_second_run_resumes_and_other_options_are_refused(deployed, unet) -> None:
    out, _ = deployed
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    code, _, stderr = run_cli(["compress", unet, *QUICK, "--out", out])
    assert code == 0, stderr
    assert "already done" in stderr and "[1/4]" not in stderr and "[4/4]" not in stderr
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before
    code, _, stderr = run_cli(["compress", unet, *QUICK, "--target-macs", "0.5", "--out", out])
    assert code == 2 and "plan.config.target_macs" in stderr and "--overwrite" in stderr
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before


def test_an_interrupted_stage_leaves_nothing_and_is_done_again(unet, tmp_path, monkeypatch) -> None:
    import segprune.deploy.pipeline as pipeline

    out = tmp_path / "dep"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "_bench_all", interrupted)
    code, _, _ = run_cli(["compress", unet, *QUICK, "--out", out])
    assert code == 130
    assert sorted(p.name for p in out.iterdir()) == ["compress.json", "compressed", "export"]
    model_time = (out / "compressed" / "model.safetensors").stat().st_mtime_ns
    monkeypatch.undo()
    code, _, stderr = run_cli(["compress", unet, *QUICK, "--out", out])
    assert code == 0, stderr
    assert "[3/4]" in stderr and "[1/4]" not in stderr and (out / "MODEL_CARD.md").is_file()
    assert (out / "compressed" / "model.safetensors").stat().st_mtime_ns == model_time


@pytest.mark.parametrize("extra, message", [
    (["--data", "synthetic:n=6,n_val=3,size=64x96,classes=5"], "predicts 3 classes, the data has 5"),
    (["--precision", "int8"], "must include fp32"),
    (["--keep-freq", "0.5", "--energy", "0.9"], "not both"),
    (["--energy", "1.5"], "--energy"),
    (["--protect", "no.such.module"], "no.such.module"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(unet, tmp_path, extra, message) -> None:
    out = tmp_path / "dep"
    code, _, stderr = run_cli(["compress", unet, *QUICK, *extra, "--out", out])
    assert code == 2, stderr
    assert message in stderr and len(stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_an_input_size_the_model_cannot_take_is_refused_before_work(tmp_path) -> None:
    torch.manual_seed(0)
    smp.DeepLabV3Plus(encoder_name="resnet18", encoder_weights=None, classes=3,
                      decoder_channels=32).save_pretrained(tmp_path / "dlv3p")
    out = tmp_path / "dep"
    code, _, stderr = run_cli(["compress", tmp_path / "dlv3p", *QUICK, "--input-size", "60x90", "--out", out])
    assert code == 2 and "60x90" in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert not out.exists()


def test_unusable_or_foreign_output_folders_are_refused(unet, tmp_path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    code, _, stderr = run_cli(["compress", unet, *QUICK, "--out", a_file])
    assert code == 2 and "is a file" in stderr
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine")
    code, _, stderr = run_cli(["compress", unet, *QUICK, "--out", theirs])
    assert code == 2 and "--overwrite" in stderr and (theirs / "notes.txt").read_text() == "mine"
