import pytest
import torch

from segprune.errors import ConfigError
from segprune.models import BACKBONES, DAN, DeepLabV3Plus, ModelConfig, build_model, create_model, list_models


def test_list_models_covers_every_arch_and_backbone():
    names = list_models()
    assert len(names) == 12 and len(set(names)) == 12
    assert all(f"deeplabv3plus_{b}" in names and f"dan_{b}" in names for b in BACKBONES)


def test_create_model_types_and_overrides():
    with torch.device("meta"):
        dan = create_model("dan_mobilenet_v3_large", 3, atrous_rates=[4, 8, 12], decoder_keep=0.5)
        dlv3 = create_model("deeplabv3plus_resnet18", 3)
    assert isinstance(dan, DAN) and isinstance(dlv3, DeepLabV3Plus)
    assert dan.config.atrous_rates == (4, 8, 12) and dan.config.decoder_keep == 0.5
    assert [m[0].dilation for m in dan.aspp.convs[1:4]] == [(4, 4), (8, 8), (12, 12)]


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="unknown model 'deeplabv3_resnet18': use one of deeplabv3plus_resnet18, "):
        create_model("deeplabv3_resnet18", 3)


def test_unknown_override_names_the_valid_keys():
    with pytest.raises(ConfigError, match=r"unknown model options \['stride'\] .* valid ones are output_stride, "):
        create_model("dan_resnet18", 3, stride=8)


def test_bad_override_value_and_wrong_class():
    with pytest.raises(ConfigError, match="output_stride 4 is not valid"):
        create_model("dan_resnet18", 3, output_stride=4)
    with pytest.raises(ConfigError, match="build_model needs a ModelConfig"):
        build_model({"arch": "dan"})
    with pytest.raises(ConfigError, match="DAN was given a config for arch 'deeplabv3plus'"):
        DAN(ModelConfig("deeplabv3plus", "resnet18", 3))
