"""`segprune prune` end to end: report, reload in a fresh process, ONNX export, user errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from segprune.cli.main import main
from segprune.compress import PruneConfig, TruncationConfig, prune_, truncate_
from segprune.models import load_checkpoint, save_checkpoint
from tests.helpers import tiny_model

DATA = "synthetic:n=6,n_val=3,size=32x48,classes=3"


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "base.safetensors"
    save_checkpoint(path, tiny_model(num_classes=3, aspp_channels=16, decoder_channels=16))
    return path


def test_prune_reports_every_stage_and_writes_a_reloadable_model(checkpoint, tmp_path, capsys) -> None:
    out = tmp_path / "pruned"
    code = main(["prune", str(checkpoint), "--data", DATA, "--keep-freq", "0.5", "--channel-ratio", "0.5",
                 "--round-to", "4", "--finetune-epochs", "1", "--batch-size", "3", "--recall", "0.5", "--sr", "0.3",
                 "--kd", "0.5", "--out", str(out), "--no-progress", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert [s["stage"] for s in report["stages"]] == ["original", "compressed", "fine-tuned"]
    assert report["stages"][1]["gmacs"] < report["stages"][0]["gmacs"]
    assert report["keep_freq"] == 0.5
    model, _ = load_checkpoint(out / "model.safetensors")
    assert model.config.decoder_keep == 0.5 and model.config.channel_overrides
    assert model.decoder.fuse[0][0].out_channels == 8
    assert "exits" not in json.dumps(list(load_file(str(out / "model.safetensors")).keys()))


def test_pruned_model_reloads_identically_in_a_fresh_process(tmp_path) -> None:
    torch.manual_seed(0)
    model = tiny_model(num_classes=3, aspp_channels=16, decoder_channels=16).eval()
    truncate_(model, TruncationConfig(1.0, "spectral"))
    prune_(model, PruneConfig(channel_ratio=0.5, importance="l1", round_to=4, keep_freq=0.5),
           torch.randn(1, 3, 32, 48))
    save_checkpoint(tmp_path / "p.safetensors", model)
    x = torch.randn(2, 3, 32, 48)
    save_file({"x": x}, str(tmp_path / "x.safetensors"))
    script = (
        "import sys, torch; from safetensors.torch import load_file, save_file;"
        "from segprune.models import load_checkpoint;"
        f"m, _ = load_checkpoint({str(tmp_path / 'p.safetensors')!r});"
        f"x = load_file({str(tmp_path / 'x.safetensors')!r})['x'];"
        "torch.set_num_threads(1);"
        f"save_file({{'y': m(x).detach()}}, {str(tmp_path / 'y.safetensors')!r})"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    with torch.no_grad():
        expected = model(x)
    assert torch.equal(load_file(str(tmp_path / "y.safetensors"))["y"], expected)


def test_pruned_model_exports_to_onnx(tmp_path) -> None:
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = tiny_model(num_classes=3, aspp_channels=16, decoder_channels=16).eval()
    truncate_(model, TruncationConfig(1.0, "bilinear"))
    prune_(model, PruneConfig(channel_ratio=0.5, importance="l2", round_to=4, keep_freq=0.5), torch.randn(1, 3, 32, 48))
    x = torch.randn(1, 3, 32, 48)
    path = tmp_path / "m.onnx"
    torch.onnx.export(model, (x,), str(path), opset_version=17, input_names=["image"], output_names=["logits"],
                      dynamo=False)
    onnx.checker.check_model(str(path))
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"image": x.numpy()})[0]
    with torch.no_grad():
        assert torch.allclose(torch.from_numpy(got), model(x), atol=1e-4)


@pytest.mark.parametrize("argv,needle", [
    (["--keep-freq", "1.5"], "outside (0, 1]"),
    (["--channel-ratio", "1.0"], "channel"),
    (["--channel-ratio", "0.5", "--target-macs", "0.5"], "not both"),
    (["--target-macs", "0.01"], "below"),
    (["--channel-ratio", "0.5", "--protect", "decoder.nowhere"], "--protect 'decoder.nowhere' names no convolution"),
])
def test_prune_user_errors_exit_2_with_one_line(checkpoint, tmp_path, capsys, argv, needle) -> None:
    code = main(["prune", str(checkpoint), "--data", DATA, "--out", str(tmp_path / "o"), "--no-progress", *argv])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("size", ["64x96", "32x48"])
def test_prune_and_analyze_derive_the_same_band_from_energy(checkpoint, tmp_path, capsys, size) -> None:
    """One conversion (#14): the same data, tau and input size give one keep-freq in both commands."""
    data = "synthetic:n=6,n_val=3,size=64x96,classes=3"
    assert main(["analyze", "--data", data, "--energy", "0.6", "--input-size", size, "--ceiling-images", "-1",
                 "--no-plots", "--out", str(tmp_path / "an"), "--no-progress", "--json"]) == 0
    analyzed = json.loads(capsys.readouterr().out)
    assert main(["prune", str(checkpoint), "--data", data, "--energy", "0.6", "--input-size", size,
                 "--finetune-epochs", "0", "--out", str(tmp_path / "pr"), "--no-progress", "--json"]) == 0
    captured = capsys.readouterr()
    pruned = json.loads(captured.out)
    assert pruned["keep_freq"] == pytest.approx(analyzed["keep_freq"])
    assert pruned["band"] == analyzed["band"]
    assert analyzed["band"]["label_size"] == [64, 96] and analyzed["band"]["input_size"] == [int(v) for v in
                                                                                             size.split("x")]
    assert "--energy 0.6" in captured.err  # the band's one-line explanation


def test_prune_refuses_an_energy_the_decoder_cannot_hold_at_that_input_size(checkpoint, tmp_path, capsys) -> None:
    data = "synthetic:n=6,n_val=3,size=64x96,classes=3"
    code = main(["prune", str(checkpoint), "--data", data, "--energy", "0.999", "--input-size", "32x48",
                 "--finetune-epochs", "0", "--out", str(tmp_path / "pr"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "beyond what the decoder can hold at input 32x48" in err and "or larger would hold 0.999" in err
    assert "pass --energy 0." in err and not (tmp_path / "pr").exists()
