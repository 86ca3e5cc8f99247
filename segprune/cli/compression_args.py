"""The compression options ``prune`` and ``compress`` share: declared once, turned into configs once.

Both commands take the same truncation, channel-pruning and fine-tuning options with the
same spellings and checks; only a few defaults differ (``compress`` distils and fine-tunes
by default, and takes its band from the label spectrum unless ``--keep-freq`` is given).
"""

from __future__ import annotations

import argparse

from segprune.choices import IMPORTANCES, SCOPES
from segprune.cli.common import (
    MODEL_SOURCE_HELP,
    add_data_args,
    add_source_args,
    nonneg_int,
    parse_size,
    positive_int,
)


def add_model_and_splits(parser: argparse.ArgumentParser, *, model: str, train: str, val: str) -> None:
    """MODEL, how to read it, ``--data`` and the two splits: ``model``, ``train`` and ``val`` say what each is for."""
    parser.add_argument("checkpoint", metavar="MODEL", help=f"{model}: {MODEL_SOURCE_HELP.removeprefix('the model: ')}")
    add_source_args(parser)
    add_data_args(parser)
    parser.add_argument("--train-split", default="train", help=f"split for {train}")
    parser.add_argument("--val-split", default="val", help=f"split for {val}")


def add_compression_args(parser: argparse.ArgumentParser, *, energy_fallback: float | None = None,
                         kd: float = 0.0, finetune_epochs: int = 0,
                         crop_fallback: str = "--input-size, or 96x128") -> None:
    """The truncation, channel-pruning and fine-tuning groups; ``energy_fallback`` is ``--energy`` without
    ``--keep-freq`` (None: no truncation unless asked)."""
    trunc = parser.add_argument_group("feature truncation")
    trunc.add_argument("--keep-freq", type=float, default=None, metavar="F",
                       help="fraction of the decoder's frequency band kept per axis, in (0, 1]; the decoder "
                            "grid becomes ceil(F*H/4) x ceil(F*W/4) and its convolutions cost about F^2")
    trunc.add_argument("--energy", type=float, default=None, metavar="TAU",
                       help="instead of --keep-freq: keep the band holding this fraction of the train labels' "
                            "non-DC energy (e.g. 0.95)" + (f"; without --keep-freq: {energy_fallback}"
                                                           if energy_fallback is not None else ""))
    trunc.add_argument("--trunc-mode", choices=("area", "bilinear", "spectral"), default="area",
                       help="area/bilinear resampling, or spectral: exact DCT band-limiting as two MatMuls")
    prune = parser.add_argument_group("channel pruning")
    prune.add_argument("--channel-ratio", type=float, default=None, metavar="R",
                       help="fraction of the channels removed from each prunable layer in scope, in [0, 1)")
    prune.add_argument("--target-macs", type=float, default=None, metavar="X",
                       help="instead of --channel-ratio: the fraction of the original MACs to reach (solved by search)")
    prune.add_argument("--importance", choices=IMPORTANCES, default="spectral-l1",
                       help="channel ranking: the share of a channel's energy inside the kept band times its L1 "
                            "weight magnitude (spectral-l1; on CamVid at uniform widths with --scope all behind l1 from a "
                            "quarter to half the MACs; with the default --protect fine both give one model there: "
                            "docs/results.md); activation "
                            "energy inside the kept band alone (spectral); weight magnitude (l1, l2), BN scale "
                            "(bn), first-order Taylor (taylor)")
    prune.add_argument("--scope", choices=SCOPES, default="decoder",
                       help="layers that may lose channels: decoder, head (ASPP + decoder) or all (+ backbone)")
    prune.add_argument("--protect", default=None, metavar="MODULES",
                       help="comma-separated modules in --scope that keep all their channels, the rest sharing the "
                            "pruning (widths per stage; e.g. decoder.project: the skip projection costs 0.1%% of "
                            "DeepLabV3+'s MACs). 'fine' names the stride-2/4 path found from the model's shapes (the "
                            "stem, the encoder's first stage, the skip projection), 'none' asks for uniform widths. "
                            "Default: 'fine' with --scope all (on CamVid ahead of uniform spectral-l1 widths on 8 of 9 "
                            "paired seeds, level with uniform l1: docs/results.md, 'Widths per stage'), 'none' with the "
                            "narrower scopes. A residual stage's shared channels stay when any of its convs is named")
    prune.add_argument("--round-to", type=positive_int, default=8, help="keep channel counts multiples of this (tensor cores)")
    prune.add_argument("--prune-steps", type=positive_int, default=1, metavar="N",
                       help="prune gradually: N rounds of pruning, each followed by its share of --finetune-epochs, "
                            "each removing the same fraction of what is left of the MACs (needs --target-macs and "
                            "--finetune-epochs >= N; 1: prune once, then fine-tune; 2 lost 0.6 and 2.9 mIoU to "
                            "one-shot at 8 epochs on CamVid, docs/results.md)")
    prune.add_argument("--calib-images", type=positive_int, default=32, help="train images used to measure channel spectra")
    ft = parser.add_argument_group("fine-tuning")
    ft.add_argument("--finetune-epochs", type=nonneg_int, default=finetune_epochs, metavar="N",
                    help="fine-tuning epochs (0 skips)")
    ft.add_argument("--batch-size", type=positive_int, default=8, help="images per fine-tuning step")
    ft.add_argument("--lr", type=float, default=1e-3, help="fine-tuning peak learning rate (AdamW, poly decay)")
    ft.add_argument("--crop-size", type=parse_size, default=None, metavar="HxW",
                    help=f"fine-tuning crop (default: {crop_fallback})")
    ft.add_argument("--ce", type=float, default=1.0, help="weight of cross-entropy")
    ft.add_argument("--recall", type=float, default=0.0, help="weight of the recall loss (Tian et al. 2021)")
    ft.add_argument("--sr", type=float, default=0.0,
                    help="weight of the self-regulation losses (Zhang et al. 2021; training-only exits). Off by "
                         "default: fine-tuning a trained CamVid model with it lost about 21 mIoU (docs/papers.md)")
    ft.add_argument("--kd", type=float, default=kd, help="weight of distillation from the uncompressed model")
    ft.add_argument("--kd-temperature", type=float, default=4.0, help="distillation temperature")
    ft.add_argument("--feature-kd", type=float, default=0.0, metavar="W",
                    help="weight of distillation of the decoder features (the classifier's input) from the "
                         "uncompressed model, through a training-only 1x1 adapter. Off by default: on CamVid at a "
                         "third of the MACs it did not add to logit distillation (docs/results.md)")
    ft.add_argument("--seed", type=int, default=0, help="seed for fine-tuning")


