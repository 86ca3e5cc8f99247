"""``compress_``: one call for truncation + pruning, validated before the model changes."""

from __future__ import annotations

import copy

import pytest
import torch

from segprune.compress import CompressConfig, PruneConfig, compress_, count_macs, prune_
from segprune.errors import ConfigError
from tests.helpers import tiny_model

SIZE = (32, 48)


@pytest.mark.parametrize("kwargs, message", [
    ({"keep_freq": float("nan")}, r"--keep-freq nan is outside \(0, 1\]"),
    ({"keep_freq": 0.0}, r"--keep-freq 0.0 is outside \(0, 1\]"),
    ({"channel_ratio": float("inf")}, "--channel-ratio inf is not a finite number"),
    ({"target_macs": float("nan")}, "--target-macs nan is not a finite number"),
    ({"channel_ratio": 0.5, "target_macs": 0.5}, "not both"),
    ({"target_macs": 1.5}, r"--target-macs 1.5 is outside \(0, 1\]"),
    ({"trunc_mode": "nearest"}, "--trunc-mode 'nearest' is not valid"),
    ({"scope": "everything"}, "--scope 'everything' is not valid"),
    ({"importance": "magic"}, "--importance 'magic' is not valid"),
])
def test_config_is_checked_before_anything_runs(kwargs, message) -> None:
    with pytest.raises(ConfigError, match=message):
        CompressConfig(**kwargs)


def test_truncation_alone_and_the_report() -> None:
    model = tiny_model(aspp_channels=16, decoder_channels=16)
    result = compress_(model, CompressConfig(keep_freq=0.5, trunc_mode="spectral"), example=SIZE)
    assert result.pruning is None and result.keep_freq == 0.5 and result.trunc_mode == "spectral"
    assert model.config.decoder_keep == 0.5 and model.config.decoder_resize == "spectral"
    assert result.macs_fraction < 1.0 and result.to_dict()["channel_ratio"] == 0.0


@pytest.mark.parametrize("prune", [{}, {"channel_ratio": 0.25, "importance": "l1"}])
def test_no_keep_freq_leaves_the_truncation_and_its_mode_as_they_are(prune) -> None:
    """CompressConfig() is 'nothing changed' (the fine-tuning control): a bilinear truncation stays bilinear."""
    model = tiny_model(aspp_channels=16, decoder_channels=16)
    compress_(model, CompressConfig(keep_freq=0.5, trunc_mode="bilinear"), example=SIZE)
    result = compress_(model, CompressConfig(**prune), example=SIZE)
    assert result.keep_freq == 0.5 and result.trunc_mode == "bilinear"
    assert model.config.decoder_keep == 0.5 and model.config.decoder_resize == "bilinear"


def test_one_call_equals_truncating_inside_prune() -> None:
    torch.manual_seed(0)
    a = tiny_model(aspp_channels=16, decoder_channels=16)
    b = tiny_model(aspp_channels=16, decoder_channels=16)
    b.load_state_dict(a.state_dict())
    result = compress_(a, CompressConfig(keep_freq=0.5, target_macs=0.7, scope="all", importance="l1", round_to=4),
                       example=SIZE)
    prune_(b, PruneConfig(target_macs=0.7, scope="all", importance="l1", round_to=4, keep_freq=0.5, trunc_mode="area"),
           torch.zeros(1, 3, *SIZE))
    assert result.macs_after.total_macs == count_macs(b, SIZE).total_macs
    x = torch.randn(1, 3, *SIZE)
    with torch.no_grad():
        assert torch.equal(a.eval()(x), b.eval()(x))
    assert result.macs_fraction <= 0.7


def test_protect_reaches_the_pruner() -> None:
    model = tiny_model(aspp_channels=16, decoder_channels=16)
    result = compress_(model, CompressConfig(keep_freq=0.5, target_macs=0.7, scope="all", importance="l1", round_to=4,
                                             protect="decoder.project"), example=SIZE)
    assert result.to_dict()["config"]["protect"] == ("decoder.project",)  # the report records it
    before, after = result.pruning.channels["decoder.project.0"]
    assert before == after and result.pruning.channels["decoder.fuse.0.0"][1] < 16


def test_a_truncated_model_is_never_widened_and_failures_leave_it_unchanged() -> None:
    model = tiny_model(decoder_keep=0.5)
    with pytest.raises(ConfigError, match="already runs its decoder at keep-freq 0.5; compressing cannot widen it"):
        compress_(model, CompressConfig(keep_freq=0.75), example=SIZE)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ConfigError, match="needs calibration batches"):
        compress_(model, CompressConfig(keep_freq=0.25, channel_ratio=0.5), example=SIZE)
    assert model.config.decoder_keep == 0.5
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("family", ["segprune", "smp"])
def test_python_path_compress_export_bench(family, tmp_path) -> None:
    """The library path a user's script takes: compress_, finetune, export_model, bench, for both families."""
    from segprune.bench import BenchSettings, bench, open_runner
    from segprune.data import build_dataset, image_batches
    from segprune.export import ExportConfig, ExportPlan, export_model
    from segprune.train import FinetuneConfig, finetune

    data, size = "synthetic:n=6,n_val=3,size=64x96,classes=3", (64, 96)
    torch.manual_seed(0)
    if family == "smp":
        smp = pytest.importorskip("segmentation_models_pytorch", reason="SMP not installed: pip install 'segprune[smp]'")
        model = smp.DeepLabV3Plus(encoder_name="resnet18", encoder_weights=None, classes=3, decoder_channels=32)
    else:
        model = tiny_model(aspp_channels=16, decoder_channels=16)
    teacher = copy.deepcopy(model).eval()
    calib = [torch.from_numpy(b) for b in image_batches(data, "train", size, 4, 2)]
    result = compress_(model, CompressConfig(keep_freq=0.5, target_macs=0.8, scope="all", round_to=4),
                       example=size, calib=calib)
    assert result.family == family and result.macs_fraction <= 0.8
    finetune(model, build_dataset(data, "train"), build_dataset(data, "val"),
             FinetuneConfig(epochs=1, batch_size=3, crop_size=size, input_size=size, kd=1.0), tmp_path / "ft",
             teacher=teacher, device="cpu", progress=False)
    manifest = export_model(model, tmp_path / "onnx", ExportConfig(size), ExportPlan(("fp32",)),
                            lambda at, n: image_batches(data, "val", at, 2, n, 3), log=lambda _msg: None)
    assert manifest["family"] == family and manifest["files"]["fp32"]["passed"]
    runner = open_runner(tmp_path / "onnx" / "model.fp32.onnx")
    payload = bench({"compressed": runner}, BenchSettings(data=data, input_size=size, runs=2, warmup=1, rounds=1,
                                                          progress=False))
    assert payload["results"][0]["accuracy"]["miou"] >= 0
