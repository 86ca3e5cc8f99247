"""``segprune prune``: truncate the decoder's frequency band, prune channels by their spectra, fine-tune."""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from segprune.choices import IMPORTANCES, SCOPES
from segprune.cli.common import (
    MODEL_SOURCE_HELP,
    add_data_args,
    add_input_size,
    add_output_args,
    add_runtime_args,
    add_source_args,
    apply_runtime,
    check_free_space,
    check_output_dir,
    emit,
    load_model_for,
    nonneg_int,
    parse_size,
    positive_int,
)

NAME = "prune"
HELP = "compress a checkpoint: feature truncation (--keep-freq), spectral channel pruning, fine-tuning"
DESCRIPTION = ("Compress a model (a segprune checkpoint, an SMP save_pretrained folder, or weights with --arch) in three steps, each scored on the val split: (1) run the decoder "
               "on a grid keeping the fraction --keep-freq of its frequency band per axis (or the band that holds "
               "--energy of the label energy); (2) remove channels chosen by their energy inside the kept band "
               "(torch-pruning does the surgery); (3) fine-tune with cross-entropy, recall loss, self-regulation "
               "and distillation from the uncompressed model. Writes model.safetensors (reloadable without the "
               "original), report.json and the fine-tuning run folder into --out.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="MODEL", help="the uncompressed model: " + MODEL_SOURCE_HELP)
    add_source_args(parser)
    add_data_args(parser)
    parser.add_argument("--train-split", default="train", help="split for calibration and fine-tuning")
    parser.add_argument("--val-split", default="val", help="split for the before/after scores")
    add_input_size(parser, "the label size of the val split")
    trunc = parser.add_argument_group("feature truncation")
    trunc.add_argument("--keep-freq", type=float, default=None, metavar="F",
                       help="fraction of the decoder's frequency band kept per axis, in (0, 1]; the decoder "
                            "grid becomes ceil(F*H/4) x ceil(F*W/4) and its convolutions cost about F^2")
    trunc.add_argument("--energy", type=float, default=None, metavar="TAU",
                       help="instead of --keep-freq: keep the band holding this fraction of the train labels' "
                            "non-DC energy (e.g. 0.95)")
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
                            "README); activation "
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
                            "paired seeds, level with uniform l1: README, 'Widths per stage'), 'none' with the "
                            "narrower scopes. A residual stage's shared channels stay when any of its convs is named")
    prune.add_argument("--round-to", type=positive_int, default=8, help="keep channel counts multiples of this (tensor cores)")
    prune.add_argument("--prune-steps", type=positive_int, default=1, metavar="N",
                       help="prune gradually: N rounds of pruning, each followed by its share of --finetune-epochs, "
                            "each removing the same fraction of what is left of the MACs (needs --target-macs and "
                            "--finetune-epochs >= N; 1: prune once, then fine-tune; 2 lost 0.6 and 2.9 mIoU to "
                            "one-shot at 8 epochs on CamVid, README)")
    prune.add_argument("--calib-images", type=positive_int, default=32, help="train images used to measure channel spectra")
    ft = parser.add_argument_group("fine-tuning")
    ft.add_argument("--finetune-epochs", type=nonneg_int, default=0, metavar="N", help="fine-tuning epochs (0 skips)")
    ft.add_argument("--batch-size", type=positive_int, default=8, help="images per fine-tuning step")
    ft.add_argument("--lr", type=float, default=1e-3, help="fine-tuning peak learning rate (AdamW, poly decay)")
    ft.add_argument("--crop-size", type=parse_size, default=None, metavar="HxW",
                    help="fine-tuning crop (default: --input-size, or 96x128)")
    ft.add_argument("--ce", type=float, default=1.0, help="weight of cross-entropy")
    ft.add_argument("--recall", type=float, default=0.0, help="weight of the recall loss (Tian et al. 2021)")
    ft.add_argument("--sr", type=float, default=0.0,
                    help="weight of the self-regulation losses (Zhang et al. 2021; training-only exits). Off by "
                         "default: fine-tuning a trained CamVid model with it lost about 21 mIoU (README, papers)")
    ft.add_argument("--kd", type=float, default=0.0, help="weight of distillation from the uncompressed model")
    ft.add_argument("--kd-temperature", type=float, default=4.0, help="distillation temperature")
    ft.add_argument("--feature-kd", type=float, default=0.0, metavar="W",
                    help="weight of distillation of the decoder features (the classifier's input) from the "
                         "uncompressed model, through a training-only 1x1 adapter. Off by default: on CamVid at a "
                         "third of the MACs it did not add to logit distillation (README)")
    ft.add_argument("--seed", type=int, default=0, help="seed for fine-tuning")
    parser.add_argument("--out", type=Path, default=Path("runs/prune"), metavar="DIR",
                        help="folder for model.safetensors, report.json and the fine-tuning run")
    add_runtime_args(parser)
    add_output_args(parser)