def compression_configs(args: argparse.Namespace, energy_fallback: float | None = None):
    """``(CompressConfig, FinetuneConfig | None, energy)`` from the options, every one checked before any work.

    ``energy`` is the ``--energy`` to resolve into a band (None: ``--keep-freq`` or no truncation).
    """
    from segprune.compress import CompressConfig
    from segprune.errors import ConfigError
    from segprune.models.grid import check_keep
    from segprune.train import FinetuneConfig, plan_prune_steps

    if args.keep_freq is not None and args.energy is not None:
        raise ConfigError("give --keep-freq or --energy, not both")
    energy = args.energy if args.energy is not None or args.keep_freq is not None else energy_fallback
    if energy is not None:
        check_keep(energy, "energy")  # a share in (0, 1], checked now, not after the label analysis
    config = CompressConfig(keep_freq=args.keep_freq, trunc_mode=args.trunc_mode, channel_ratio=args.channel_ratio,
                            target_macs=args.target_macs, importance=args.importance, scope=args.scope,
                            round_to=args.round_to, protect=args.protect)
    ft = None
    if args.finetune_epochs > 0:
        ft = FinetuneConfig(epochs=args.finetune_epochs, batch_size=args.batch_size, lr=args.lr,
                            crop_size=args.crop_size or args.input_size or (96, 128), input_size=args.input_size,
                            ce=args.ce, recall=args.recall, sr=args.sr, kd=args.kd,
                            kd_temperature=args.kd_temperature, feature_kd=args.feature_kd, seed=args.seed)
        ft.train_config()  # validates epochs, batch size and sizes now, not after the compression
    plan_prune_steps(config, ft, args.prune_steps)
    return config, ft, energy
