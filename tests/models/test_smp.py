"""SMP's DeepLabV3+ through segprune: truncation, pruning, checkpoints, loading users' files.

Skipped, with the install line, where segmentation_models_pytorch is absent.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

smp = pytest.importorskip("segmentation_models_pytorch",
                          reason="SMP not installed: pip install 'segprune[smp]' (make test installs it)")

from segprune.compress import CompressConfig, TruncationConfig, compress_, count_macs, truncate_  # noqa: E402
from segprune.errors import CheckpointError, ConfigError  # noqa: E402
from segprune.models import adapter_for, load_checkpoint, load_model, model_info, save_checkpoint  # noqa: E402

SIZE = (64, 96)


def small_smp(encoder: str = "resnet18", classes: int = 3, **kwargs):
    torch.manual_seed(0)
    return smp.DeepLabV3Plus(encoder_name=encoder, encoder_weights=None, classes=classes, decoder_channels=32,
                             **kwargs).eval()


def calib(n: int = 2):
    g = torch.Generator().manual_seed(1)
    return [torch.randn(2, 3, *SIZE, generator=g) for _ in range(n)]


def test_the_smp_adapter_describes_the_model() -> None:
    model = small_smp()
    info = model_info(model)
    assert info["family"] == "smp" and info["num_classes"] == 3 and info["output_stride"] == 16
    assert info["keep_freq"] == 1.0 and info["config"]["init"]["encoder_name"] == "resnet18"
    assert info["config"]["init"]["encoder_weights"] is None  # nothing is ever downloaded on rebuild


def test_truncation_shrinks_the_fusion_and_keep_one_restores_smp_exactly() -> None:
    model = small_smp()
    x = torch.randn(2, 3, *SIZE)
    with torch.no_grad():
        reference = model(x)
    full = count_macs(model, SIZE)
    truncate_(model, TruncationConfig(0.5, "area"))
    assert isinstance(model, smp.DeepLabV3Plus)  # still the user's class
    with torch.no_grad():
        truncated = model(x)
    assert truncated.shape == reference.shape
    assert not torch.equal(truncated, reference)
    fusion = "decoder.block2"
    assert count_macs(model, SIZE).macs_of([fusion]) < 0.3 * full.macs_of([fusion])  # about keep^2 of it
    truncate_(model, TruncationConfig(1.0))
    assert type(model.decoder).__name__ == "DeepLabV3PlusDecoder"
    with torch.no_grad():
        assert torch.equal(model(x), reference)


@pytest.mark.parametrize("encoder", ["resnet18", "resnet34", "resnet50", "mobilenet_v2"])
def test_compress_reaches_the_target_and_round_trips_through_a_checkpoint(encoder, tmp_path) -> None:
    model = small_smp(encoder)
    result = compress_(model, CompressConfig(keep_freq=0.5, target_macs=0.6, scope="all"), example=SIZE,
                       calib=calib())
    assert result.family == "smp" and result.keep_freq == 0.5
    assert 0.5 < result.macs_fraction <= 0.6
    widths = result.pruning.channels
    assert any(after < before for before, after in widths.values())  # encoder or decoder channels went
    assert any(name.startswith("decoder.block2") and after < before for name, (before, after) in widths.items())
    assert model.segmentation_head[0].out_channels == 3  # the classifier keeps its classes
    x = torch.randn(1, 3, *SIZE)
    with torch.no_grad():
        expected = model(x)
    save_checkpoint(tmp_path / "c.safetensors", model, {"note": "pruned"})
    again, info = load_checkpoint(tmp_path / "c.safetensors")
    assert isinstance(again, smp.DeepLabV3Plus) and info["family"] == "smp"
    with torch.no_grad():
        assert torch.equal(again(x), expected)


def test_a_compressed_smp_model_reloads_in_a_fresh_process(tmp_path) -> None:
    model = small_smp()
    compress_(model, CompressConfig(keep_freq=0.75, channel_ratio=0.25, scope="head", importance="l1"),
              example=SIZE)
    x = torch.randn(1, 3, *SIZE)
    with torch.no_grad():
        torch.save(model(x), tmp_path / "expected.pt")
    torch.save(x, tmp_path / "x.pt")
    save_checkpoint(tmp_path / "c.safetensors", model)
    code = (f"import torch; torch.set_num_threads({torch.get_num_threads()})\n"
            "from segprune.models import load_checkpoint\n"
            f"m, _ = load_checkpoint({str(tmp_path / 'c.safetensors')!r})\n"
            f"x = torch.load({str(tmp_path / 'x.pt')!r}, weights_only=True)\n"
            f"e = torch.load({str(tmp_path / 'expected.pt')!r}, weights_only=True)\n"
            "with torch.no_grad(): assert torch.equal(m(x), e), (m(x) - e).abs().max()\n"
            "print(type(m).__module__, type(m).__name__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "segmentation_models_pytorch" in done.stdout and "DeepLabV3Plus" in done.stdout


def test_spectral_ranking_measures_the_smp_decoder() -> None:
    from segprune.compress import measure_channel_energy

    model = small_smp()
    truncate_(model, TruncationConfig(0.5))
    energy = measure_channel_energy(model, calib(1), keep=0.5, scope="decoder", fraction=True)
    assert "decoder.block1.0" in energy and "decoder.block2.0.1" in energy  # skip projection, pointwise fuse conv
    for name, share in energy.items():
        assert torch.all((share >= 0) & (share <= 1 + 1e-9)), name


def test_protect_fine_finds_the_same_path_in_an_smp_model() -> None:
    """The stride-2/4 path from the shapes, whatever the layers are called: the stem, the first stage
    and SMP's skip projection (``decoder.block1``)."""
    from segprune.compress.scope import fine_path

    assert fine_path(small_smp()) == ("encoder.conv1", "encoder.layer1.0.conv1", "encoder.layer1.0.conv2",
                                      "encoder.layer1.1.conv1", "encoder.layer1.1.conv2", "decoder.block1.0")
    path = fine_path(small_smp("mobilenet_v2"))  # inverted residuals: stride 4 ends at the stride-2 depthwise
    assert path[0] == "encoder.features.0.0" and path[-1] == "decoder.block1.0"
    assert "encoder.features.3.conv.2" in path and not any(n.startswith("encoder.features.5") for n in path)


