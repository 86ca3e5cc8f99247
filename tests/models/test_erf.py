"""Effective receptive field: the OpenERF protocol, its summary numbers, and ``segprune erf``."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from segprune.cli.main import main
from segprune.errors import ConfigError
from segprune.models import save_checkpoint
from segprune.models.erf import effective_receptive_field, mass_radius, outside_central_half
from tests.helpers import tiny_model

SIZE = (64, 96)


def _images(n: int = 2, size=SIZE, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(3, *size, generator=g) for _ in range(n)]


def _conv_net(layers: int) -> nn.Module:
    torch.manual_seed(0)
    mods: list[nn.Module] = []
    for i in range(layers):
        mods += [nn.Conv2d(3 if i == 0 else 4, 4, 3, padding=1), nn.ReLU()]
    net = nn.Sequential(*mods[:-1])
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            m.weight.data.abs_()  # positive weights: every tap passes a positive gradient
    return net


def test_one_conv_is_confined_to_the_3x3_neighbourhood() -> None:
    net = _conv_net(1)
    erf = effective_receptive_field(net, _images())
    assert erf.map.shape == SIZE and erf.centre == (32.0, 48.0) and erf.images == 2
    assert float(erf.map.sum()) == pytest.approx(1.0) and float(erf.map.min()) >= 0
    outside = erf.map.clone()
    outside[31:34, 47:50] = 0
    assert float(outside.sum()) == 0
    assert erf.radius_90 <= 1.5 and erf.radius_50 <= erf.radius_90
    assert erf.outside_central_half == 0


def test_parameters_get_no_gradient_and_modes_are_restored() -> None:
    net = _conv_net(3).train()
    effective_receptive_field(net, torch.stack(_images(2)))   # a (B, 3, H, W) batch is split into singles
    assert net.training and all(p.requires_grad and p.grad is None for p in net.parameters())


def test_deeplab_reaches_further_than_three_convs() -> None:
    small = effective_receptive_field(_conv_net(3), _images())
    assert small.radius_90 <= 3 * 2**0.5
    deeplab = effective_receptive_field(tiny_model(output_stride=16), _images())
    assert deeplab.radius_90 > 2 * small.radius_90
    assert deeplab.outside_central_half > small.outside_central_half
    assert float(deeplab.map.sum()) == pytest.approx(1.0) and float(deeplab.map.min()) >= 0


def test_module_target_uses_its_cell_centre() -> None:
    erf = effective_receptive_field(tiny_model(), _images(1), target="aspp")   # 4x6 map at OS16
    assert erf.centre == (2 * 16 + 7.5, 3 * 16 + 7.5) and erf.target == "aspp"
    with pytest.raises(ConfigError, match="not a module of this model: use 'logits' or a name .* e.g. aspp"):
        effective_receptive_field(tiny_model(), _images(1), target="asp")


def test_summary_numbers_on_hand_made_maps() -> None:
    erf = torch.zeros(21, 21, dtype=torch.float64)
    erf[10, 10], erf[13, 14] = 0.6, 0.4           # second blob 5 px away
    assert mass_radius(erf, (10.0, 10.0), 0.5) == 0
    assert mass_radius(erf, (10.0, 10.0), 0.9) == pytest.approx(5.0)
    assert outside_central_half(erf) == 0
    erf[0, 0] = 1.0
    assert outside_central_half(erf) == pytest.approx(0.5)


def test_mixed_sizes_and_dead_models_are_one_line_errors() -> None:
    with pytest.raises(ConfigError, match=r"differ in size .*--input-size HxW"):
        effective_receptive_field(_conv_net(1), [*_images(1), *_images(1, size=(32, 48))])
    dead = _conv_net(1)
    dead[0].weight.data.neg_()
    with pytest.raises(ConfigError, match="no positive input gradient"):
        effective_receptive_field(dead, _images(1))


def test_erf_command_writes_json_and_png(tmp_path, capsys) -> None:
    ckpt = save_checkpoint(tmp_path / "tiny.safetensors", tiny_model())
    out = tmp_path / "erf"
    code = main(["erf", str(ckpt), "--data", "synthetic:n=2,size=64x96,classes=3", "--split", "train",
                 "--images", "2", "--out", str(out), "--no-progress", "--log-scale",
                 "--report", str(tmp_path / "report.json")])
    printed = capsys.readouterr().out
    assert code == 0 and "r90 px" in printed and "atrous rates 6,12,18 at OS16" in printed
    report = json.loads((out / "erf.json").read_text())
    assert report["schema"] == "segprune.erf/1" and report["images"] == 2 and report["image_size"] == [64, 96]
    assert report["centre"] == [32.0, 48.0] and 0 < report["radius_50"] <= report["radius_90"]
    assert json.loads((tmp_path / "report.json").read_text())["radius_90"] == report["radius_90"]
    assert (out / "erf.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]    # no temp files left behind
    code = main(["erf", str(ckpt), "--data", "synthetic:n=2,size=64x96,classes=3", "--images", "1",
                 "--input-size", "32x48", "--out", str(out), "--no-progress", "--no-plots", "--json"])
    assert code == 0 and json.loads(capsys.readouterr().out)["image_size"] == [32, 48]


def test_erf_command_user_errors_exit_2(tmp_path, capsys) -> None:
    ckpt = save_checkpoint(tmp_path / "tiny.safetensors", tiny_model())
    code = main(["erf", str(ckpt), "--data", "synthetic:n=2,size=64x96,classes=3", "--target", "nope",
                 "--out", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "nope" in err and "Traceback" not in err
