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


@pytest.mark.parametrize("error", [TypeError("a bug mid-surgery"), KeyboardInterrupt()])
def test_a_failure_mid_prune_leaves_the_smp_model_bit_identical(error, monkeypatch) -> None:
    """torch-pruning has cut three channel groups (and the decoder is truncated) when the failure comes:
    the model is put back exactly (weights, modules, classes, truncation, SMP's config) and the
    original error reaches the caller."""
    from torch_pruning.dependency.group import Group

    model = small_smp()
    model.segmentation_head[0].weight.grad = torch.ones_like(model.segmentation_head[0].weight)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    classes = {n: type(m) for n, m in model.named_modules()}
    params = {n: id(p) for n, p in model.named_parameters()}
    config = json.dumps(model.config, sort_keys=True, default=list)
    real, calls = Group.prune, []

    def prune_then_fail(self, *args, **kwargs):
        if self[0].dep.target.module.weight.device.type != "meta":  # the real surgery, not a shape-only trial
            calls.append(1)
            if len(calls) > 3:
                raise error
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Group, "prune", prune_then_fail)
    with pytest.raises(type(error)) as raised:
        compress_(model, CompressConfig(keep_freq=0.5, channel_ratio=0.5, scope="all", importance="l1"), example=SIZE)
    assert raised.value is error and len(calls) == 4
    after = model.state_dict()
    assert after.keys() == state.keys() and all(torch.equal(after[k], state[k]) for k in state)
    assert {n: type(m) for n, m in model.named_modules()} == classes  # DeepLabV3PlusDecoder again, not truncated
    assert {n: id(p) for n, p in model.named_parameters()} == params  # the very same Parameter objects
    assert json.dumps(model.config, sort_keys=True, default=list) == config
    assert adapter_for(model).truncation(model) == (1.0, "area") and not model.training
    assert torch.equal(model.segmentation_head[0].weight.grad, torch.ones_like(model.segmentation_head[0].weight))


def test_a_user_error_after_truncation_leaves_the_model_as_it_was_and_says_what_to_do() -> None:
    model = small_smp()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ConfigError, match=r"--target-macs 0.01 .*use .*a target >= "):
        compress_(model, CompressConfig(keep_freq=0.5, target_macs=0.01, scope="decoder", importance="l1"),
                  example=SIZE)
    assert type(model.decoder).__name__ == "DeepLabV3PlusDecoder"
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())


@pytest.mark.parametrize(("arch", "stride"), [("Unet", 1), ("FPN", 4), ("DeepLabV3", 8), ("PSPNet", 8),
                                              ("Segformer", 4)])
def test_each_decoder_runs_truncated_and_keep_one_restores_smp_exactly(arch, stride) -> None:
    """The stages finer than the truncated grid run on it (fewer decoder MACs), the logits come back at the
    input size, the model is still the user's class, and keep 1 gives SMP's own classes and outputs back."""
    torch.manual_seed(0)
    model = getattr(smp, arch)(encoder_name="resnet18", encoder_weights=None, classes=3).eval()
    x = torch.randn(1, 3, *SIZE)
    with torch.no_grad():
        reference = model(x)
    full = count_macs(model, SIZE).macs_of(["decoder"])
    assert adapter_for(model).decoder_stride(model) == stride
    truncate_(model, TruncationConfig(0.5, "area"))
    assert isinstance(model, getattr(smp, arch)) and type(model).__name__ == arch
    with torch.no_grad():
        truncated = model(x)
    assert truncated.shape == reference.shape and not torch.equal(truncated, reference)
    assert count_macs(model, SIZE).macs_of(["decoder"]) < full
    with pytest.raises(ConfigError, match="save it with segprune.save_checkpoint"):
        model.save_pretrained("/nonexistent")
    truncate_(model, TruncationConfig(1.0))
    assert type(model) is getattr(smp, arch)
    with torch.no_grad():
        assert torch.equal(model(x), reference)


def test_unet_runs_its_stride_2_and_1_blocks_on_the_truncated_grid() -> None:
    torch.manual_seed(0)
    model = smp.Unet(encoder_name="resnet18", encoder_weights=None, classes=3).eval()
    truncate_(model, TruncationConfig(0.25, "area"))  # 64x96 input: the finest grid 64x96, truncated to 16x24
    grids = {}
    def record(i: int):
        def hook(module, args, out) -> None:
            grids[i] = tuple(out.shape[-2:])
        return hook

    hooks = [block.register_forward_hook(record(i)) for i, block in enumerate(model.decoder.blocks)]
    with torch.no_grad():
        out = model(torch.randn(1, 3, *SIZE))
    for hook in hooks:
        hook.remove()
    assert grids == {0: (4, 6), 1: (8, 12), 2: (16, 24), 3: (16, 24), 4: (16, 24)}
    assert out.shape[-2:] == SIZE


def test_truncation_is_refused_with_the_reason_where_a_decoder_cannot_run_truncated() -> None:
    model = smp.Linknet(encoder_name="resnet18", encoder_weights=None, classes=3).eval()
    with pytest.raises(ConfigError, match=r"SMP Linknet cannot run its decoder truncated \(its transposed "
                                          r"convolutions .*\): use --keep-freq 1"):
        truncate_(model, TruncationConfig(0.5))


