"""``suggest_atrous_rates`` (the derived r ~ min(H, W) / (6 * OS) rule) and ``--atrous-rates auto``."""

from __future__ import annotations

import json
import math

import pytest
import torch

from segprune.cli.common import build_or_load_model, model_overrides
from segprune.cli.main import build_parser, main
from segprune.errors import ConfigError
from segprune.models import ModelConfig, create_model, load_checkpoint, save_checkpoint, suggest_atrous_rates


@pytest.mark.parametrize(("size", "stride", "rates"), [
    ((513, 513), 16, (5, 10, 15)),   # 513/96 = 5.34: rounding gives 5, not DeepLab's hand-tuned 6
    ((513, 513), 8, (11, 22, 33)),   # 513/48 = 10.69
    ((360, 480), 16, (4, 8, 12)),    # CamVid: 3.75 -> 4
    ((360, 480), 8, (8, 16, 24)),    # 7.5 -> 8, then exact multiples (not RESEARCH's per-multiple 8, 15, 23)
    ((480, 360), 8, (8, 16, 24)),    # the short side decides, whichever axis it is
    ((896, 896), 8, (19, 38, 57)),   # iSAID
    ((128, 128), 1, (21, 42, 63)),   # STARE / CHASE_DB1 U-Net head at OS1
])
def test_sanity_checks_from_research(size, stride, rates) -> None:
    assert suggest_atrous_rates(size, stride) == rates


def test_base_rate_rounds_half_up_and_branches_are_its_multiples() -> None:
    assert suggest_atrous_rates((240, 320), 16) == (3, 6, 9)        # 2.5 -> 3 (banker's rounding would give 2)
    assert suggest_atrous_rates((360, 480), 16, n_branches=4) == (3, 6, 9, 12)   # 360 / 128 = 2.81
    assert suggest_atrous_rates((360, 480), 16, n_branches=1) == (11,)           # 360 / 32 = 11.25


def test_tiny_inputs_floor_at_one_and_clamp_below_the_feature_map_side() -> None:
    assert suggest_atrous_rates((64, 96), 16) == (1, 2, 3)
    assert suggest_atrous_rates((48, 64), 16) == (1, 2, 2)    # 3x4 feature map: a rate of 3 would be a 1x1 conv
    assert suggest_atrous_rates((32, 48), 16) == (1, 1, 1)
    for side in range(1, 400, 7):
        for stride in (8, 16):
            rates = suggest_atrous_rates((side, side + 5), stride)
            assert min(rates) >= 1 and max(rates) <= max(1, math.ceil(side / stride) - 1)
            assert list(rates) == sorted(rates)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"input_size": (360, 480), "output_stride": 16, "mode": "per-axis"}, "use 'min'"),
    ({"input_size": (360,), "output_stride": 16}, r"give \(H, W\) as two positive ints"),
    ({"input_size": (0, 480), "output_stride": 16}, "input size"),
    ({"input_size": (360, 480), "output_stride": 0}, "output_stride 0 is not valid"),
    ({"input_size": (360, 480), "output_stride": 16, "n_branches": 0}, "n_branches 0 is not valid"),
])
def test_bad_arguments_are_config_errors(kwargs, message) -> None:
    with pytest.raises(ConfigError, match=message):
        suggest_atrous_rates(**kwargs)


def test_create_model_resolves_auto_and_records_the_rule() -> None:
    with torch.device("meta"):
        model = create_model("deeplabv3plus_resnet18", 3, atrous_rates="auto", input_size=(360, 480))
        os8 = create_model("dan_resnet18", 3, atrous_rates="auto", input_size=(360, 480), output_stride=8)
        explicit = create_model("deeplabv3plus_resnet18", 3, atrous_rates=(6, 12, 18), input_size=(360, 480))
    assert model.config.atrous_rates == (4, 8, 12) and model.config.atrous_rule == "auto:min:360x480"
    assert [m[0].dilation for m in model.aspp.convs[1:4]] == [(4, 4), (8, 8), (12, 12)]
    assert os8.config.atrous_rates == (8, 16, 24)
    assert explicit.config.atrous_rates == (6, 12, 18) and explicit.config.atrous_rule is None


def test_auto_without_a_size_names_the_option() -> None:
    with pytest.raises(ConfigError, match=r"needs the training crop size: pass input_size=\(H, W\).*--input-size"):
        create_model("deeplabv3plus_resnet18", 3, atrous_rates="auto")
    with pytest.raises(ConfigError, match="'auto' must be resolved before building"):
        ModelConfig.from_dict({"arch": "dan", "backbone": "resnet18", "num_classes": 3, "atrous_rates": "auto"})
    with pytest.raises(ConfigError, match="unknown model options \\['atrous_rule'\\]"):
        create_model("dan_resnet18", 3, atrous_rule="auto:min:1x1")


def test_configs_without_the_rule_read_and_write_as_before(tmp_path) -> None:
    old = {"arch": "deeplabv3plus", "backbone": "resnet18", "num_classes": 3, "atrous_rates": [6, 12, 18]}
    cfg = ModelConfig.from_dict(old)
    assert cfg.atrous_rule is None and "atrous_rule" not in cfg.to_dict()
    auto = ModelConfig.from_dict({**old, "atrous_rates": [4, 8, 12], "atrous_rule": "auto:min:360x480"})
    assert ModelConfig.from_dict(json.loads(json.dumps(auto.to_dict()))) == auto
    model = create_model("deeplabv3plus_resnet18", 3, atrous_rates="auto", input_size=(180, 240),
                         aspp_channels=8, decoder_channels=8)
    loaded, info = load_checkpoint(save_checkpoint(tmp_path / "auto.safetensors", model))
    assert loaded.config.atrous_rates == (2, 4, 6) and info["config"]["atrous_rule"] == "auto:min:180x240"


def _train_args(*extra: str):
    return build_parser().parse_args(["train", "--data", "synthetic:n=2", *extra])


def test_cli_auto_uses_the_training_crop(capsys) -> None:
    args = _train_args("--atrous-rates", "auto", "--crop-size", "180x240")
    assert model_overrides(args) == {"atrous_rates": "auto", "input_size": (180, 240)}
    with torch.device("meta"):
        model = build_or_load_model(args, 3)
    assert model.config.atrous_rates == (2, 4, 6)
    assert "--atrous-rates auto: 2,4,6 for 180x240 inputs at OS16" in capsys.readouterr().err
    assert model_overrides(_train_args("--atrous-rates", "6,12,18")) == {"atrous_rates": (6, 12, 18)}
    with pytest.raises(SystemExit):
        _train_args("--atrous-rates", "6,twelve")
    assert "or auto" in capsys.readouterr().err


def test_train_with_auto_rates_end_to_end(tmp_path, capsys) -> None:
    run = tmp_path / "run"
    code = main(["train", "--data", "synthetic:n=2,size=64x96,classes=3", "--epochs", "1", "--batch-size", "2",
                 "--crop-size", "64x96", "--atrous-rates", "auto", "--aspp-channels", "8", "--decoder-channels", "8",
                 "--out", str(run), "--no-progress", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"]["atrous_rates"] == [1, 2, 3] and report["model"]["atrous_rule"] == "auto:min:64x96"
    model, _ = load_checkpoint(run / "last.safetensors")
    assert model.config.atrous_rates == (1, 2, 3)