def test_save_pretrained_folders_load_without_pickle(tmp_path) -> None:
    model = small_smp("mobilenet_v2", classes=4)
    model.save_pretrained(tmp_path / "mine")
    loaded, info = load_model(tmp_path / "mine")
    assert info["kind"] == "smp-folder" and info["family"] == "smp"
    x = torch.randn(1, 3, *SIZE)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_a_folder_of_an_unsupported_smp_architecture_names_the_supported_ones(tmp_path) -> None:
    smp.Unet(encoder_name="resnet18", encoder_weights=None, classes=2).save_pretrained(tmp_path / "unet")
    with pytest.raises(ConfigError, match="SMP model 'Unet' has no segprune adapter: supported are DeepLabV3Plus; "
                                          "add one with @segprune.models.register_adapter"):
        load_model(tmp_path / "unet")


def test_weights_with_an_architecture_description(tmp_path) -> None:
    from safetensors.torch import save_file

    model = smp.DeepLabV3Plus(encoder_name="resnet34", encoder_weights=None, classes=5).eval()
    save_file(model.state_dict(), str(tmp_path / "w.safetensors"))
    torch.save(model.state_dict(), tmp_path / "w.pth")
    for path in (tmp_path / "w.safetensors", tmp_path / "w.pth"):
        loaded, info = load_model(path, arch="smp:DeepLabV3Plus", encoder="resnet34", classes=5)
        assert info["kind"] == "weights" and model_info(loaded)["num_classes"] == 5
    with pytest.raises(CheckpointError, match=r"do not match --arch smp:DeepLabV3Plus --encoder resnet18 --classes 5: "
                                              r"\d+ unexpected tensors \(encoder.layer1.2"):
        load_model(tmp_path / "w.pth", arch="smp:DeepLabV3Plus", encoder="resnet18", classes=5)
    with pytest.raises(CheckpointError, match=r"without a segprune header: say what network .* with --arch"):
        load_model(tmp_path / "w.pth")
    with pytest.raises(ConfigError, match="needs --encoder"):
        load_model(tmp_path / "w.pth", arch="smp:DeepLabV3Plus", classes=5)


def test_a_pickled_whole_model_is_refused_with_how_to_convert_it(tmp_path) -> None:
    torch.save(small_smp(), tmp_path / "model.pth")  # a whole pickled module, as people do
    with pytest.raises(CheckpointError, match=r"holds Python objects besides tensors .*save_pretrained"):
        load_model(tmp_path / "model.pth", arch="smp:DeepLabV3Plus", encoder="resnet18", classes=3)


def test_checkpoint_header_records_the_family(tmp_path) -> None:
    from segprune.models import read_checkpoint_header

    save_checkpoint(tmp_path / "c.safetensors", small_smp())
    header = read_checkpoint_header(tmp_path / "c.safetensors")
    assert header["family"] == "smp" and header["config"]["class"] == "DeepLabV3Plus"
    sidecar = json.loads((tmp_path / "c.safetensors.json").read_text())
    assert sidecar["family"] == "smp"
    assert adapter_for(small_smp()).family == "smp"