def test_an_aux_classification_head_is_refused_with_the_fix() -> None:
    model = smp.Unet(encoder_name="resnet18", encoder_weights=None, classes=3, aux_params={"classes": 3})
    with pytest.raises(ConfigError, match=r"classification head \(aux_params\).*model.classification_head = None"):
        adapter_for(model)
    model.classification_head = None
    assert adapter_for(model).family == "smp"


def test_folders_segprune_writes_are_models(tmp_path) -> None:
    model = small_smp()
    compress_(model, CompressConfig(keep_freq=0.5, channel_ratio=0.25, scope="head", importance="l1"), example=SIZE)
    save_checkpoint(tmp_path / "pruned" / "model.safetensors", model)
    save_checkpoint(tmp_path / "trained" / "last.safetensors", model)
    x = torch.randn(1, 3, *SIZE)
    with torch.no_grad():
        expected = model(x)
    for folder in ("pruned", "trained"):
        again, info = load_model(tmp_path / folder)
        assert info["kind"] == "checkpoint" and info["folder"] == str(tmp_path / folder)
        with torch.no_grad():
            assert torch.equal(again(x), expected)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="neither one written by SMP's save_pretrained .* nor by segprune"):
        load_model(tmp_path / "empty")


def test_a_folder_of_any_smp_class_loads_and_an_unknown_class_names_the_supported_ones(tmp_path) -> None:
    torch.manual_seed(0)
    unet = smp.Unet(encoder_name="resnet18", encoder_weights=None, classes=2).eval()
    unet.save_pretrained(tmp_path / "unet")
    loaded, info = load_model(tmp_path / "unet")
    assert info["kind"] == "smp-folder" and isinstance(loaded, smp.Unet)
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "config.json").write_text(json.dumps({"_model_class": "NotAModel"}))
    (tmp_path / "odd" / "model.safetensors").write_bytes(b"")
    with pytest.raises(ConfigError, match="SMP model 'NotAModel' has no segprune adapter: supported are "
                                          "DeepLabV3Plus, Unet, FPN"):
        load_model(tmp_path / "odd")


@pytest.mark.parametrize("arch", ["Unet", "FPN"])
def test_a_truncated_decoder_exports_with_dynamic_hw_where_its_resampling_allows(arch, tmp_path) -> None:
    import numpy as np

    from segprune.export import ExportConfig, export_onnx
    from segprune.export.onnx_runner import OnnxRunner

    torch.manual_seed(0)
    model = getattr(smp, arch)(encoder_name="resnet18", encoder_weights=None, classes=3).eval()
    truncate_(model, TruncationConfig(0.5, "area"))
    with pytest.raises(ConfigError, match="exports at a fixed size only"):
        ExportConfig((64, 96), dynamic=frozenset({"hw"})).validate(model)
    truncate_(model, TruncationConfig(0.5, "bilinear"))
    export_onnx(model, tmp_path / "m.onnx", ExportConfig((64, 96), dynamic=frozenset({"batch", "hw"})))
    runner = OnnxRunner(tmp_path / "m.onnx")
    for size in ((64, 96), (128, 160)):  # the truncated grids follow the input, not the example
        x = torch.randn(1, 3, *size)
        with torch.no_grad():
            expected = model(x).numpy()
        got = runner(x.numpy())
        assert got.shape == expected.shape and np.abs(got - expected).max() < 1e-3


def test_groups_whose_widths_meet_only_at_some_ratios_are_found_at_the_ratio_used() -> None:
    # Res2Net splits conv1's output by a width it stored at build time: torch-pruning cannot follow it,
    # and a trial at the largest ratio can leave counts that happen to split; the real ratio does not
    from segprune.compress import PruneConfig, prune_

    torch.manual_seed(0)
    model = smp.DeepLabV3Plus(encoder_name="tu-res2net50_14w_8s", encoder_weights=None, classes=3).eval()
    result = prune_(model, PruneConfig(channel_ratio=0.5, scope="all", importance="l1"), torch.randn(1, 3, 64, 64))
    assert result.held and all(name.startswith("encoder.model.layer") for name in result.held)
    assert result.macs_fraction < 0.9
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 3, 64, 64)


def test_a_truncated_unet_exports_with_parity_where_its_grids_are_not_whole_multiples(tmp_path) -> None:
    # keep 0.403 at 352x480: the stride-4 stage's 88x120 is resampled to a 142x194 grid, where PyTorch's
    # float-scale nearest and onnxruntime's Resize once picked different source columns (max |dlogit| 0.84)
    import numpy as np

    from segprune.export import ExportConfig, export_onnx
    from segprune.export.onnx_runner import OnnxRunner

    torch.manual_seed(0)
    model = smp.Unet(encoder_name="resnet18", encoder_weights=None, classes=3).eval()
    truncate_(model, TruncationConfig(0.403, "area"))
    export_onnx(model, tmp_path / "m.onnx", ExportConfig((352, 480)))
    x = torch.randn(1, 3, 352, 480)
    with torch.no_grad():
        expected = model(x).numpy()
    assert np.abs(OnnxRunner(tmp_path / "m.onnx")(x.numpy()) - expected).max() < 1e-3
