"""Compression on CamVid: mIoU against MACs for keep-freq x channel ratio, and spectral vs magnitude.

Starts from the CamVid baseline of ``benchmarks/camvid_baseline.py`` (DeepLabV3+ ResNet-18,
OS16, trained at 180x240; run that first, it caches the checkpoint). Every configuration
gets the same fine-tuning budget (``--epochs`` of AdamW with cross-entropy on CamVid
train) and is scored on CamVid val at the label resolution; MACs are counted at 180x240.
The equal-MACs comparison prunes the same layers by the same ratio with each of
``--importances`` (spectral, spectral-l1 and torch-pruning's L1 magnitude by default), so
the models compared have identical MACs.

Writes ``benchmarks/results/compression.json`` and ``compression.png``.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

from camvid_setup import VAL_SPLIT, add_setup_args, load_setup

from segprune.cli.common import parse_ints

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_setup_args(parser)
    parser.add_argument("--keeps", default="1,0.75,0.5,0.25")
    parser.add_argument("--ratios", default="0,0.25,0.5")
    parser.add_argument("--compare", default="0.5:0.5,0.25:0.5",
                        help="keep:ratio pairs compared at equal MACs across --importances, comma-separated")
    parser.add_argument("--importances", default="spectral,spectral-l1,l1", help="rankings compared at equal MACs")
    parser.add_argument("--seeds", type=parse_ints, default="0,1", help="fine-tuning seeds for the comparison pairs")
    parser.add_argument("--epochs", type=int, default=1, help="fine-tuning epochs per configuration")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "compression.json")
    args = parser.parse_args(argv)


    from segprune.compress import CompressConfig, compress_, count_macs
    from segprune.data import TrainTransform, build_dataset
    from segprune.io import save_json
    from segprune.report import command_line, format_table, make_report
    from segprune.train import TrainConfig, evaluate, fit, seed_everything

    setup = load_setup(args.camvid, args.baseline, args.size, args.calib_images)
    if setup is None:
        return 2
    base, size, val, val_loader, calib_loader = setup.base, setup.size, setup.val, setup.val_loader, setup.calib_loader
    train = build_dataset(setup.spec, "train", transform=TrainTransform(size, scale_range=(0.75, 1.5), base_size=size))
    base_macs = count_macs(base, size).total_macs

    def score(model) -> float:
        return evaluate(model, val_loader, val.num_classes, input_size=size, progress=False)[0]

    def run(keep: float, ratio: float, importance: str, seed: int) -> dict:
        start = time.perf_counter()
        model = copy.deepcopy(base)
        compress_(model, CompressConfig(keep_freq=keep, trunc_mode=args.mode, channel_ratio=ratio or None,
                                        importance=importance), example=size, calib=calib_loader if ratio else None)
        macs = count_macs(model, size).total_macs
        before = score(model)
        cfg = TrainConfig(epochs=args.epochs, batch_size=8, optimizer="adamw", lr=args.lr, crop_size=size,
                          base_size=size, scale_range=(0.75, 1.5), eval_size=size, eval_every=args.epochs,
                          seed=seed).validate()
        seed_everything(seed)
        after = fit(model, train, val, cfg, None, device="cpu", progress=False)["final"]  # scored at label size
        row = {"keep_freq": keep, "channel_ratio": ratio, "importance": importance if ratio else None,
               "seed": seed, "gmacs": macs / 1e9, "macs_fraction": macs / base_macs,
               "miou_before_finetune": before.miou, "miou": after["miou"], "macc": after["macc"],
               "seconds": time.perf_counter() - start}
        print(f"keep {keep} ratio {ratio} {importance if ratio else '-'} seed {seed}: {macs / base_macs:.3f} MACs, "
              f"mIoU {before.miou:.2f} -> {after['miou']:.2f}", file=sys.stderr)
        return row

    baseline_metrics = score(base)
    grid = [run(float(k), float(r), "spectral", 0) for k in args.keeps.split(",") for r in args.ratios.split(",")]
    seeds = list(args.seeds)
    done = {(g["keep_freq"], g["channel_ratio"], "spectral", 0): g for g in grid}
    comparison = []
    for pair in filter(None, args.compare.split(",")):
        keep, ratio = (float(v) for v in pair.split(":"))
        for importance in args.importances.split(","):
            rows = []
            for seed in seeds:
                key = (keep, ratio, importance, seed)
                rows.append(done[key] if key in done else run(keep, ratio, importance, seed))
            comparison.append({"keep_freq": keep, "channel_ratio": ratio, "importance": importance,
                               "gmacs": rows[0]["gmacs"], "seeds": seeds, "miou": [r["miou"] for r in rows],
                               "miou_median": statistics.median(r["miou"] for r in rows)})
    report = make_report(
        "bench.compression", command=command_line(__file__, argv, ROOT),
        accuracy_split=VAL_SPLIT,
        baseline={"checkpoint": str(args.baseline.name), "gmacs": base_macs / 1e9, "miou": baseline_metrics.miou,
                  "macc": baseline_metrics.macc},
        input_size=list(size), finetune={"epochs": args.epochs, "lr": args.lr, "optimizer": "adamw", "loss": "ce"},
        trunc_mode=args.mode, grid=grid, equal_macs=comparison)
    save_json(args.out, report)
    _plot(report, args.out.with_suffix(".png"))
    rows = [[g["keep_freq"], g["channel_ratio"], g["gmacs"], 100 * g["macs_fraction"], g["miou_before_finetune"],
             g["miou"]] for g in grid]
    print(format_table(rows, ["keep", "ratio", "GMACs", "% MACs", "mIoU pruned", "mIoU tuned"]))
    print(f"baseline mIoU {baseline_metrics.miou:.2f} at {base_macs / 1e9:.2f} GMACs")
    for c in comparison:
        print(f"equal MACs keep {c['keep_freq']} ratio {c['channel_ratio']}: {c['importance']} mIoU {c['miou']}")
    return 0


def _plot(report: dict, path: Path) -> None:
    from segprune.plots import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for ratio in sorted({g["channel_ratio"] for g in report["grid"]}):
        pts = sorted((g["gmacs"], g["miou"], g["keep_freq"]) for g in report["grid"] if g["channel_ratio"] == ratio)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=f"channel ratio {ratio}")
        for x, y, k in pts:
            ax.annotate(f"f={k}", (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    markers = {"l1": "x", "spectral": "+", "spectral-l1": "^"}
    pairs = sorted({(c["keep_freq"], c["channel_ratio"]) for c in report["equal_macs"]})
    for c in report["equal_macs"]:  # colour: the configuration; marker: the importance
        colour = f"C{3 + pairs.index((c['keep_freq'], c['channel_ratio']))}"
        ax.scatter([c["gmacs"]] * len(c["miou"]), c["miou"], marker=markers.get(c["importance"], "o"), s=50,
                   color=colour, facecolors="none" if c["importance"] == "spectral-l1" else None,
                   label=f"{c['importance']} (f={c['keep_freq']}, r={c['channel_ratio']})")
    ax.axhline(report["baseline"]["miou"], color="grey", ls="--", lw=0.8, label="unpruned")
    ax.set(xlabel="GMACs at 180x240", ylabel="CamVid val mIoU %",
           title=f"Compression after {report['finetune']['epochs']} fine-tuning epoch(s)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, path)


if __name__ == "__main__":
    sys.exit(main())
