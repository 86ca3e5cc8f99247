import json

import pytest

from segprune.errors import ConfigError
from segprune.models import ModelConfig


def test_round_trip_is_json_safe():
    cfg = ModelConfig("dan", "mobilenet_v2", 11, output_stride=8, atrous_rates=(4, 8, 12),
                      low_level_channels=(32, 64), decoder_keep=0.25, decoder_resize="area",
                      channel_overrides={"decoder.classifier": {"type": "Conv2d", "in_channels": 8,
                                                                "out_channels": 11, "groups": 1}})
    data = json.loads(json.dumps(cfg.to_dict()))
    assert data["atrous_rates"] == [4, 8, 12]
    assert ModelConfig.from_dict(data) == cfg


def test_resolved_fills_defaults_by_stride_and_arch():
    assert ModelConfig("deeplabv3plus", "resnet18", 3).resolved().atrous_rates == (6, 12, 18)
    assert ModelConfig("deeplabv3plus", "resnet18", 3, output_stride=8).resolved().atrous_rates == (12, 24, 36)
    assert ModelConfig("deeplabv3plus", "resnet18", 3).resolved().low_level_channels == 48
    assert ModelConfig("dan", "resnet18", 3).resolved().low_level_channels == (48, 96)
    assert ModelConfig("dan", "resnet18", 3, low_level_channels=32).resolved().low_level_channels == (32, 32)


def test_unknown_and_missing_keys():
    with pytest.raises(ConfigError, match=r"unknown keys \['decoder_kep'\]; valid keys are .*decoder_keep"):
        ModelConfig.from_dict({"arch": "dan", "backbone": "resnet18", "num_classes": 2, "decoder_kep": 0.5})
    with pytest.raises(ConfigError, match=r"missing keys \['num_classes'\]"):
        ModelConfig.from_dict({"arch": "dan", "backbone": "resnet18"})
    with pytest.raises(ConfigError, match="must be a JSON object"):
        ModelConfig.from_dict([1, 2])


@pytest.mark.parametrize(("key", "value", "message"), [
    ("arch", "unet", "arch 'unet' is not valid: use one of deeplabv3plus, dan"),
    ("backbone", "resnet9", "backbone 'resnet9' is not valid: use one of resnet18, resnet34"),
    ("num_classes", 0, "num_classes 0 is not valid: use a positive int"),
    ("num_classes", True, "num_classes True is not valid"),
    ("output_stride", 32, "output_stride 32 is not valid: use one of 8, 16"),
    ("output_stride", 16.0, "output_stride 16.0 is not valid"),
    ("atrous_rates", [6, 12], r"atrous_rates \(6, 12\) is not valid: give 3 positive ints"),
    ("aspp_channels", -1, "aspp_channels -1 is not valid"),
    ("low_level_channels", [1, 2], r"low_level_channels \(1, 2\) is not valid for deeplabv3plus"),
    ("decoder_keep", 0, r"decoder_keep 0.0 is outside \(0, 1\]"),
    ("decoder_keep", 1.5, r"decoder_keep 1.5 is outside \(0, 1\]"),
    ("decoder_keep", float("nan"), r"decoder_keep nan is outside \(0, 1\]"),
    ("decoder_resize", "nearest", "decoder_resize 'nearest' is not valid: use one of bilinear, area"),
    ("channel_overrides", {"a": 1}, "channel_overrides must map module names to dicts"),
    ("backbone_weights", 3, "backbone_weights 3 is not valid"),
])
def test_bad_values_name_the_key_and_the_fix(key, value, message):
    data = {"arch": "deeplabv3plus", "backbone": "resnet18", "num_classes": 4, key: value}
    with pytest.raises(ConfigError, match=message):
        ModelConfig.from_dict(data)
