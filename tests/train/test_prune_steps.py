"""Gradual pruning: ``compress_and_finetune(..., prune_steps=n)`` and its plan, checked before any work."""

from __future__ import annotations

import pytest
import torch

from segprune.compress import CompressConfig, check_compression, count_macs
from segprune.errors import ConfigError
from segprune.train import FinetuneConfig, compress_and_finetune, plan_prune_steps
from tests.helpers import tiny_model, tiny_sets

SIZE = (32, 48)


def test_the_plan_splits_the_log_macs_and_the_epochs_evenly() -> None:
    plan = plan_prune_steps(CompressConfig(target_macs=0.125), FinetuneConfig(epochs=7), 3)
    assert [round(t, 6) for t, _ in plan] == [0.5, 0.25, 0.125] and [e for _, e in plan] == [3, 2, 2]
    assert plan_prune_steps(CompressConfig(target_macs=0.4), FinetuneConfig(epochs=5), 1) == [(0.4, 5)]


@pytest.mark.parametrize("compression, epochs, steps, message", [
    (CompressConfig(target_macs=0.5), 4, 0, "--prune-steps 0 is not valid"),
    (CompressConfig(target_macs=0.5), 4, 2.0, "--prune-steps 2.0 is not valid"),
    (CompressConfig(channel_ratio=0.5), 4, 2, "--prune-steps 2 needs --target-macs"),
    (CompressConfig(target_macs=0.5), 2, 3, "at least one fine-tuning epoch per step.*--finetune-epochs 3"),
    (CompressConfig(target_macs=0.5), None, 2, "--finetune-epochs 2 or more"),
])
def test_a_plan_that_cannot_run_is_refused(compression, epochs, steps, message) -> None:
    with pytest.raises(ConfigError, match=message):
        plan_prune_steps(compression, FinetuneConfig(epochs=epochs) if epochs is not None else None, steps)


def test_an_unreachable_final_target_fails_before_the_first_step() -> None:
    """The final target is met only at the end: its floor is checked first, on a shape-only copy."""
    model = tiny_model(aspp_channels=16, decoder_channels=16)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ConfigError, match="--target-macs 0.05 of the MACs is below the .* cost with --scope decoder"):
        check_compression(model, CompressConfig(keep_freq=0.5, target_macs=0.05), SIZE)
    train, val = tiny_sets()
    # step 1's 0.1 ** 0.5 = 0.32 is reachable, the final 0.1 is below the floor of the stride-2/4 path
    # (protected, the default at --scope all): only the up-front check stops this before step 1 prunes
    with pytest.raises(ConfigError, match=r"--target-macs 0.10 of the MACs is below the 0.1\d that the classifier "
                                          r"and the --protect layers .* cost with --scope all"):
        compress_and_finetune(model, CompressConfig(target_macs=0.1, importance="l1", scope="all"),
                              FinetuneConfig(epochs=2, crop_size=SIZE), train, val, size=SIZE, prune_steps=2)
    assert model.config.decoder_keep == 1.0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    check_compression(model, CompressConfig(keep_freq=0.5, target_macs=0.6, scope="all"), SIZE)  # reachable: silent


def test_gradual_pruning_reaches_the_target_in_steps(tmp_path) -> None:
    torch.manual_seed(0)
    model = tiny_model(aspp_channels=16, decoder_channels=16)
    original = count_macs(model, SIZE).total_macs
    widths = {n: m.out_channels for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)}
    train, val = tiny_sets()
    compression = CompressConfig(keep_freq=0.5, target_macs=0.4, importance="l1", scope="all", round_to=2)
    finetuning = FinetuneConfig(epochs=3, crop_size=SIZE, lr=1e-3)
    result, stages, summary = compress_and_finetune(model, compression, finetuning, train, val, size=SIZE,
                                                    out_dir=tmp_path / "ft", prune_steps=2)
    assert [s["stage"] for s in stages] == ["original", "step 1/2 compressed", "step 1/2 fine-tuned", "compressed",
                                            "fine-tuned"]
    fractions = [s["gmacs"] / stages[0]["gmacs"] for s in stages]
    assert fractions[1] <= 0.4 ** 0.5 + 1e-9 and fractions[1] > 0.4 + 0.05  # halfway in log-MACs, not all at once
    assert fractions[3] == fractions[4] and 0.3 < fractions[4] <= 0.4
    assert result.config == compression and result.keep_freq == 0.5
    assert result.macs_before.total_macs == original and result.macs_fraction == pytest.approx(fractions[4])
    assert result.macs_after.total_macs == count_macs(model, SIZE).total_macs
    for name, (before, after) in result.pruning.channels.items():  # from the original width to the final one
        assert before == widths[name] and after == dict(model.named_modules())[name].out_channels
    assert any(after < before for before, after in result.pruning.channels.values())
    assert (tmp_path / "ft" / "step1" / "last.safetensors").is_file()
    assert (tmp_path / "ft" / "step2" / "last.safetensors").is_file() and summary is not None
