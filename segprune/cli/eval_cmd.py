"""``segprune eval``: mIoU, mean class accuracy and per-class IoU of a checkpoint on a split."""

from __future__ import annotations

import argparse

from segprune.cli.common import (
    MODEL_SOURCE_HELP,
    add_data_args,
    add_input_size,
    add_output_args,
    add_runtime_args,
    add_source_args,
    apply_runtime,
    emit,
    load_model_for,
    positive_int,
)

NAME = "eval"
HELP = "evaluate a checkpoint on a dataset split"
DESCRIPTION = ("Evaluate a model (a segprune checkpoint, an SMP save_pretrained folder, or weights with --arch): confusion matrix over the split, then mIoU, mean class accuracy, "
               "pixel accuracy and per-class IoU (ignore pixels excluded). Scores are computed at the label's "
               "resolution even when --input-size runs the model on smaller inputs.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="MODEL", help=MODEL_SOURCE_HELP)
    add_source_args(parser)
    add_data_args(parser, split="val")
    add_input_size(parser, "the images' own size")
    parser.add_argument("--batch-size", type=positive_int, default=4, help="images per forward pass")
    add_runtime_args(parser)
    add_output_args(parser)


def run(args: argparse.Namespace) -> int:
    from segprune.data import EvalTransform, build_dataset, make_loader
    from segprune.report import make_report, metrics_table
    from segprune.train import evaluate

    apply_runtime(args)
    dataset = build_dataset(args.data, args.split, transform=EvalTransform())
    model, device, _ = load_model_for(args.checkpoint, dataset, args.device, args)
    loader = make_loader(dataset, args.batch_size, shuffle=False, workers=args.workers)
    metrics, timing = evaluate(model.to(device), loader, dataset.num_classes, device=device,
                               input_size=args.input_size, class_names=dataset.classes,
                               progress=not args.no_progress)
    report = make_report("eval", checkpoint=str(args.checkpoint), data=args.data, split=args.split,
                         input_size=args.input_size, metrics=metrics.to_dict(), timing=timing,
                         device=str(device))
    emit(args, report, f"{metrics_table(metrics.to_dict())}\n{timing['images']} images, "
                       f"{timing['images_per_s']:.1f} images/s on {device}")
    return 0
