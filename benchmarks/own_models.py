"""Your own model in: SMP's DeepLabV3+ against segprune's, through the same library pipeline, on CamVid.

Both families are trained from scratch on CamVid train with one recipe (the one of
``benchmarks/camvid_baseline.py``: AdamW at 2e-3, weight decay 1e-4, 100 warm-up steps,
scale 0.75-1.5, batch 8), then compressed with the recipe that held half the MACs on
segprune's model (keep-freq 0.75, channels removed across the network to ``--target-macs``
0.5 ranked by spectral-l1, fine-tuning with CE + distillation from the original), all
through the library: :func:`segprune.train.fit`, :func:`segprune.compress.compress_`,
:func:`segprune.train.finetune`, :func:`segprune.export.export_model` and
:func:`segprune.bench.bench`. Nothing here builds CLI arguments.

Sizes: SMP refuses inputs its encoder stride does not divide (16 here), so both families
run at 176x240 (CamVid's 180x240 half size rounded down to a multiple of 16) and are timed
at 352x480 (CamVid's full size, likewise). Accuracy is the val mIoU of the last epoch's
model, scored at label resolution.

The four models (two families, before and after) are exported to fp32 ONNX and timed in
onnxruntime on the CPU side by side, interleaved, in one run. Writes
``benchmarks/results/own_models.json`` and ``own_models.png``; trained and compressed
models are cached under ``benchmarks/cache/own_models/`` keyed by their recipe.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

from camvid_setup import VAL_SPLIT

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ("smp", "segprune")


def build(family: str, num_classes: int):
    """The untrained network of each family: DeepLabV3+ ResNet-18 at output stride 16, as each library builds it."""
    if family == "smp":
        import segmentation_models_pytorch as smp

        return smp.DeepLabV3Plus(encoder_name="resnet18", encoder_weights=None, classes=num_classes)
    from segprune.models import create_model

    return create_model("deeplabv3plus_resnet18", num_classes=num_classes, output_stride=16)


def _key(recipe: dict) -> str:
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--camvid", type=Path, default=ROOT.parent / "shared" / "data" / "camvid",
                        help="CamVid folder (SegNet layout; see its README)")
    parser.add_argument("--size", default="176x240", help="training and evaluation input size HxW")
    parser.add_argument("--latency-size", default="352x480", help="input size the latency is measured at, HxW")
    parser.add_argument("--epochs", type=int, default=30, help="training epochs of each baseline")
    parser.add_argument("--finetune-epochs", type=int, default=20, help="fine-tuning epochs after compression")
    parser.add_argument("--keep-freq", type=float, default=0.75, help="decoder band kept per axis")
    parser.add_argument("--target-macs", type=float, default=0.5, help="fraction of the MACs to keep")
    parser.add_argument("--scope", default="all", choices=("decoder", "head", "all"), help="layers that lose channels")
    parser.add_argument("--protect", default=None,
                        help="modules that keep all their channels, as segprune prune --protect (default: the "
                             "scope's, the stride-2/4 path at --scope all; 'none': uniform widths)")
    parser.add_argument("--families", default=",".join(FAMILIES), help="comma-separated: smp, segprune")
    parser.add_argument("--baselines-only", action="store_true",
                        help="train (or find in --cache) the baselines, print each one's path, digest and val mIoU, "
                             "and stop: the baseline the finetune_budget.py reports name, made again on a new "
                             "machine (their --reuse checks it is the same weights)")
    parser.add_argument("--runs", type=int, default=20, help="timed runs per model and round")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (PyTorch and onnxruntime)")
    parser.add_argument("--seed", type=int, default=0, help="seed of training and fine-tuning")
    parser.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / "cache" / "own_models",
                        help="where trained and compressed models are kept between runs")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "own_models.json",
                        help="the JSON report (a PNG is written beside it)")
    args = parser.parse_args(argv)

    import torch

    from segprune.bench import BenchSettings, bench, open_runner
    from segprune.cli.common import parse_size
    from segprune.compress import CompressConfig, compress_
    from segprune.data import EvalTransform, TrainTransform, build_dataset, make_loader, spread_loader
    from segprune.export import ExportConfig, ExportPlan, export_model
    from segprune.io import file_sha256, save_json
    from segprune.models import load_checkpoint
    from segprune.report import command_line, make_report
    from segprune.train import FinetuneConfig, TrainConfig, evaluate, finetune, fit, seed_everything

    if not (args.camvid / "train.txt").is_file():
        print(f"CamVid not found at {args.camvid}: pass --camvid DIR (SegNet layout)", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    size, lat_size = parse_size(args.size), parse_size(args.latency_size)
    spec = f"camvid:{args.camvid}"
    val = build_dataset(spec, "val", transform=EvalTransform())
    val_loader = make_loader(val, 4, shuffle=False)
    calib = spread_loader(build_dataset(spec, "train", transform=EvalTransform(size=size)), 32, 4)

    def score(model) -> dict:
        metrics, _ = evaluate(model, val_loader, val.num_classes, input_size=size, class_names=val.classes,
                              progress=False)
        out = metrics.to_dict()
        return {"miou": out["miou"], "macc": out["macc"], "per_class_iou": out["per_class_iou"]}

    train_cfg = TrainConfig(epochs=args.epochs, batch_size=8, optimizer="adamw", lr=2e-3, weight_decay=1e-4,
                            warmup_iters=100, crop_size=size, base_size=size, scale_range=(0.75, 1.5),
                            eval_size=size, eval_every=max(args.epochs, 1), seed=args.seed).validate()
    compress_cfg = CompressConfig(keep_freq=args.keep_freq, target_macs=args.target_macs, scope=args.scope,
                                  importance="spectral-l1", protect=args.protect)
    ft_cfg = FinetuneConfig(epochs=args.finetune_epochs, batch_size=8, lr=5e-4, crop_size=size, input_size=size,
                            kd=1.0, seed=args.seed)
    started = time.perf_counter()
    families = [f for f in args.families.split(",") if f]
    rows, files = {}, {}
    for family in families:
        recipe = {"family": family, "train": train_cfg.to_dict()}
        base_dir = args.cache / f"{family}_base_{_key(recipe)}"
        if not (base_dir / "last.safetensors").is_file():
            train_set = build_dataset(spec, "train", transform=TrainTransform(size, scale_range=(0.75, 1.5),
                                                                              base_size=size))
            seed_everything(args.seed)
            model = build(family, val.num_classes)
            t0 = time.perf_counter()
            print(f"[{family}] training {args.epochs} epochs at {args.size}", file=sys.stderr, flush=True)
            fit(model, train_set, val, train_cfg, base_dir, device="cpu", progress=False)
            save_json(base_dir / "recipe.json", {**recipe, "seconds": time.perf_counter() - t0})
        base, _ = load_checkpoint(base_dir / "last.safetensors")
        if args.baselines_only:
            print(f"{family}: {base_dir / 'last.safetensors'} sha256 {file_sha256(base_dir / 'last.safetensors')} "
                  f"val mIoU {score(base)['miou']:.6f}", flush=True)
            continue
        recipe_c = {**recipe, "compress": compress_cfg.__dict__, "finetune": ft_cfg.to_dict()}
        comp_dir = args.cache / f"{family}_compressed_{_key(recipe_c)}"
        if not (comp_dir / "finetune" / "last.safetensors").is_file():
            model, _ = load_checkpoint(base_dir / "last.safetensors")
            t0 = time.perf_counter()
            result = compress_(model, compress_cfg, example=size, calib=calib)
            pruned_score = score(model)
            print(f"[{family}] compressed to {100 * result.macs_fraction:.1f}% MACs; fine-tuning "
                  f"{args.finetune_epochs} epochs", file=sys.stderr, flush=True)
            train_set = build_dataset(spec, "train")
            finetune(model, train_set, val, ft_cfg, comp_dir / "finetune", teacher=base.eval(), device="cpu",
                     progress=False)
            save_json(comp_dir / "compress.json", {**recipe_c, "result": result.to_dict(), "pruned": pruned_score,
                                                   "seconds": time.perf_counter() - t0})
        compressed, info = load_checkpoint(comp_dir / "finetune" / "last.safetensors")
        done = json.loads((comp_dir / "compress.json").read_text())
        rows[family] = {"model": type(compressed).__module__.split(".")[0] + "." + type(compressed).__name__,
                        "baseline": {**score(base), "gmacs": done["result"]["gmacs_before"],
                                     "mparams": done["result"]["mparams_before"]},
                        "compressed": {**score(compressed), "gmacs": done["result"]["gmacs_after"],
                                       "mparams": done["result"]["mparams_after"]},
                        "after_pruning_before_finetune": done["pruned"],
                        "macs_fraction": done["result"]["macs_fraction"],
                        "channel_ratio": done["result"]["channel_ratio"],
                        "compress_seconds": done["seconds"]}
        for stage, model in (("baseline", base), ("compressed", compressed)):
            out = args.cache / "export" / f"{family}_{stage}_{lat_size[0]}x{lat_size[1]}"
            export_model(model, out, ExportConfig(lat_size), ExportPlan(("fp32",)),
                         batches=lambda s, n: [torch.randn(n, 3, *s).numpy()],
                         source={"family": family, "stage": stage}, log=lambda m: None)
            files[f"{family}/{stage}"] = out / "model.fp32.onnx"
    if args.baselines_only:
        return 0
    runners = {label: open_runner(path, "onnxruntime", threads=args.threads) for label, path in files.items()}
    settings = BenchSettings(data=spec, input_size=lat_size, runs=args.runs, rounds=3, accuracy=False, progress=False)
    payload = bench(runners, settings, threads=args.threads)
    p50 = {r["label"]: r["latency"]["p50_ms"] for r in payload["results"]}
    for family in families:
        rows[family]["latency_ms_p50"] = {"baseline": p50[f"{family}/baseline"],
                                          "compressed": p50[f"{family}/compressed"]}
        rows[family]["speedup_ort_fp32"] = p50[f"{family}/baseline"] / p50[f"{family}/compressed"]
        rows[family]["delta_miou"] = rows[family]["compressed"]["miou"] - rows[family]["baseline"]["miou"]
    report = make_report("bench.own_models",
                         command=command_line(__file__, argv, ROOT),
                         data={"dataset": "CamVid (SegNet split)", "accuracy_split": VAL_SPLIT, "input_size": list(size),
                               "latency_input_size": list(lat_size)},
                         train=train_cfg.to_dict(), compress=compress_cfg.__dict__, finetune=ft_cfg.to_dict(),
                         families=rows, bench=payload, seconds=time.perf_counter() - started)
    save_json(args.out, report)
    _plot(report, args.out.with_suffix(".png"))
    for family, row in rows.items():
        print(f"{family:9s} val mIoU {row['baseline']['miou']:.2f} -> {row['compressed']['miou']:.2f} "
              f"({row['delta_miou']:+.2f}) at {100 * row['macs_fraction']:.1f}% MACs "
              f"({row['baseline']['gmacs']:.2f} -> {row['compressed']['gmacs']:.2f} GMACs); onnxruntime fp32 "
              f"{lat_size[0]}x{lat_size[1]} p50 {row['latency_ms_p50']['baseline']:.1f} -> "
              f"{row['latency_ms_p50']['compressed']:.1f} ms ({row['speedup_ort_fp32']:.2f}x)")
    print(f"-> {args.out}")
    return 0


def _plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for family, row in report["families"].items():
        lat = row["latency_ms_p50"]
        xs, ys = [lat["baseline"], lat["compressed"]], [row["baseline"]["miou"], row["compressed"]["miou"]]
        ax.plot(xs, ys, "o-", label=f"{family} ({100 * row['macs_fraction']:.0f}% MACs, "
                                    f"{row['speedup_ort_fp32']:.2f}x)")
        ax.annotate("original", (xs[0], ys[0]), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.annotate("compressed", (xs[1], ys[1]), textcoords="offset points", xytext=(4, -10), fontsize=8)
    size = report["data"]["latency_input_size"]
    ax.set_xlabel(f"onnxruntime CPU fp32 p50 latency at {size[0]}x{size[1]} (ms)")
    ax.set_ylabel("CamVid val mIoU")
    ax.set_title("DeepLabV3+ R18: SMP vs segprune, same pipeline")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
