import pytest
import torch

from segprune.compress import TruncationConfig, truncate_
from segprune.errors import ConfigError
from segprune.models import load_checkpoint, save_checkpoint
from tests.compress.conftest import small_model


@pytest.mark.parametrize(("keep", "mode", "message"), [
    (0.0, "area", r"--keep-freq 0.0 is outside \(0, 1\]"),
    (1.5, "area", r"--keep-freq 1.5 is outside \(0, 1\]"),
    (0.5, "cubic", "--trunc-mode 'cubic' is not valid: use one of bilinear, area, spectral"),
])
def test_config_validation(keep, mode, message):
    with pytest.raises(ConfigError, match=message):
        TruncationConfig(keep, mode)


@pytest.mark.parametrize("arch", ["deeplabv3plus_resnet18", "dan_resnet18"])
def test_keep_one_is_bit_exact_and_truncation_is_recorded(arch, example, tmp_path):
    model = small_model(arch)
    with torch.no_grad():
        reference = model(example)
        assert truncate_(model, TruncationConfig(1.0, "spectral")) is model
        assert torch.equal(model(example), reference)
        truncate_(model, TruncationConfig(0.5, "spectral"))
        truncated = model(example)
    assert truncated.shape == reference.shape and not torch.equal(truncated, reference)
    assert (model.decoder.keep, model.decoder.resize) == (0.5, "spectral")
    assert (model.config.decoder_keep, model.config.decoder_resize) == (0.5, "spectral")
    save_checkpoint(tmp_path / "t.safetensors", model)
    loaded, info = load_checkpoint(tmp_path / "t.safetensors")
    assert info["config"]["decoder_keep"] == 0.5 and info["config"]["decoder_resize"] == "spectral"
    with torch.no_grad():
        assert torch.equal(loaded(example), truncated)


def test_model_without_decoder_is_refused():
    with pytest.raises(ConfigError, match="Sequential has no segprune adapter: supported are"):
        truncate_(torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1)), TruncationConfig(0.5))
    with pytest.raises(ConfigError, match="needs a TruncationConfig"):
        truncate_(small_model(), 0.5)
