"""torchvision's segmentation models through segprune: logits only, aux head dropped or kept, weights files."""

from __future__ import annotations

import pytest
import torch
from torchvision.models import segmentation as tvseg

from segprune.compress import CompressConfig, compress_
from segprune.errors import ConfigError
from segprune.models import adapter_for, load_checkpoint, load_model, logits_only_, save_checkpoint

SIZE = (64, 80)


def raw(builder: str = "fcn_resnet50", aux: bool = True) -> torch.nn.Module:
    torch.manual_seed(0)
    kwargs = {"aux_loss": aux} if not builder.startswith("lraspp") else {}
    return getattr(tvseg, builder)(weights=None, weights_backbone=None, num_classes=4, **kwargs).eval()


def test_a_dict_returning_model_is_refused_with_the_call_that_fixes_it() -> None:
    with pytest.raises(ConfigError, match=r"returns a dict .*call segprune.models.logits_only_\(model\) first"):
        adapter_for(raw())


@pytest.mark.parametrize("builder", ["fcn_resnet50", "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large"])
def test_logits_only_returns_torchvisions_out_exactly_and_stays_the_users_class(builder) -> None:
    model = raw(builder)
    x = torch.randn(2, 3, *SIZE)
    with torch.no_grad():
        expected = model(x)["out"]
        logits_only_(model)
        got = model(x)
    assert isinstance(model, type(model).__mro__[2]) and torch.equal(got, expected)
    assert getattr(model, "aux_classifier", None) is None
    assert adapter_for(model).describe(model) == f"torchvision {builder}"


def test_a_kept_aux_head_survives_the_checkpoint_but_blocks_channel_pruning(tmp_path) -> None:
    model = logits_only_(raw(), aux="keep")
    assert model.aux_classifier is not None
    save_checkpoint(tmp_path / "m.safetensors", model)
    again, _ = load_checkpoint(tmp_path / "m.safetensors")
    assert any(k.startswith("aux_classifier.") for k in again.state_dict())
    with pytest.raises(ConfigError, match=r"auxiliary head reads a backbone stage .*aux='drop'"):
        compress_(model, CompressConfig(channel_ratio=0.25, scope="all", importance="l1"), example=SIZE)
    compress_(model, CompressConfig(keep_freq=0.5), example=SIZE)  # truncation alone touches no channel


def test_weights_with_arch_tv_load_their_aux_head_and_drop_it(tmp_path) -> None:
    from safetensors.torch import save_file

    model = raw("deeplabv3_resnet50")
    save_file(model.state_dict(), str(tmp_path / "w.safetensors"))
    loaded, info = load_model(tmp_path / "w.safetensors", arch="tv:deeplabv3_resnet50", classes=4)
    assert info["family"] == "torchvision" and loaded.aux_classifier is None
    x = torch.randn(1, 3, *SIZE)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x)["out"])
    with pytest.raises(ConfigError, match="torchvision model 'fcn_mobilenet' is not one segprune takes"):
        load_model(tmp_path / "w.safetensors", arch="tv:fcn_mobilenet", classes=4)
