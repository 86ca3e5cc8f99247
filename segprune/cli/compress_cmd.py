"""``segprune compress``: a trained model in, a verified deployment folder with its model card out."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from segprune.cli.common import (
    add_input_size,
    add_output_args,
    add_runtime_args,
    apply_runtime,
    emit,
    nonneg_int,
    parse_agreement,
    positive_int,
)
from segprune.cli.compression_args import add_compression_args, add_model_and_splits, compression_configs

NAME = "compress"
HELP = "one command from a trained model to a deployment folder: compress, fine-tune, export, bench, card"
DEFAULT_ENERGY = 0.95
DESCRIPTION = ("Compress a trained model (a segprune checkpoint, an SMP save_pretrained folder, or weights with "
               "--arch) into one deployment folder: the band kept from the train labels' spectrum (--energy, "
               f"{DEFAULT_ENERGY} unless --keep-freq is given), channels removed to --target-macs, fine-tuning with "
               "distillation from the original; both models exported to ONNX per --precision, each parity-checked "
               "against PyTorch and checked against TensorRT's rules (engines built where TensorRT and a GPU are "
               "present); both benchmarked side by side on this machine; the compressed model's results recorded as "
               "regression baselines; MODEL_CARD.md written from the reports. The same steps as prune, export and "
               "bench --record, with their options checked the same way before any work. Re-running with the same "
               "options resumes after the last finished stage; a folder made with other options is kept unless "
               "--overwrite.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_and_splits(parser, model="the trained model", train="the label spectrum, calibration and fine-tuning",
                         val="every score, parity check and benchmark")
    add_input_size(parser, "the label size of the val split")
    add_compression_args(parser, energy_fallback=DEFAULT_ENERGY, kd=1.0, finetune_epochs=8,
                         crop_fallback="--input-size, else the val labels' size")
    exp = parser.add_argument_group("export")
    exp.add_argument("--precision", default="fp32,int8", metavar="LIST",
                     help="precisions of the compressed model's ONNX files (fp32, fp16, int8; fp32 required); "
                          "the original is exported in fp32 as the reference")
    exp.add_argument("--calib-method", default="percentile", choices=("percentile", "minmax", "entropy"),
                     help="int8 range calibration (on --calib-images train images)")
    exp.add_argument("--parity-images", type=positive_int, default=8, metavar="N",
                     help="val images each file is compared with PyTorch on")
    exp.add_argument("--min-agreement", type=parse_agreement, default={}, metavar="SHARE",
                     help="argmax agreement a file needs: one share or PRECISION=SHARE pairs (defaults: fp32=0.9999, "
                          "fp16=0.999, int8=0.90)")
    trt = exp.add_mutually_exclusive_group()
    trt.add_argument("--tensorrt", dest="tensorrt", action="store_const", const=True, default=None,
                     help="require TensorRT engines (default: built where TensorRT and a CUDA GPU are present)")
    trt.add_argument("--no-tensorrt", dest="tensorrt", action="store_const", const=False,
                     help="never build TensorRT engines")
    timing = parser.add_argument_group("benchmark")
    timing.add_argument("--warmup", type=nonneg_int, default=5, help="untimed calls per model before timing")
    timing.add_argument("--runs", type=positive_int, default=30, help="timed calls per model")
    timing.add_argument("--rounds", type=positive_int, default=3,
                        help="the timed calls are interleaved across models in this many rounds")
    timing.add_argument("--max-images", type=positive_int, default=None, metavar="N",
                        help="score the benchmark on N evenly spread val images instead of the full split "
                             "(quick looks only; the card says so)")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="the deployment folder")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace what --out holds (another run's folder, or other files) instead of refusing")
    add_runtime_args(parser)
    add_output_args(parser)


def run(args: argparse.Namespace) -> int:
    from segprune.cli.bench_cmd import bench_table
    from segprune.deploy import CompressionPlan, DeployConfig, compress_for_deployment, stages_table
    from segprune.io import load_json

    apply_runtime(args)
    config, ft, energy = compression_configs(args, energy_fallback=DEFAULT_ENERGY)
    plan = CompressionPlan(config, ft, energy, args.prune_steps, args.calib_images)
    cfg = DeployConfig(plan=plan, data=args.data, train_split=args.train_split, val_split=args.val_split,
                       input_size=args.input_size,
                       precisions=tuple(p.strip() for p in args.precision.split(",") if p.strip()),
                       calib_method=args.calib_method, parity_images=args.parity_images,
                       min_agreement=args.min_agreement, tensorrt=args.tensorrt, runs=args.runs, warmup=args.warmup,
                       rounds=args.rounds, max_images=args.max_images, threads=args.threads, device=args.device,
                       crop_from_size=args.crop_size is None, workers=args.workers, progress=not args.no_progress)
    done = compress_for_deployment(args.checkpoint, cfg, args.out, arch=args.arch, encoder=args.encoder,
                                   classes=args.classes, overwrite=args.overwrite,
                                   command=shlex.join(getattr(args, "invocation", ["segprune", "compress"])))
    bench = load_json(args.out / "bench" / "bench.json")
    prune = load_json(args.out / "compressed" / "report.json")
    emit(args, {**done, "bench": bench, "compression": prune},
         f"{stages_table(prune['stages'])}\n\n{bench_table(bench)}\n\nmodel card {done['card']}")
    return 0
