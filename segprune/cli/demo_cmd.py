"""``segprune demo``: the whole job on generated data, no downloads, a few minutes on a laptop CPU."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from segprune.cli.common import DATA_HELP, add_output_args, add_runtime_args, apply_runtime, emit, parse_size
from segprune.compress.scope import IMPORTANCES

NAME = "demo"
HELP = "run the pipeline end to end on the embedded synthetic dataset"
DESCRIPTION = ("The pipeline end to end on generated road-like scenes: (1) train a small DeepLabV3+, "
               "(2) analyse the label spectrum and the model's decoder features, (3) compress it (feature "
               "truncation to the band the analysis found in the labels, spectral channel pruning, fine-tuning "
               "with distillation) and print "
               "the before/after table, (4) export both models to ONNX (fp32, and int8 Q/DQ for the compressed "
               "one), parity-checked against PyTorch, and (5) benchmark them side by side in onnxruntime: mIoU on "
               "the val split and latency. Pass --data to run it on your own dataset instead.")


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
    band = parser.add_mutually_exclusive_group()
    band.add_argument("--energy", type=float, default=0.90, metavar="TAU",
                      help="the compression step keeps the decoder band that holds this fraction of the train "
                           "labels' non-DC energy, as the analysis step measures it")
    band.add_argument("--keep-freq", type=float, default=None, metavar="F",
                      help="instead of --energy: the band of the decoder features kept per axis")
    parser.add_argument("--channel-ratio", type=float, default=0.25, metavar="R",
                        help="fraction of decoder channels removed by the compression step")
    parser.add_argument("--importance", choices=IMPORTANCES, default="spectral-l1",
                        help="channel ranking of the compression step (see `segprune prune --help`)")
    parser.add_argument("--finetune-epochs", type=int, default=5, help="fine-tuning epochs after compression")
    parser.add_argument("--bench-runs", type=int, default=30, help="timed runs per model in the benchmark stage")
    add_runtime_args(parser)
    add_output_args(parser)


def run(args: argparse.Namespace) -> int:
    from segprune.cli.bench_cmd import bench_table
    from segprune.data import EvalTransform, TrainTransform, build_dataset
    from segprune.models import create_model
    from segprune.report import format_table, make_report, metrics_table
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
    print(f"[1/5] training {args.model} (width {args.width}) on {args.data}: "
          f"{len(train_set)} train / {len(val_set)} val images", file=sys.stderr)
    summary = fit(model, train_set, val_set, cfg, args.out / "train", device=args.device,
                  progress=not args.no_progress)
    checkpoint = args.out / "train" / "last.safetensors"
    common = ["--data", args.data, "--workers", "0", *(["--no-progress"] if args.no_progress else []),
              "--device", args.device]
    print("[2/5] analysing label spectrum and decoder features", file=sys.stderr)
    # Below the labels' cut-off, truncation removes what the labels need and fine-tuning cannot bring
    # it back (benchmarks/finetune_budget.py on CamVid), so by default the band comes from the analysis.
    band = ["--keep-freq", str(args.keep_freq)] if args.keep_freq is not None else ["--energy", str(args.energy)]
    analysis = _subcommand(["analyze", "--split", "train", "--model", str(checkpoint), *band,
                            "--ceiling-images", "16", "--calib-images", "16",
                            "--out", str(args.out / "analyze"), *common], args.out / "analyze" / "report.json")
    keep = analysis["keep_freq"]
    origin = "given" if args.keep_freq is not None else f"holds {args.energy:g} of the label energy"
    print(f"[3/5] compressing: keep-freq {keep:.3f} ({origin}), channel ratio {args.channel_ratio} "
          f"({args.importance}), {args.finetune_epochs} fine-tuning epochs with distillation", file=sys.stderr)
    pruned = _subcommand(["prune", str(checkpoint), "--keep-freq", str(keep), "--channel-ratio",
                          str(args.channel_ratio), "--importance", args.importance,
                          "--finetune-epochs", str(args.finetune_epochs), "--batch-size",
                          str(args.batch_size), "--crop-size", f"{args.crop_size[0]}x{args.crop_size[1]}",
                          "--kd", "1.0", "--seed", str(args.seed), "--out", str(args.out / "prune"), *common],
                         args.out / "prune" / "report.json")
    size = f"{args.crop_size[0]}x{args.crop_size[1]}"
    print(f"[4/5] exporting to ONNX at {size} with parity checks: unpruned fp32, compressed fp32 and int8",
          file=sys.stderr)
    exports = {}
    for name, ckpt, precisions in (("unpruned", checkpoint, "fp32"), ("compressed", args.out / "prune" /
                                                                        "model.safetensors", "fp32,int8")):
        exports[name] = _subcommand(["export", str(ckpt), "--out", str(args.out / "export" / name), "--input-size",
                                     size, "--precision", precisions, "--data", args.data, "--calib", "32",
                                     "--quiet"], args.out / "export" / f"{name}.json")
    print("[5/5] benchmarking in onnxruntime, side by side: mIoU on the val split and latency", file=sys.stderr)
    onnx = [str(args.out / "export" / "unpruned" / "model.fp32.onnx"),
            str(args.out / "export" / "compressed" / "model.fp32.onnx"),
            str(args.out / "export" / "compressed" / "model.int8.onnx")]
    bench = _subcommand(["bench", *onnx, "--data", args.data, "--input-size", size, "--runs", str(args.bench_runs),
                         *(["--no-progress"] if args.no_progress else [])], args.out / "bench.json")
    report = make_report("demo", data=args.data, model=model.config.to_dict(), train=cfg.to_dict(),
                         training=summary, analysis=analysis, compression=pruned, export=exports, bench=bench)
    cut = {c["tau"]: c for c in analysis["labels"]["cutoffs"]}
    base = pruned["stages"][0]
    rows = [[s["stage"], s["gmacs"], 100 * s["gmacs"] / base["gmacs"], s["mparams"], s["miou"], s["macc"]]
            for s in pruned["stages"]]
    table = "\n".join([
        metrics_table(summary["final"]),
        "",
        f"label cut-off f_c(0.95) = {cut[0.95]['cutoff']:.3f} of Nyquist -> grid {cut[0.95]['grid'][0]}x"
        f"{cut[0.95]['grid'][1]}; decoder energy kept at keep-freq {keep:.3f} ({origin}): "
        + ", ".join(f"{k} {v['mean_kept_fraction']:.3f}" for k, v in analysis["model"]["features"].items()),
        "",
        format_table(rows, ["stage", "GMACs", "% MACs", "M params", "mIoU", "mAcc"]),
        "",
        bench_table(bench),
        f"outputs in {args.out}: train/ (checkpoints), analyze/ (spectrum.json, plots), prune/ (model.safetensors), "
        "export/ (ONNX files, export.json), bench.json",
    ])
    emit(args, report, table)
    return 0


def _subcommand(argv: list[str], report_path: Path) -> dict:
    """Run another subcommand through the same parser, keeping its table off stdout."""
    import contextlib
    import io

    from segprune.cli.main import build_parser
    from segprune.io import load_json

    args = build_parser().parse_args([*argv, "--report", str(report_path)])
    with contextlib.redirect_stdout(io.StringIO()):
        args.run(args)
    return load_json(report_path)
