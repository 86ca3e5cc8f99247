import math

import pytest
import torch

from segprune.compress import build_importance, measure_channel_energy
from segprune.compress.importance import SpectralImportance, SpectralMagnitudeImportance, block_of
from segprune.errors import ConfigError
from tests.compress.conftest import small_model

tp = pytest.importorskip("torch_pruning")


def test_blocks_and_scopes():
    model = small_model()
    assert block_of(model, "decoder.fuse.0.0") == "decoder.fuse.0"  # ConvBNReLU: after BN + ReLU
    assert block_of(model, "aspp.convs.4.0") == "aspp.convs.4"  # the pooling branch, upsampled
    assert block_of(model, "aspp.project.0") == "aspp.project"
    assert block_of(model, "backbone.layer1.0.conv1") == "backbone.layer1.0.bn1"  # ResNet: the BN after it
    energy = measure_channel_energy(model, [torch.randn(1, 3, 64, 96)], 0.5, "head")
    assert set(energy) == {"decoder.project.0", "decoder.fuse.0.0", "decoder.fuse.1.0", "aspp.project.0",
                           *(f"aspp.convs.{i}.0" for i in range(5))}
    assert all(e.shape == (16,) for e in energy.values())


def test_keep_one_is_activation_energy_and_coarse_layers_keep_more(calib):
    model = small_model()
    seen = {}
    hooks = [model.get_submodule(n).register_forward_hook(lambda m, a, out, n=n: seen.setdefault(n, []).append(out))
             for n in ("decoder.fuse.1", "aspp.convs.1")]
    energy = measure_channel_energy(model, calib, 1.0, "head")
    for h in hooks:
        h.remove()
    direct = torch.cat(seen["decoder.fuse.1"]).double().square().mean((2, 3)).mean(0)
    assert torch.allclose(energy["decoder.fuse.1.0"], direct, rtol=1e-6)  # mean squared activation
    quarter = measure_channel_energy(model, calib, 0.25, "head")
    # ASPP (OS16) at keep 0.25 of the OS4 band keeps all of its own band; the decoder (OS4) does not
    assert torch.allclose(quarter["aspp.convs.1.0"], energy["aspp.convs.1.0"])
    assert (quarter["decoder.fuse.1.0"] < energy["decoder.fuse.1.0"]).any()
    assert (quarter["decoder.fuse.1.0"] <= energy["decoder.fuse.1.0"] + 1e-12).all()


def _hand_made(module, args, out):
    """fuse.0 output by hand: channel 0 a checkerboard, channel 1 a cosine of equal energy, others constant."""
    h, w = out.shape[-2:]
    y, x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    feats = torch.full_like(out, 2.0)
    feats[:, 0] = ((-1.0) ** (x + y)).to(out)
    feats[:, 1] = math.sqrt(2) * torch.cos(2 * math.pi * x / w).to(out)
    return feats


def test_spectral_prunes_high_frequency_first_where_magnitude_cannot_tell(example):
    model = small_model()
    conv, bn, nxt = model.decoder.fuse[0][0], model.decoder.fuse[0][1], model.decoder.fuse[1][0]
    with torch.no_grad():  # channels 0 and 1 identical in every weight magnitude sees
        conv.weight[1] = conv.weight[0]
        bn.weight[1] = bn.weight[0]
        nxt.weight[:, 1] = nxt.weight[:, 0]
        bn.running_mean.copy_(torch.arange(16.0))  # a tag to tell the channels apart after pruning
    handle = model.decoder.fuse[0].register_forward_hook(_hand_made)
    spectral = SpectralImportance.measure(model, [example], keep=0.5, scope="decoder")
    handle.remove()
    graph = tp.DependencyGraph().build_dependency(model, example)
    group = graph.get_pruning_group(conv, tp.prune_conv_out_channels, list(range(16)))
    scores = spectral(group)
    assert scores.shape == (16,) and scores.argmin() == 0 and scores[0] < 1e-6 * scores[1]
    magnitude = tp.importance.GroupMagnitudeImportance(p=2)(group)
    assert magnitude[0] == magnitude[1]  # magnitude sees two equal channels
    pruner = tp.pruner.BasePruner(model, example, importance=spectral, pruning_ratio=1 / 16,
                                  ignored_layers=[m for n, m in model.named_modules()
                                                  if isinstance(m, torch.nn.Conv2d) and n != "decoder.fuse.0.0"])
    pruner.step()
    assert conv.out_channels == 15 and 0.0 not in bn.running_mean and 1.0 in bn.running_mean


def test_spectral_l1_is_the_in_band_share_times_magnitude(example):
    """Checkerboard: no energy in band, scores 0; constant channels: all of it, scores = L1."""
    model = small_model()
    conv = model.decoder.fuse[0][0]
    handle = model.decoder.fuse[0].register_forward_hook(_hand_made)
    hybrid = SpectralMagnitudeImportance.measure(model, [example], keep=0.5, scope="decoder")
    handle.remove()
    graph = tp.DependencyGraph().build_dependency(model, example)
    group = graph.get_pruning_group(conv, tp.prune_conv_out_channels, list(range(16)))
    scores, l1 = hybrid(group), tp.importance.GroupMagnitudeImportance(p=1)(group)
    assert scores[0] < 1e-6 * l1[0]  # all of the checkerboard's energy is out of band
    torch.testing.assert_close(scores[1:], l1[1:], rtol=1e-5, atol=0)  # cosine and constants: all in band


def test_build_importance_names_and_errors(calib):
    model = small_model()
    assert isinstance(build_importance("l1"), tp.importance.GroupMagnitudeImportance)
    assert isinstance(build_importance("bn"), tp.importance.BNScaleImportance)
    assert isinstance(build_importance("spectral", model, calib[:1]), SpectralImportance)
    assert isinstance(build_importance("spectral-l1", model, calib[:1]), SpectralMagnitudeImportance)
    taylor = build_importance("taylor", model, calib[:1])
    assert isinstance(taylor, tp.importance.GroupTaylorImportance)
    assert model.decoder.fuse[0][0].weight.grad is not None  # the backward pass Taylor needs
    with pytest.raises(ConfigError, match="--importance 'fisher' is not valid: use one of spectral, spectral-l1, l1, l2, bn, taylor"):
        build_importance("fisher")
    with pytest.raises(ConfigError, match="--importance taylor needs calibration batches"):
        build_importance("taylor", model)
    with pytest.raises(ConfigError, match="got no calibration images"):
        measure_channel_energy(model, [], 0.5)


def test_layers_the_forward_never_runs_rank_at_zero_energy():
    """SMP builds every ResNet stage but an encoder_depth=3 model never runs layer3/layer4: their convs get no
    spectra, so they rank at zero (they cost no MACs) instead of failing the measurement."""
    smp = pytest.importorskip("segmentation_models_pytorch", reason="SMP not installed: pip install 'segprune[smp]'")
    torch.manual_seed(0)
    model = smp.Unet(encoder_name="resnet18", encoder_weights=None, classes=3, encoder_depth=3,
                     decoder_channels=(32, 16, 8)).eval()
    energy = measure_channel_energy(model, [torch.randn(2, 3, 64, 64)], keep=0.5, scope="all", fraction=True)
    unused = [name for name in energy if name.startswith("encoder.layer4.")]
    assert unused and all(float(energy[name].abs().sum()) == 0.0 for name in unused)
    assert float(energy["encoder.layer1.0.conv1"].sum()) > 0
