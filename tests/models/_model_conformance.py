"""One conformance suite, reused per architecture (cf. segmentation_models.pytorch tests/models/base.py).

A test module subclasses :class:`ModelConformance` and sets ``arch``; every test then runs
for that architecture on the fast backbones at output strides 8 and 16. The larger
backbones are checked on the ``meta`` device (shapes only, no compute), and for real in
the ``slow`` tests.
"""

from __future__ import annotations

import copy
import functools
import json
import math

import pytest
import torch

from segprune.errors import CheckpointError
from segprune.models import create_model, load_checkpoint, save_checkpoint

# Odd and non-square: every stride rounds differently along the two axes.
HEIGHT, WIDTH = 65, 97
FAST_BACKBONES = ("resnet18", "mobilenet_v2")
OTHER_BACKBONES = ("resnet34", "resnet50", "resnet101", "mobilenet_v3_large")
STRIDES = (8, 16)
NUM_CLASSES = 5
# Spatial size of layer1 (output stride 4) for a 65x97 input, for every backbone here.
H4, W4 = 17, 25


@functools.cache
def _cached(arch: str, backbone: str, output_stride: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(f"{arch}_{backbone}", NUM_CLASSES, output_stride=output_stride).eval()


def fuse_input_size(model: torch.nn.Module, x: torch.Tensor) -> tuple[int, int]:
    """The spatial size of the decoder grid, read by a forward hook on ``decoder.fuse``."""
    seen = []
    handle = model.decoder.fuse.register_forward_hook(lambda mod, inp, out: seen.append(tuple(inp[0].shape[-2:])))
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    return seen[0]


class ModelConformance:
    arch: str = ""

    def model(self, backbone: str = "resnet18", output_stride: int = 16, **overrides) -> torch.nn.Module:
        """A fresh eval-mode model with seed-0 weights (cached when no overrides are given)."""
        if not overrides:
            return _cached(self.arch, backbone, output_stride)
        torch.manual_seed(0)
        return create_model(f"{self.arch}_{backbone}", NUM_CLASSES, output_stride=output_stride, **overrides).eval()

    @pytest.mark.parametrize("output_stride", STRIDES)
    @pytest.mark.parametrize("backbone", FAST_BACKBONES)
    def test_forward_any_size(self, backbone, output_stride, image):
        model = self.model(backbone, output_stride)
        with torch.no_grad():
            out = model(image)
        assert out.shape == (2, NUM_CLASSES, HEIGHT, WIDTH)
        assert torch.isfinite(out).all()
        assert {"backbone", "aspp", "decoder"} <= {n for n, _ in model.named_children()}
        assert {"project", "fuse", "classifier"} <= {n for n, _ in model.decoder.named_children()}
        assert model.config.arch == self.arch and model.config.output_stride == output_stride

    @pytest.mark.parametrize("output_stride", STRIDES)
    @pytest.mark.parametrize("backbone", FAST_BACKBONES)
    def test_dilation(self, backbone, output_stride, image):
        model = self.model(backbone, output_stride)
        with torch.no_grad():
            feats = model.backbone(image)
        sizes = {k: tuple(v.shape[-2:]) for k, v in feats.items()}
        assert list(sizes) == ["stem", "layer1", "layer2", "layer3", "layer4"]
        assert sizes["layer1"] == (H4, W4)
        assert sizes["layer4"] == sizes["layer3"]
        assert (sizes["layer4"] == sizes["layer2"]) == (output_stride == 8)
        assert model.backbone.strides["layer4"] == output_stride
        assert {k: v.shape[1] for k, v in feats.items()} == model.backbone.channels

    @pytest.mark.parametrize("output_stride", STRIDES)
    @pytest.mark.parametrize("backbone", FAST_BACKBONES)
    def test_save_load_bit_exact(self, backbone, output_stride, image, tmp_path):
        model = self.model(backbone, output_stride)
        path = tmp_path / "model.safetensors"
        save_checkpoint(path, model, {"epoch": 3})
        loaded, info = load_checkpoint(path, num_classes=NUM_CLASSES, arch=self.arch)
        assert loaded is not model and not loaded.training
        with torch.no_grad():
            assert torch.equal(model(image), loaded(image))
        assert info["metadata"] == {"epoch": 3}
        assert info["config"] == model.config.to_dict()
        sidecar = json.loads((tmp_path / "model.safetensors.json").read_text())
        assert sidecar["format"] == "segprune-checkpoint" and sidecar["config"] == info["config"]

    @pytest.mark.parametrize("output_stride", STRIDES)
    @pytest.mark.parametrize("backbone", FAST_BACKBONES)
    def test_keep_one_is_the_unmodified_model(self, backbone, output_stride, image):
        default = self.model(backbone, output_stride)
        explicit = self.model(backbone, output_stride, decoder_keep=1.0, decoder_resize="area")
        with torch.no_grad():
            assert torch.equal(default(image), explicit(image))
        assert fuse_input_size(explicit, image) == (H4, W4)

    @pytest.mark.parametrize("mode", ["bilinear", "area"])
    @pytest.mark.parametrize("backbone", FAST_BACKBONES)
    def test_keep_half_shrinks_the_decoder_grid(self, backbone, mode, image):
        full = self.model(backbone, 16)
        half = self.model(backbone, 16, decoder_keep=0.5, decoder_resize=mode)
        half.load_state_dict(full.state_dict())  # same weights: only the grid differs
        assert fuse_input_size(half, image) == (math.ceil(0.5 * H4), math.ceil(0.5 * W4))
        with torch.no_grad():
            out = half(image)
            assert out.shape == (2, NUM_CLASSES, HEIGHT, WIDTH)
            assert not torch.equal(out, full(image))

    @pytest.mark.parametrize("backbone", FAST_BACKBONES)
    def test_trains_with_batch_one_and_two(self, backbone):
        model = copy.deepcopy(self.model(backbone, 16)).train()
        for batch in (1, 2):
            out = model(torch.randn(batch, 3, 33, 49))
            out.mean().backward()
        assert model.decoder.classifier.weight.grad is not None

    def test_checkpoint_refuses_other_classes_and_arch(self, tmp_path):
        path = tmp_path / "m.safetensors"
        save_checkpoint(path, self.model())
        with pytest.raises(CheckpointError, match=f"has {NUM_CLASSES} classes, the data has 19"):
            load_checkpoint(path, num_classes=19)
        other = "dan" if self.arch == "deeplabv3plus" else "deeplabv3plus"
        with pytest.raises(CheckpointError, match=f"is a {self.arch} model, you asked for {other}"):
            load_checkpoint(path, arch=other)

    @pytest.mark.parametrize("backbone", FAST_BACKBONES)
    def test_pruned_model_round_trip(self, backbone, image, tmp_path):
        tp = pytest.importorskip("torch_pruning")
        model = self.model(backbone, 16, aspp_channels=64, decoder_channels=64)
        pruner = tp.pruner.BasePruner(model, torch.randn(1, 3, HEIGHT, WIDTH),
                                      importance=tp.importance.MagnitudeImportance(p=1), pruning_ratio=0.25,
                                      ignored_layers=[model.decoder.classifier], round_to=8)
        pruner.step()
        assert model.decoder.fuse[0][0].out_channels == 48
        path = tmp_path / "pruned.safetensors"
        save_checkpoint(path, model)
        overrides = json.loads((tmp_path / "pruned.safetensors.json").read_text())["config"]["channel_overrides"]
        assert overrides["decoder.fuse.0.0"]["out_channels"] == 48
        assert "aspp.convs.4.1" in overrides  # the image-pooling BN was pruned with its conv
        loaded, _ = load_checkpoint(path)
        with torch.no_grad():
            assert torch.equal(model(image), loaded(image))

    @pytest.mark.parametrize("output_stride", STRIDES)
    @pytest.mark.parametrize("backbone", OTHER_BACKBONES)
    def test_other_backbones_build_on_meta(self, backbone, output_stride):
        with torch.device("meta"):
            model = create_model(f"{self.arch}_{backbone}", NUM_CLASSES, output_stride=output_stride)
            feats = model.backbone(torch.empty(1, 3, HEIGHT, WIDTH))
            out = model.decoder(model.aspp(feats["layer4"]), feats)
        assert tuple(feats["layer1"].shape[-2:]) == (H4, W4)
        assert (feats["layer4"].shape[-2:] == feats["layer2"].shape[-2:]) == (output_stride == 8)
        assert tuple(out.shape) == (1, NUM_CLASSES, H4, W4)

    @pytest.mark.slow
    @pytest.mark.parametrize("backbone", OTHER_BACKBONES)
    def test_other_backbones_save_load(self, backbone, tmp_path):
        model = self.model(backbone, 8)
        x = torch.randn(1, 3, 33, 49)
        save_checkpoint(tmp_path / "m.safetensors", model)
        loaded, _ = load_checkpoint(tmp_path / "m.safetensors")
        with torch.no_grad():
            out = model(x)
            assert out.shape == (1, NUM_CLASSES, 33, 49)
            assert torch.equal(out, loaded(x))
