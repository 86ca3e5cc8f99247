"""``segprune demo``: the whole job on generated data, no downloads, a few minutes on a laptop CPU."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from segprune.cli.common import DATA_HELP, add_output_args, add_runtime_args, apply_runtime, emit, parse_size

NAME = "demo"
HELP = "run the pipeline end to end on the embedded synthetic dataset"
DESCRIPTION = ("Train a small DeepLabV3+ on generated road-like scenes, evaluate it and print the result table. "
               "Later stages (analysis, compression, export, benchmark) join the demo as they land. "
               "Pass --data to run it on your own dataset instead.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default="synthetic:n=160,size=96x128,classes=6,seed=0",
                        metavar="SPEC", help=DATA_HELP)
    parser.add_argument("--model", default="deeplabv3plus_resnet18", help="model name (see `segprune info`)")
    parser.add_argument("--width", type=int, default=64, metavar="C",
                        help="ASPP and decoder width: the demo uses a narrow model to finish in minutes")
    parser.add_argument("--epochs", type=int, default=20, help="training epochs")
    parser.add_argument("--batch-size", type=int, default=8, help="images per step")
    parser.add_argument("--crop-size", type=parse_size, default=(96, 128), metavar="HxW", help="training crop height and width")
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), metavar="DIR",
                        help="where the checkpoints and the report go")
    parser.add_argument("--seed", type=int, default=0, help="seed for the model and the training run")
    add_runtime_args(parser)
    add_output_args(parser)


def run(args: argparse.Namespace) -> int:
    from segprune.data import EvalTransform, TrainTransform, build_dataset
    from segprune.models import create_model
    from segprune.report import make_report, metrics_table
    from segprune.train import TrainConfig, fit, seed_everything

    apply_runtime(args)
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, optimizer="adamw", lr=2e-3,
                      weight_decay=1e-4, warmup_iters=10, crop_size=args.crop_size, scale_range=(0.75, 1.5),
                      seed=args.seed).validate()
    train_set = build_dataset(args.data, "train", transform=TrainTransform(cfg.crop_size, scale_range=cfg.scale_range))
    val_set = build_dataset(args.data, "val", transform=EvalTransform())
    seed_everything(args.seed)
    model = create_model(args.model, num_classes=train_set.num_classes,
                         aspp_channels=args.width, decoder_channels=args.width)
    print(f"[1/1] training {args.model} (width {args.width}) on {args.data}: "
          f"{len(train_set)} train / {len(val_set)} val images", file=sys.stderr)
    summary = fit(model, train_set, val_set, cfg, args.out / "train", device=args.device,
                  progress=not args.no_progress)
    report = make_report("demo", data=args.data, model=model.config.to_dict(), train=cfg.to_dict(),
                         training=summary, checkpoint=str(args.out / "train" / "best.safetensors"))
    table = (f"{metrics_table(summary['final'])}\n\nbest val mIoU {summary['best']['miou']:.2f} "
             f"(epoch {summary['best']['epoch']}); checkpoint {args.out / 'train' / 'best.safetensors'}")
    emit(args, report, table)
    return 0
