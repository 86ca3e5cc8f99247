"""``segprune data``: write the synthetic dataset to disk, or check a dataset's labels."""

from __future__ import annotations

import argparse
from pathlib import Path

from segprune.cli.common import (
    HelpFormatter,
    add_output_args,
    check_output_dir,
    emit,
    parse_size,
    positive_int,
)

NAME = "data"
HELP = "write the synthetic dataset, or check a dataset"
DESCRIPTION = ("`data synth` writes the generated road-like scenes in the folder layout (train/ and val/ with "
               "images/ and masks/, plus classes.txt), readable back as folder:DIR. `data check` reads every "
               "image and label map of a split with the checks training and evaluation apply (decodable files, label values, "
               "image and mask of one size), fails on the first invalid pair, and prints the class histogram.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    synth = sub.add_parser("synth", help="write the synthetic dataset as a folder dataset",
                           formatter_class=HelpFormatter)
    synth.add_argument("--out", type=Path, required=True, metavar="DIR", help="destination folder (created if missing)")
    synth.add_argument("--train", type=positive_int, default=64, metavar="N", help="number of training scenes to write")
    synth.add_argument("--val", type=positive_int, default=16, metavar="N", help="number of validation scenes to write")
    synth.add_argument("--size", type=parse_size, default=(96, 128), metavar="HxW", help="image height and width of every generated scene")
    synth.add_argument("--classes", type=int, default=6, metavar="K", help="number of classes in the scenes (at least 2)")
    synth.add_argument("--seed", type=int, default=0, help="generator seed: the same seed writes the same files")
    check = sub.add_parser("check", help="validate every image and label of a split and print its class histogram",
                           formatter_class=HelpFormatter)
    from segprune.cli.common import DATA_HELP

    check.add_argument("--data", required=True, metavar="SPEC", help=DATA_HELP)
    check.add_argument("--split", default="train", help="split to check")
    add_output_args(check)


def run(args: argparse.Namespace) -> int:
    return _synth(args) if args.action == "synth" else _check(args)


def _synth(args: argparse.Namespace) -> int:
    from segprune.data import SyntheticScenes, write_folder

    check_output_dir(args.out)  # checked, not created: a failed run leaves no empty folder
    for split, n in (("train", args.train), ("val", args.val)):
        data = SyntheticScenes(n, size=args.size, num_classes=args.classes, seed=args.seed, split=split)
        write_folder(data, args.out, split)
    print(f"wrote {args.train} train and {args.val} val images of {args.size[0]}x{args.size[1]} "
          f"with {args.classes} classes to {args.out}; read it back with --data folder:{args.out}")
    return 0


def _check(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from segprune.data import build_dataset
    from segprune.report import format_table, make_report

    dataset = build_dataset(args.data, args.split)
    counts = np.zeros(dataset.num_classes + 1, dtype=np.int64)
    for i in tqdm(range(len(dataset)), desc="samples", unit="pair"):
        _, label = dataset.read(i)  # the loaders' own checks: decodable image, label values, matching sizes
        valid = label != dataset.ignore_index
        counts[:-1] += np.bincount(label[valid], minlength=dataset.num_classes)
        counts[-1] += int((~valid).sum())
    total = max(int(counts.sum()), 1)
    names = list(dataset.classes) + ["(ignore)"]
    rows = [[n, int(c), 100.0 * c / total] for n, c in zip(names, counts, strict=True)]
    report = make_report("data_check", data=args.data, split=args.split, images=len(dataset),
                         pixels={n: int(c) for n, c in zip(names, counts, strict=True)})
    emit(args, report, f"{format_table(rows, ['class', 'pixels', '%'])}\n"
                       f"PASSED: {len(dataset)} image/label pairs of {args.split} are valid")
    return 0
