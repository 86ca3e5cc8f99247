"""Block-wise weak labels: majority, pure and soft variants, and their use in training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segprune.data import EvalTransform
from segprune.data.blocks import BlockLabelTransform, annotation_cost, block_labels
from segprune.errors import ConfigError


def test_block_majority_pure_and_soft() -> None:
    lab = torch.tensor([[0, 0, 1, 1, 2],
                        [0, 1, 1, 1, 2],
                        [255, 255, 2, 2, 2]])
    maj = block_labels(lab, 3, 2)
    assert maj.tolist() == [[0, 0, 1, 1, 2], [0, 0, 1, 1, 2], [255, 255, 2, 2, 2]]
    pure = block_labels(lab, 3, 2, "pure", purity=1.0)
    assert pure[0, 0] == 255 and pure[0, 2] == 1 and pure[2, 0] == 255
    soft = block_labels(lab, 3, 2, "soft")
    assert soft.shape == (3, 3, 5)
    assert soft[:, 0, 0].tolist() == pytest.approx([0.75, 0.25, 0.0])
    assert soft[:, 2, 0].tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ConfigError, match="block size"):
        block_labels(lab, 3, 0)
    assert annotation_cost((360, 480), 8)["blocks_per_image"] == 45 * 60


def test_block_transform_gives_block_constant_training_labels() -> None:
    rng = np.random.default_rng(0)
    mask = rng.integers(0, 4, (12, 20))
    image = rng.integers(0, 255, (12, 20, 3), dtype=np.uint8)
    _, lab = BlockLabelTransform(EvalTransform(), 4, block=4)(image, mask)
    blocks = lab.reshape(3, 4, 5, 4).permute(0, 2, 1, 3).reshape(15, 16)
    assert bool((blocks == blocks[:, :1]).all())
    with pytest.raises(ConfigError, match="soft"):
        BlockLabelTransform(EvalTransform(), 4, block=4, mode="soft")


def test_train_accepts_block_labels(tmp_path, capsys) -> None:
    from segprune.cli.main import main

    code = main(["train", "--data", "synthetic:n=4,size=32x48,classes=3", "--epochs", "1", "--batch-size", "2",
                 "--crop-size", "32x48", "--aspp-channels", "8", "--decoder-channels", "8", "--block-labels", "4",
                 "--out", str(tmp_path), "--no-progress", "--json"])
    assert code == 0
    assert '"block": 4' in capsys.readouterr().out
