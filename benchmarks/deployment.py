"""Deployment on CamVid: ONNX export, fp32/fp16/int8 accuracy and onnxruntime CPU latency, compressed vs not.

Starts from the CamVid baseline (``benchmarks/camvid_baseline.py``, DeepLabV3+ ResNet-18
OS16 trained at 180x240; run it first). Builds the compressed models with the library
pipeline ``segprune prune`` calls (``compress_`` then ``finetune``; cached in ``benchmarks/cache/``): keep-freq 0.5 and 0.25 with the channel ratio
that scored best at those keeps in ``benchmarks/results/compression.json`` (0, truncation
alone), plus one wider variant (keep 0.25, channel ratio 0.5 over the ASPP and decoder,
L1 importance) to show what the 2x latency goal costs in mIoU. Each gets the same
fine-tuning budget (``--epochs`` of cross-entropy on CamVid train).

Then, all in this one run, through the segprune API that ``segprune export``/``bench`` use:

1. export every model with ``export_model`` (``allow_unaligned``: 180 and 360 are not multiples
   of the output stride 16; the models were trained and are scored at those sizes) at 180x240 (fp32, fp16, int8 Q/DQ calibrated
   on 32 CamVid train images), 360x480 (fp32, int8) and 512x1024 (fp32), each parity-checked
   against PyTorch on CamVid val images;
2. accuracy and latency at the training size 180x240: mIoU on the full val split for each
   model in PyTorch eager and in onnxruntime fp32/fp16/int8, all timed side by side;
3. latency at 360x480 and 512x1024 (CamVid's native size and a Cityscapes-like size):
   every model side by side, fp32 and int8.

Writes ``benchmarks/results/deployment.json`` and ``deployment.png`` (mIoU against latency);
quotes medians of interleaved timed runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from camvid_setup import compress_run, export_camvid

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--camvid", type=Path, default=ROOT.parent / "shared" / "data" / "camvid")
    parser.add_argument("--baseline", type=Path, default=ROOT / "benchmarks" / "cache" / "camvid_r18" / "last.safetensors")
    parser.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / "cache" / "deploy")
    parser.add_argument("--epochs", type=int, default=1, help="fine-tuning epochs per compressed model")
    parser.add_argument("--runs", type=int, default=20, help="timed runs per model and setting")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "deployment.json")
    parser.add_argument("--record", action="store_true",
                        help="also record the baseline and keep0.25 results as regression baselines in models/")
    parser.add_argument("--resummarize", action="store_true",
                        help="recompute the summary of an existing --out file from its runs (no measuring)")
    args = parser.parse_args(argv)

    import torch

    from segprune.bench import BenchSettings, bench, open_runner
    from segprune.cli.bench_cmd import bench_table
    from segprune.compress import CompressConfig
    from segprune.io import save_json
    from segprune.models import load_checkpoint
    from segprune.report import command_line, make_report, portable_path
    from segprune.train import FinetuneConfig

    if args.resummarize:
        report = json.loads(args.out.read_text())
        exports = {tuple(k.rsplit("_", 1)[0:1]) + tuple(map(int, k.rsplit("_", 1)[1].split("x"))): v
                   for k, v in report["exports"].items()}
        report["summary"] = summarize(report["runs"], exports)
        save_json(args.out, report)
        plot(report["summary"], args.out.with_suffix(".png"))
        print(json.dumps(report["summary"]["goals"], indent=2))
        return 0
    torch.set_num_threads(args.threads)
    if not args.baseline.is_file():
        print(f"no baseline checkpoint at {args.baseline}: run benchmarks/camvid_baseline.py first", file=sys.stderr)
        return 2
    data = f"camvid:{args.camvid}"
    started = time.perf_counter()
    variants = {"baseline": ({}, args.baseline)}
    recipes = {"keep0.5": {"keep_freq": 0.5}, "keep0.25": {"keep_freq": 0.25},
               "keep0.25_head0.5": {"keep_freq": 0.25, "channel_ratio": 0.5, "scope": "head", "importance": "l1"}}
    size = (180, 240)
    for name, extra in recipes.items():
        out = args.cache / name
        compression = CompressConfig(trunc_mode="area", **extra)
        finetuning = FinetuneConfig(epochs=args.epochs, batch_size=8, lr=5e-4, crop_size=size, input_size=size, seed=0)
        key = {"compression": compression.__dict__, "finetune": finetuning.to_dict(), "baseline": str(args.baseline)}
        if not _cached(out, key):
            print(f"compressing: {name}", file=sys.stderr)
            compress_run(data, args.baseline, size, compression, finetuning, out)
            (out / "recipe.json").write_text(json.dumps(key))
        variants[name] = (extra, out / "model.safetensors")

    exports = {}
    plan = {(180, 240): ("fp32", "fp16", "int8"), (360, 480): ("fp32", "int8"), (512, 1024): ("fp32",)}
    for name, (_, ckpt) in variants.items():
        model, _ = load_checkpoint(ckpt)
        for (h, w), precisions in plan.items():
            out = args.cache / "onnx" / f"{name}_{h}x{w}"
            print(f"exporting {name} at {h}x{w}: {','.join(precisions)}", file=sys.stderr)
            exports[(name, h, w)] = export_camvid(model, out, (h, w), precisions, data,
                                                  {"checkpoint": str(ckpt), "data": data})

    runs = {}

    def run_set(title: str, models: dict[str, tuple[str, str | None]], size: tuple[int, int], accuracy: bool) -> None:
        runners = {label: open_runner(path, backend, threads=args.threads) for label, (path, backend) in models.items()}
        settings = BenchSettings(data=data, split="val", input_size=size, batch_size=1, warmup=3, runs=args.runs,
                                 rounds=4, accuracy=accuracy, progress=False)
        print(f"benchmarking {title}", file=sys.stderr)
        payload = bench(runners, settings, threads=args.threads)
        runs[title] = payload
        print(f"\n== {title}\n{bench_table(payload)}", flush=True)

    def onnx(name: str, size: tuple[int, int], precision: str) -> str:
        return str(args.cache / "onnx" / f"{name}_{size[0]}x{size[1]}" / f"model.{precision}.onnx")

    small = (180, 240)
    models = {}
    for name, (_, ckpt) in variants.items():
        models[f"{name}/torch"] = (str(ckpt), "torch")
        for precision in ("fp32", "fp16", "int8"):
            models[f"{name}/ort-{precision}"] = (onnx(name, small, precision), "onnxruntime")
    run_set("accuracy_and_latency_180x240", models, small, accuracy=True)
    for size, precisions in (((360, 480), ("fp32", "int8")), ((512, 1024), ("fp32",))):
        models = {"baseline/torch": (str(args.baseline), "torch")}
        for name in variants:
            for precision in precisions:
                models[f"{name}/ort-{precision}"] = (onnx(name, size, precision), "onnxruntime")
        run_set(f"latency_{size[0]}x{size[1]}", models, size, accuracy=False)

    summary = summarize(runs, exports)
    cards = {"baseline": ROOT / "models" / "deeplabv3plus_resnet18_camvid",
             "keep0.25": ROOT / "models" / "deeplabv3plus_resnet18_camvid_keep0.25"}
    if args.record:
        from segprune.regress import record_baselines

        for name, card in cards.items():
            for payload in runs.values():
                mine = [r for r in payload["results"] if r["label"].startswith(f"{name}/")]
                record_baselines(card, {"created": make_report("x")["created"], "results": mine})
    report = make_report("bench.deployment", command=command_line(__file__, argv, ROOT), data=data,
                         baseline=portable_path(args.baseline, ROOT), variants={k: v[0] for k, v in variants.items()},
                         exports={f"{k[0]}_{k[1]}x{k[2]}": v for k, v in exports.items()}, runs=runs,
                         summary=summary, seconds=time.perf_counter() - started)
    save_json(args.out, report)
    plot(summary, args.out.with_suffix(".png"))
    print("\n" + json.dumps(summary, indent=2))
    return 0


def summarize(runs: dict, exports: dict) -> dict:
    """The figures the deployment issue asks for, read off the runs above."""
    def lat(title: str, label: str) -> float:
        return next(r["latency"]["p50_ms"] for r in runs[title]["results"] if r["label"] == label)

    def miou(label: str) -> float:
        return next(r["accuracy"]["miou"] for r in runs["accuracy_and_latency_180x240"]["results"]
                    if r["label"] == label)

    out: dict = {"p50_ms": {}, "speedup_vs_baseline_fp32_ort": {}, "miou_180x240": {}, "int8_miou_loss": {},
                 "fp16_miou_loss": {}, "torch_vs_ort_fp32_speedup": {}}
    names = sorted({label.split("/")[0] for label in (r["label"] for r in runs["accuracy_and_latency_180x240"]["results"])})
    for title in runs:
        size = title.rsplit("_", 1)[-1]
        out["p50_ms"][size] = {r["label"]: r["latency"]["p50_ms"] for r in runs[title]["results"]}
        base = lat(title, "baseline/ort-fp32")
        out["speedup_vs_baseline_fp32_ort"][size] = {
            r["label"]: base / r["latency"]["p50_ms"] for r in runs[title]["results"] if "/ort-" in r["label"]}
    for name in names:
        out["miou_180x240"][name] = {p: miou(f"{name}/{p}") for p in ("torch", "ort-fp32", "ort-fp16", "ort-int8")}
        out["int8_miou_loss"][name] = miou(f"{name}/ort-fp32") - miou(f"{name}/ort-int8")
        out["fp16_miou_loss"][name] = miou(f"{name}/ort-fp32") - miou(f"{name}/ort-fp16")
        title = "accuracy_and_latency_180x240"
        out["torch_vs_ort_fp32_speedup"][name] = lat(title, f"{name}/torch") / lat(title, f"{name}/ort-fp32")
    goals = {}
    for size in ("360x480", "512x1024"):
        for name in ("keep0.25", "keep0.25_head0.5"):
            s = out["speedup_vs_baseline_fp32_ort"][size].get(f"{name}/ort-fp32")
            goals[f"{name}_2x_faster_{size}"] = {"speedup": s, "miou": out["miou_180x240"][name]["ort-fp32"],
                                                 "met": bool(s and s >= 2.0)}
    worst = max(out["int8_miou_loss"].values())
    goals["int8_loses_at_most_1_miou"] = {"worst_loss": worst, "met": worst <= 1.0}
    out["goals"] = goals
    return out


def plot(summary: dict, path: Path) -> None:
    """mIoU against latency at each size: colour = model, marker = backend and precision."""
    from matplotlib.lines import Line2D

    from segprune.plots import _pyplot, _save

    plt = _pyplot()
    sizes = [s for s in ("360x480", "512x1024") if s in summary["p50_ms"]]
    names = sorted(summary["miou_180x240"])
    markers = {"ort-fp32": "o", "ort-int8": "s", "ort-fp16": "^", "torch": "x"}
    fig, axes = plt.subplots(1, len(sizes), figsize=(5.4 * len(sizes), 4.2), squeeze=False)
    for ax, size in zip(axes[0], sizes, strict=True):
        for label, p50 in summary["p50_ms"][size].items():
            name, variant = label.split("/")
            ax.scatter(p50, summary["miou_180x240"][name][variant], marker=markers[variant], s=40,
                       color=f"C{names.index(name)}")
        ax.set(xlabel=f"p50 latency at {size} (ms, 2 CPU threads)", ylabel="CamVid val mIoU (run at 180x240)",
               title=f"speed vs accuracy at {size}")
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=f"C{i}", marker="o", ls="", label=n) for i, n in enumerate(names)]
    handles += [Line2D([], [], color="grey", marker=m, ls="", label=v.replace("ort-", "onnxruntime "))
                for v, m in markers.items()]
    axes[0][-1].legend(handles=handles, fontsize=7, loc="lower right")
    _save(fig, path)


def _cached(out: Path, key: dict) -> bool:
    marker = out / "recipe.json"
    return (out / "model.safetensors").is_file() and marker.is_file() and json.loads(marker.read_text()) == \
        json.loads(json.dumps(key))
