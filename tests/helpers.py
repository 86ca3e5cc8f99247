"""Tiny models and synthetic data for tests, sized for a 2-core CI machine."""

from __future__ import annotations

TINY_DATA = "synthetic:n={n},n_val={n_val},size=32x48,classes=3,seed=0"


def tiny_model(num_classes: int = 3, arch: str = "deeplabv3plus_resnet18", **overrides):
    """A narrow model whose forward on 32x48 takes milliseconds."""
    from segprune.models import create_model

    overrides = {"aspp_channels": 8, "decoder_channels": 8, **overrides}
    return create_model(arch, num_classes=num_classes, **overrides)


def two_conv_model():
    """A stem conv (``.stem``, left unquantized by int8: it reads the network input) and one conv (``.conv``).

    Exports, quantizes and checks in about a second: for tests of the export machinery itself.
    """
    import torch
    from torch import nn

    class TwoConvs(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Conv2d(3, 8, 3, padding=1)
            self.conv = nn.Conv2d(8, 4, 3, padding=1)

        def forward(self, x):
            return self.conv(torch.relu(self.stem(x)))

    return TwoConvs()


def tiny_sets(n_train: int = 8, n_val: int = 5):
    from segprune.data import EvalTransform, TrainTransform, build_dataset

    train = build_dataset(TINY_DATA.format(n=n_train, n_val=n_val), "train",
                          transform=TrainTransform((32, 48), scale_range=(0.75, 1.25)))
    val = build_dataset(TINY_DATA.format(n=n_train, n_val=n_val), "val", transform=EvalTransform())
    return train, val


def train_tiny(out_dir, epochs: int = 6, n_train: int = 24):
    """A tiny model trained for a few seconds on synthetic scenes, so mIoU means something; returns its checkpoint."""
    import torch

    from segprune.train import TrainConfig, fit, seed_everything

    train, val = tiny_sets(n_train=n_train, n_val=8)
    seed_everything(0)
    model = tiny_model(decoder_keep=0.5, decoder_resize="bilinear")  # truncated, as deployed models are
    cfg = TrainConfig(epochs=epochs, batch_size=8, optimizer="adamw", lr=5e-3, crop_size=(32, 48),
                      scale_range=(0.75, 1.25), eval_every=epochs, seed=0)
    with torch.random.fork_rng():
        fit(model, train, val, cfg, out_dir, progress=False)
    return out_dir / "last.safetensors"


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """Run ``segprune`` in-process; returns (exit code, stdout, stderr)."""
    import contextlib
    import io

    from segprune.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse refuses an option while parsing
            code = exc.code
    return code, out.getvalue(), err.getvalue()