def run(args: argparse.Namespace) -> int:

    from segprune.compress import CompressConfig
    from segprune.data import EvalTransform, build_dataset, spread_loader
    from segprune.errors import ConfigError
    from segprune.io import save_json
    from segprune.models import save_checkpoint
    from segprune.report import format_table, make_report
    from segprune.spectral import analyze_labels, choose_band
    from segprune.train import FinetuneConfig, compress_and_finetune, plan_prune_steps

    apply_runtime(args)
    check_output_dir(args.out)  # checked, not created: a failed run leaves no empty folder
    started = time.perf_counter()
    if args.keep_freq is not None and args.energy is not None:
        raise ConfigError("give --keep-freq or --energy, not both")
    # every option is checked before any data is read or model is loaded
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
    train_set = build_dataset(args.data, args.train_split)
    val_set = build_dataset(args.data, args.val_split, transform=EvalTransform())
    model, device, _ = load_model_for(args.checkpoint, val_set, "cpu", args)
    if config.prunes:  # names in --protect are checked against the model before any analysis
        from segprune.compress.scope import resolve_protect

        resolve_protect(model, config.scope, config.protect)
    check_free_space(args.out, model, 5, "the compressed model and its fine-tuning run")
    size = args.input_size or tuple(val_set.read_label(0).shape)
    band = None
    if args.energy is not None:
        labels = analyze_labels(train_set, taus=(args.energy,), ceiling_images=-1, workers=args.workers,
                                progress=not args.no_progress)
        from segprune.models import adapter_for

        band = choose_band(labels.spectrum, args.energy, labels.report["reference_size"], size,
                           adapter_for(model).decoder_stride(model))
        if not band.resolves:  # not a silent cap at keep-freq 1: the user asked for a band this model cannot hold
            raise ConfigError(f"{band.note()}; pass --energy {math.floor(band.held * 1000) / 1000:.3f} or less, "
                              "--keep-freq 1, or that --input-size")
        print(band.note(), file=sys.stderr)
        config = CompressConfig(**{**config.__dict__, "keep_freq": band.keep_freq})
    calib = None
    if config.prunes:
        calib_set = build_dataset(args.data, args.train_split, transform=EvalTransform(size=args.input_size))
        calib = spread_loader(calib_set, args.calib_images, 4)
    result, stages, run_summary = compress_and_finetune(
        model, config, ft, train_set, val_set, size=size, calib=calib, input_size=args.input_size,
        out_dir=args.out / "finetune", device=args.device, workers=args.workers, progress=not args.no_progress,
        prune_steps=args.prune_steps)
    keep = result.keep_freq
    save_checkpoint(args.out / "model.safetensors", model,
                    {"compressed_from": str(args.checkpoint), "keep_freq": keep, "input_size": list(size),
                     "stages": stages})
    report = make_report(
        "prune", checkpoint=str(args.checkpoint), family=result.family, data=args.data, input_size=list(size),
        keep_freq=keep, trunc_mode=result.trunc_mode, energy=args.energy, band=band.to_dict() if band else None,
        channel_ratio=args.channel_ratio,
        target_macs=args.target_macs, importance=args.importance, scope=args.scope, prune_steps=args.prune_steps,
        pruning=result.pruning.to_dict() if result.pruning is not None else None, compression=result.to_dict(),
        stages=stages, finetune=run_summary, seconds=time.perf_counter() - started,
        output=str(args.out / "model.safetensors"))
    save_json(args.out / "report.json", report)
    rows = [[s["stage"], s["gmacs"], 100 * s["gmacs"] / stages[0]["gmacs"], s["mparams"], s["miou"], s["macc"]]
            for s in stages]
    table = format_table(rows, ["stage", "GMACs", "% MACs", "M params", "mIoU", "mAcc"])
    emit(args, report, f"{table}\nkeep-freq {keep:.3f} ({result.trunc_mode}); {time.perf_counter() - started:.0f} s; "
                       f"compressed checkpoint {args.out / 'model.safetensors'}")
    print(f"report {args.out / 'report.json'}", file=sys.stderr)
    return 0
