"""``compress_``: one call for truncation + pruning, validated before the model changes."""

from __future__ import annotations

import pytest
import torch

from segprune.compress import CompressConfig, PruneConfig, compress_, count_macs, prune_
from segprune.errors import ConfigError
from tests.helpers import tiny_model

SIZE = (32, 48)


@pytest.mark.parametrize("kwargs, message", [
    ({"keep_freq": float("nan")}, r"--keep-freq nan is outside \(0, 1\]"),
    ({"keep_freq": 0.0}, r"--keep-freq 0.0 is outside \(0, 1\]"),
    ({"channel_ratio": float("inf")}, "--channel-ratio inf is not a finite number"),
    ({"target_macs": float("nan")}, "--target-macs nan is not a finite number"),
    ({"channel_ratio": 0.5, "target_macs": 0.5}, "not both"),
    ({"target_macs": 1.5}, r"--target-macs 1.5 is outside \(0, 1\]"),
    ({"trunc_mode": "nearest"}, "--trunc-mode 'nearest' is not valid"),
    ({"scope": "everything"}, "--scope 'everything' is not valid"),
    ({"importance": "magic"}, "--importance 'magic' is not valid"),
])
def test_config_is_checked_before_anything_runs(kwargs, message) -> None:
    with pytest.raises(ConfigError, match=message):
        CompressConfig(**kwargs)


def test_truncation_alone_and_the_report() -> None:
    model = tiny_model(aspp_channels=16, decoder_channels=16)
    result = compress_(model, CompressConfig(keep_freq=0.5, trunc_mode="spectral"), example=SIZE)
    assert result.pruning is None and result.keep_freq == 0.5 and result.trunc_mode == "spectral"
    assert model.config.decoder_keep == 0.5 and model.config.decoder_resize == "spectral"
    assert result.macs_fraction < 1.0 and result.to_dict()["channel_ratio"] == 0.0


def test_one_call_equals_truncating_inside_prune() -> None:
    torch.manual_seed(0)
    a = tiny_model(aspp_channels=16, decoder_channels=16)
    b = tiny_model(aspp_channels=16, decoder_channels=16)
    b.load_state_dict(a.state_dict())
    result = compress_(a, CompressConfig(keep_freq=0.5, target_macs=0.7, scope="all", importance="l1", round_to=4),
                       example=SIZE)
    prune_(b, PruneConfig(target_macs=0.7, scope="all", importance="l1", round_to=4, keep_freq=0.5, trunc_mode="area"),
           torch.zeros(1, 3, *SIZE))
    assert result.macs_after.total_macs == count_macs(b, SIZE).total_macs
    x = torch.randn(1, 3, *SIZE)
    with torch.no_grad():
        assert torch.equal(a.eval()(x), b.eval()(x))
    assert result.macs_fraction <= 0.7


def test_a_truncated_model_is_never_widened_and_failures_leave_it_unchanged() -> None:
    model = tiny_model(decoder_keep=0.5)
    with pytest.raises(ConfigError, match="already runs its decoder at keep-freq 0.5; compressing cannot widen it"):
        compress_(model, CompressConfig(keep_freq=0.75), example=SIZE)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ConfigError, match="needs calibration batches"):
        compress_(model, CompressConfig(keep_freq=0.25, channel_ratio=0.5), example=SIZE)
    assert model.config.decoder_keep == 0.5
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
