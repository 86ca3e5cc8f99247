"""``segprune prune``: truncate the decoder's frequency band, prune channels by their spectra, fine-tune."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from segprune.cli.common import (
    add_input_size,
    add_output_args,
    add_runtime_args,
    apply_runtime,
    check_free_space,
    check_output_dir,
    emit,
)
from segprune.cli.compression_args import add_compression_args, add_model_and_splits, compression_configs

NAME = "prune"
HELP = "compress a checkpoint: feature truncation (--keep-freq), spectral channel pruning, fine-tuning"
DESCRIPTION = ("Compress a model (a segprune checkpoint, an SMP save_pretrained folder, or weights with --arch) in three steps, each scored on the val split: (1) run the decoder "
               "on a grid keeping the fraction --keep-freq of its frequency band per axis (or the band that holds "
               "--energy of the label energy); (2) remove channels chosen by their energy inside the kept band "
               "(torch-pruning does the surgery); (3) fine-tune with cross-entropy, recall loss, self-regulation "
               "and distillation from the uncompressed model. Writes model.safetensors (reloadable without the "
               "original), report.json and the fine-tuning run folder into --out.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_and_splits(parser, model="the uncompressed model", train="calibration and fine-tuning",
                         val="the before/after scores")
    add_input_size(parser, "the label size of the val split")
    add_compression_args(parser)
    parser.add_argument("--out", type=Path, default=Path("runs/prune"), metavar="DIR",
                        help="folder for model.safetensors, report.json and the fine-tuning run")
    add_runtime_args(parser)
    add_output_args(parser)


def run(args: argparse.Namespace) -> int:

    from segprune.deploy import CompressionPlan, compress_model, load_for_compression, stages_table

    apply_runtime(args)
    check_output_dir(args.out)  # checked, not created: a failed run leaves no empty folder
    started = time.perf_counter()
    config, ft, energy = compression_configs(args)  # every option is checked before any data or model is read
    plan = CompressionPlan(config, ft, energy, args.prune_steps, args.calib_images)
    model, _, size = load_for_compression(args.checkpoint, plan, args.data, train_split=args.train_split,
                                          val_split=args.val_split, input_size=args.input_size, arch=args.arch,
                                          encoder=args.encoder, classes=args.classes)
    check_free_space(args.out, model, 5, "the compressed model and its fine-tuning run")
    report = compress_model(model, plan, args.data, args.out, source=str(args.checkpoint), size=size,
                            input_size=args.input_size, train_split=args.train_split, val_split=args.val_split,
                            device=args.device, workers=args.workers, progress=not args.no_progress)
    keep = report["keep_freq"]
    emit(args, report, f"{stages_table(report['stages'])}\nkeep-freq {keep:.3f} ({report['trunc_mode']}); "
                       f"{time.perf_counter() - started:.0f} s; compressed checkpoint {args.out / 'model.safetensors'}")
    print(f"report {args.out / 'report.json'}", file=sys.stderr)
    return 0
