"""Tiny models and synthetic data for tests, sized for a 2-core CI machine."""

from __future__ import annotations

TINY_DATA = "synthetic:n={n},n_val={n_val},size=32x48,classes=3,seed=0"


def tiny_model(num_classes: int = 3, arch: str = "deeplabv3plus_resnet18", **overrides):
    """A narrow model whose forward on 32x48 takes milliseconds."""
    from segprune.models import create_model

    overrides = {"aspp_channels": 8, "decoder_channels": 8, **overrides}
    return create_model(arch, num_classes=num_classes, **overrides)


def tiny_sets(n_train: int = 8, n_val: int = 5):
    from segprune.data import EvalTransform, TrainTransform, build_dataset

    train = build_dataset(TINY_DATA.format(n=n_train, n_val=n_val), "train",
                          transform=TrainTransform((32, 48), scale_range=(0.75, 1.25)))
    val = build_dataset(TINY_DATA.format(n=n_train, n_val=n_val), "val", transform=EvalTransform())
    return train, val
