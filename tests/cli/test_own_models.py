"""The user's own model from the command line: an SMP folder and a weights file through prune -> export -> bench."""

from __future__ import annotations

import json

import pytest
import torch

smp = pytest.importorskip("segmentation_models_pytorch",
                          reason="SMP not installed: pip install 'segprune[smp]' (make test installs it)")

from tests.helpers import run_cli  # noqa: E402

DATA = "synthetic:n=6,n_val=3,size=64x96,classes=3"


@pytest.fixture
def smp_folder(tmp_path):
    torch.manual_seed(0)
    model = smp.DeepLabV3Plus(encoder_name="resnet18", encoder_weights=None, classes=3, decoder_channels=32)
    model.save_pretrained(tmp_path / "mine")
    return tmp_path / "mine"


def test_smp_folder_goes_through_prune_export_and_bench(smp_folder, tmp_path) -> None:
    out = tmp_path / "pruned"
    code, stdout, stderr = run_cli(["prune", smp_folder, "--data", DATA, "--input-size", "64x96", "--keep-freq", "0.5",
                                    "--target-macs", "0.6", "--scope", "all", "--calib-images", "4",
                                    "--finetune-epochs", "1", "--batch-size", "3", "--kd", "1", "--out", out,
                                    "--no-progress", "--json"])
    assert code == 0, stderr
    report = json.loads(stdout)
    assert report["family"] == "smp" and report["keep_freq"] == 0.5
    original, compressed, tuned = report["stages"]
    assert compressed["gmacs"] <= 0.6 * original["gmacs"] and tuned["gmacs"] == compressed["gmacs"]
    # the folder prune wrote is the model, wherever a model is taken
    code, stdout, stderr = run_cli(["export", out, "--out", tmp_path / "onnx", "--data", DATA,
                                    "--input-size", "64x96", "--precision", "fp32,int8", "--calib-images", "4",
                                    "--parity-images", "2", "--quiet", "--json"])
    assert code == 0, stderr
    manifest = json.loads(stdout)
    assert manifest["family"] == "smp" and all(f["passed"] for f in manifest["files"].values())
    code, stdout, stderr = run_cli(["bench", smp_folder, out, tmp_path / "onnx" / "model.fp32.onnx", "--data", DATA,
                                    "--input-size", "64x96", "--runs", "2", "--warmup", "1", "--rounds", "1",
                                    "--no-progress", "--json"])
    assert code == 0, stderr
    bench = json.loads(stdout)
    assert [r["backend"] for r in bench["results"]] == ["torch", "torch", "onnxruntime"]
    assert bench["results"][2]["accuracy"]["miou"] >= 0


def test_smp_folder_pruned_gradually(smp_folder, tmp_path) -> None:
    """--prune-steps 2: two rounds of pruning and fine-tuning reach the target, and the report names each stage;
    --feature-kd finds SMP's decoder features and the adapter it trains stays out of the saved model."""
    code, stdout, stderr = run_cli(["prune", smp_folder, "--data", DATA, "--input-size", "64x96", "--target-macs",
                                    "0.5", "--scope", "all", "--importance", "l1", "--prune-steps", "2",
                                    "--finetune-epochs", "2", "--batch-size", "3", "--kd", "1", "--feature-kd", "1",
                                    "--out",
                                    tmp_path / "p", "--no-progress", "--json"])
    assert code == 0, stderr
    report = json.loads(stdout)
    assert report["prune_steps"] == 2 and [s["stage"] for s in report["stages"]] == [
        "original", "step 1/2 compressed", "step 1/2 fine-tuned", "compressed", "fine-tuned"]
    gmacs = [s["gmacs"] / report["stages"][0]["gmacs"] for s in report["stages"]]
    assert 0.5 < gmacs[1] <= 0.5 ** 0.5 + 1e-9 and gmacs[4] <= 0.5 and report["compression"]["macs_fraction"] <= 0.5
    assert (tmp_path / "p" / "finetune" / "step2" / "last.safetensors").is_file()
    from safetensors import safe_open

    with safe_open(str(tmp_path / "p" / "model.safetensors"), "pt") as saved:
        assert not any("adapter" in k for k in saved.keys())
    code, _, stderr = run_cli(["eval", tmp_path / "p" / "model.safetensors", "--data", DATA, "--input-size", "64x96",
                               "--no-progress"])
    assert code == 0, stderr


def test_weights_file_needs_and_takes_an_architecture(tmp_path) -> None:
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = smp.DeepLabV3Plus(encoder_name="mobilenet_v2", encoder_weights=None, classes=3)
    save_file(model.state_dict(), str(tmp_path / "w.safetensors"))
    code, _, stderr = run_cli(["eval", tmp_path / "w.safetensors", "--data", DATA, "--no-progress"])
    assert code == 2 and "with --arch" in stderr and "Traceback" not in stderr
    code, stdout, stderr = run_cli(["eval", tmp_path / "w.safetensors", "--arch", "smp:DeepLabV3Plus", "--encoder",
                                    "mobilenet_v2", "--classes", "3", "--data", DATA, "--input-size", "64x96",
                                    "--no-progress", "--json"])
    assert code == 0, stderr
    assert 0 <= json.loads(stdout)["metrics"]["miou"] <= 100
    code, _, stderr = run_cli(["eval", tmp_path / "w.safetensors", "--arch", "smp:DeepLabV3Plus", "--encoder",
                               "mobilenet_v2", "--classes", "5", "--data", DATA, "--no-progress"])
    assert code == 2 and "shape mismatches" in stderr and "segmentation_head.0.weight" in stderr


def test_a_decoder_that_cannot_run_truncated_is_one_line(tmp_path) -> None:
    smp.Linknet(encoder_name="resnet18", encoder_weights=None, classes=3).save_pretrained(tmp_path / "linknet")
    code, _, stderr = run_cli(["prune", tmp_path / "linknet", "--data", DATA, "--keep-freq", "0.5", "--out",
                               tmp_path / "out", "--no-progress"])
    assert code == 2 and "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1
    assert "SMP Linknet cannot run its decoder truncated" in stderr and "use --keep-freq 1" in stderr
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_analyze_measures_the_smp_decoder(smp_folder, tmp_path) -> None:
    code, stdout, stderr = run_cli(["analyze", "--data", DATA, "--model", smp_folder, "--input-size", "64x96",
                                    "--keep-freq", "0.5", "--ceiling-images", "-1", "--calib-images", "2",
                                    "--out", tmp_path / "a", "--no-plots", "--no-progress", "--json"])
    assert code == 0, stderr
    features = json.loads(stdout)["model"]["features"]
    assert set(features) == {"decoder.block2:in", "decoder.block2"}
    assert features["decoder.block2"]["channels"] == 32
