"""``segprune demo``: the whole job on generated data, no downloads, a few minutes on a laptop CPU."""

from __future__ import annotations

import argparse
from pathlib import Path

from segprune.choices import IMPORTANCES, SCOPES
from segprune.cli.common import (
    DATA_HELP,
    add_alias,
    add_output_args,
    add_runtime_args,
    apply_runtime,
    emit,
    parse_size,
)

NAME = "demo"
HELP = "run the pipeline end to end on the embedded synthetic dataset"
DESCRIPTION = ("The product in miniature, on generated road-like scenes (no downloads): (1) train a DeepLabV3+ "
               "with its full-width ASPP and decoder, (2) measure the label spectrum and the decoder's features, "
               "(3) compress it with the recipe that holds half the MACs on CamVid: keep the decoder band the "
               "labels need (--energy), remove channels across the network to --target-macs, fine-tune with "
               "distillation from the original, (4) export both models to ONNX (fp32, and int8 Q/DQ for the "
               "compressed one), parity-checked against PyTorch, and (5) time them side by side, interleaved, in "
               "onnxruntime, with mIoU on the val split: the speed-up and the mIoU difference come from that one "
               "run. Writes demo.json, plots, checkpoints and ONNX files into --out. Pass --data to run it on your "
               "own dataset instead.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from segprune.demo import DemoConfig

    d = DemoConfig()
    parser.add_argument("--data", default=d.data, metavar="SPEC", help=DATA_HELP)
    parser.add_argument("--arch", default=d.arch, metavar="NAME", help="architecture_backbone to train (see `segprune info`)")
    add_alias(parser, "--model", "--arch", "arch")
    parser.add_argument("--width", type=int, default=d.width, metavar="C",
                        help="ASPP and decoder width (DeepLabV3+'s own 256: the decoder is then a large share of the "
                             "MACs, as in deployed models)")
    parser.add_argument("--epochs", type=int, default=d.epochs, help="training epochs")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help="images per step")
    parser.add_argument("--crop-size", type=parse_size, default=d.crop_size, metavar="HxW",
                        help="training crop, and the size the models are exported and timed at")
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), metavar="DIR",
                        help="where the checkpoints, ONNX files, plots and demo.json go")
    parser.add_argument("--seed", type=int, default=d.seed, help="seed for the model and the training run")
    band = parser.add_mutually_exclusive_group()
    band.add_argument("--energy", type=float, default=d.energy, metavar="TAU",
                      help="the compression step keeps the decoder band that holds this fraction of the train "
                           "labels' non-DC energy, as the analysis step measures it")
    band.add_argument("--keep-freq", type=float, default=None, metavar="F",
                      help="instead of --energy: the band of the decoder features kept per axis")
    parser.add_argument("--target-macs", type=float, default=d.target_macs, metavar="X",
                        help="fraction of the original MACs the compressed model keeps (truncation included)")
    parser.add_argument("--scope", choices=SCOPES, default=d.scope,
                        help="layers that may lose channels: decoder, head (+ ASPP) or all (+ backbone)")
    parser.add_argument("--importance", choices=IMPORTANCES, default=d.importance,
                        help="channel ranking of the compression step (see `segprune prune --help`)")
    parser.add_argument("--finetune-epochs", type=int, default=d.finetune_epochs,
                        help="fine-tuning epochs after compression (CE + distillation from the original)")
    parser.add_argument("--bench-runs", type=int, default=d.bench_runs, help="timed runs per model and round")
    add_runtime_args(parser)
    add_output_args(parser)


def run(args: argparse.Namespace) -> int:
    from segprune.cli.bench_cmd import bench_table
    from segprune.demo import DemoConfig, run_demo
    from segprune.deploy import stages_table
    from segprune.report import metrics_table

    apply_runtime(args)
    cfg = DemoConfig(data=args.data, arch=args.arch, width=args.width, crop_size=tuple(args.crop_size),
                     epochs=args.epochs, batch_size=args.batch_size, energy=args.energy, keep_freq=args.keep_freq,
                     target_macs=args.target_macs, scope=args.scope, importance=args.importance,
                     finetune_epochs=args.finetune_epochs, bench_runs=args.bench_runs, seed=args.seed,
                     threads=args.threads, device=args.device, progress=not args.no_progress)
    report = run_demo(cfg, args.out)
    analysis, stages, summary = report["analysis"], report["compression"]["stages"], report["summary"]
    cut = {c["tau"]: c for c in analysis["labels"]["cutoffs"]}
    band = analysis["band"]  # None when --keep-freq was given
    origin = f"holds {band['held']:.3f} of the label energy" if band else "given"
    if band and not band["resolves"]:
        origin += (f": the whole decoder band; {band['tau']:g} would need input "
                   f"{band['input_size_needed'][0]}x{band['input_size_needed'][1]}")
    keep = analysis["keep_freq"]
    table = "\n".join([
        metrics_table(report["training"]["final"]),
        "",
        f"label cut-off f_c(0.95) = {cut[0.95]['cutoff']:.3f} of Nyquist -> grid {cut[0.95]['grid'][0]}x"
        f"{cut[0.95]['grid'][1]}; keep-freq {keep:.3f} ({origin}); decoder feature energy inside it: "
        + ", ".join(f"{k} {v['mean_kept_fraction']:.3f}" for k, v in analysis["model"]["features"].items()),
        "",
        stages_table(stages),
        "",
        bench_table(report["bench"]),
        "",
        f"compressed model: {summary['speedup_fp32']:.2f}x faster than the unpruned one in onnxruntime fp32 "
        f"({summary['compressed_p50_ms']:.1f} ms against {summary['unpruned_p50_ms']:.1f} ms, timed side by side), "
        f"{summary['delta_miou']:+.2f} mIoU ({summary['compressed_miou']:.2f} against {summary['unpruned_miou']:.2f})",
        summary["int8_note"],
        f"plots: {', '.join(report['figures'])}; everything in {args.out} (demo.json, checkpoints, ONNX files; the deployment folder with its "
        f"model card in {args.out / 'deploy'})",
    ])
    emit(args, report, table)
    return 0
