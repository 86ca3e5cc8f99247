"""``segprune demo``: the whole job on generated data, no downloads, a few minutes on a laptop CPU."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from segprune.choices import IMPORTANCES
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
    parser.add_argument("--arch", default="deeplabv3plus_resnet18", metavar="NAME",
                        help="architecture_backbone to train (see `segprune info`)")
    add_alias(parser, "--model", "--arch", "arch")
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
    import copy

    from segprune.bench import BenchSettings, bench, open_runner
    from segprune.cli.bench_cmd import bench_table
    from segprune.compress import CompressConfig, compress_
    from segprune.data import (
        EvalTransform,
        TrainTransform,
        build_dataset,
        image_batches,
        make_loader,
        spread_loader,
    )
    from segprune.export import ExportConfig, ExportPlan, export_model
    from segprune.io import save_json
    from segprune.models import create_model, save_checkpoint
    from segprune.report import format_table, make_report, metrics_table
    from segprune.spectral import analyze_labels, analyze_model, keep_from_energy
    from segprune.train import FinetuneConfig, TrainConfig, finetune, fit, score_stage, seed_everything

    apply_runtime(args)
    progress = not args.no_progress
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, optimizer="adamw", lr=2e-3,
                      weight_decay=1e-4, warmup_iters=10, crop_size=args.crop_size, scale_range=(0.75, 1.5),
                      seed=args.seed).validate()
    # the compression options are checked before the training they follow
    compression = CompressConfig(keep_freq=args.keep_freq, channel_ratio=args.channel_ratio,
                                 importance=args.importance)
    ft_cfg = FinetuneConfig(epochs=args.finetune_epochs, batch_size=args.batch_size, crop_size=args.crop_size,
                            kd=1.0, seed=args.seed)
    train_set = build_dataset(args.data, "train", transform=TrainTransform(cfg.crop_size, scale_range=cfg.scale_range))
    val_set = build_dataset(args.data, "val", transform=EvalTransform())
    seed_everything(args.seed)
    model = create_model(args.arch, num_classes=train_set.num_classes,
                         aspp_channels=args.width, decoder_channels=args.width)
    print(f"[1/5] training {args.arch} (width {args.width}) on {args.data}: "
          f"{len(train_set)} train / {len(val_set)} val images", file=sys.stderr)
    summary = fit(model, train_set, val_set, cfg, args.out / "train", device=args.device, progress=progress)

    print("[2/5] analysing label spectrum and decoder features", file=sys.stderr)
    # Below the labels' cut-off, truncation removes what the labels need and fine-tuning cannot bring
    # it back (benchmarks/finetune_budget.py on CamVid), so by default the band comes from the analysis.
    taus = tuple(sorted({0.90, 0.95, 0.99} | ({args.energy} if args.keep_freq is None else set())))
    labels = analyze_labels(build_dataset(args.data, "train"), taus=taus, ceiling_images=16, progress=progress)
    keep = args.keep_freq if args.keep_freq is not None else keep_from_energy(labels.spectrum, args.energy,
                                                                             tuple(args.crop_size))
    calib_set = build_dataset(args.data, "train", transform=EvalTransform(size=args.crop_size))
    features, _ = analyze_model(model.eval(), spread_loader(build_dataset(args.data, "train", transform=EvalTransform()),
                                                            16, 4),
                                keep=keep, input_size=args.crop_size, progress=progress)
    analysis = {"labels": labels.report, "keep_freq": keep, "energy": args.energy if args.keep_freq is None else None,
                "model": features}
    save_json(args.out / "analyze" / "spectrum.json", analysis)
    origin = "given" if args.keep_freq is not None else f"holds {args.energy:g} of the label energy"

    print(f"[3/5] compressing: keep-freq {keep:.3f} ({origin}), channel ratio {args.channel_ratio} "
          f"({args.importance}), {args.finetune_epochs} fine-tuning epochs with distillation", file=sys.stderr)
    val_loader = make_loader(val_set, 4, shuffle=False)

    def stage(name: str, m) -> dict:
        return score_stage(name, m, args.crop_size, val_loader, val_set.num_classes, input_size=args.crop_size)

    stages = [stage("original", model)]
    teacher = copy.deepcopy(model).eval()
    compressed = copy.deepcopy(model)
    result = compress_(compressed, CompressConfig(**{**compression.__dict__, "keep_freq": keep}),
                       example=args.crop_size, calib=spread_loader(calib_set, 32, 4))
    stages.append(stage("compressed", compressed))
    if args.finetune_epochs > 0:
        finetune(compressed, build_dataset(args.data, "train"), val_set, ft_cfg, args.out / "prune" / "finetune",
                 teacher=teacher, device=args.device, progress=progress)
        stages.append(stage("fine-tuned", compressed))
    save_checkpoint(args.out / "prune" / "model.safetensors", compressed,
                    {"keep_freq": keep, "input_size": list(args.crop_size), "stages": stages})

    size = f"{args.crop_size[0]}x{args.crop_size[1]}"
    print(f"[4/5] exporting to ONNX at {size} with parity checks: unpruned fp32, compressed fp32 and int8",
          file=sys.stderr)
    classes = train_set.num_classes

    def batches(at: tuple[int, int], n: int):
        return image_batches(args.data, "val", at, 8, n, classes)

    def calib(at: tuple[int, int]):
        return image_batches(args.data, "train", at, 32, 1, classes)

    exports = {}
    for name, m, precisions in (("unpruned", model, ("fp32",)), ("compressed", compressed, ("fp32", "int8"))):
        exports[name] = export_model(m, args.out / "export" / name, ExportConfig(tuple(args.crop_size)),
                                     ExportPlan(precisions=precisions), batches, calib,
                                     source={"demo": name, "data": args.data}, log=lambda _msg: None)

    print("[5/5] benchmarking in onnxruntime, side by side: mIoU on the val split and latency", file=sys.stderr)
    files = {"unpruned/model.fp32.onnx": args.out / "export" / "unpruned" / "model.fp32.onnx",
             "compressed/model.fp32.onnx": args.out / "export" / "compressed" / "model.fp32.onnx",
             "compressed/model.int8.onnx": args.out / "export" / "compressed" / "model.int8.onnx"}
    runners = {label: open_runner(path, "onnxruntime", threads=args.threads) for label, path in files.items()}
    settings = BenchSettings(data=args.data, input_size=tuple(args.crop_size), runs=args.bench_runs,
                             progress=progress)
    bench_payload = bench(runners, settings, threads=args.threads)
    save_json(args.out / "bench.json", make_report("bench", **bench_payload))
    report = make_report("demo", data=args.data, model=model.config.to_dict(), train=cfg.to_dict(),
                         training=summary, analysis=analysis, compression={**result.to_dict(), "stages": stages},
                         export=exports, bench=bench_payload)
    cut = {c["tau"]: c for c in labels.report["cutoffs"]}
    base = stages[0]
    rows = [[s["stage"], s["gmacs"], 100 * s["gmacs"] / base["gmacs"], s["mparams"], s["miou"], s["macc"]]
            for s in stages]
    table = "\n".join([
        metrics_table(summary["final"]),
        "",
        f"label cut-off f_c(0.95) = {cut[0.95]['cutoff']:.3f} of Nyquist -> grid {cut[0.95]['grid'][0]}x"
        f"{cut[0.95]['grid'][1]}; decoder energy kept at keep-freq {keep:.3f} ({origin}): "
        + ", ".join(f"{k} {v['mean_kept_fraction']:.3f}" for k, v in features["features"].items()),
        "",
        format_table(rows, ["stage", "GMACs", "% MACs", "M params", "mIoU", "mAcc"]),
        "",
        bench_table(bench_payload),
        f"outputs in {args.out}: train/ (checkpoints), analyze/ (spectrum.json), prune/ (model.safetensors), "
        "export/ (ONNX files, export.json), bench.json",
    ])
    emit(args, report, table)
    return 0
