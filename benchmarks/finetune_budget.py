"""Compression with a larger fine-tuning budget: how close does about half the MACs get to the baseline?

``benchmarks/compression.py`` gives every configuration one epoch of cross-entropy. This runs
the configuration that reached 2x on onnxruntime in ``benchmarks/deployment.py`` (keep-freq
0.25, half of the ASPP and decoder channels removed) with ``--epochs`` of fine-tuning with
cross-entropy plus distillation from the unpruned model, once per ``--importances`` (e.g.
torch-pruning's L1 magnitude, segprune's spectral and spectral-l1; same layers, same ratio:
equal MACs) and seed. Everything goes through ``segprune prune``; ``--reuse`` takes runs
already in ``benchmarks/cache/budget`` instead of repeating them.

Writes ``benchmarks/results/finetune_budget.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--camvid", type=Path, default=ROOT.parent / "shared" / "data" / "camvid")
    parser.add_argument("--baseline", type=Path, default=ROOT / "benchmarks" / "cache" / "camvid_r18" / "last.safetensors")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--importances", default="l1,spectral")
    parser.add_argument("--kd", type=float, default=1.0)
    parser.add_argument("--reuse", action="store_true",
                        help="take a run whose report is already in benchmarks/cache/budget instead of redoing it "
                             "(same command line only: the cache is keyed by importance and seed)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "finetune_budget.json")
    args = parser.parse_args(argv)

    from segprune.cli.main import main as segprune
    from segprune.io import load_json, save_json
    from segprune.report import make_report

    if not args.baseline.is_file():
        print(f"no baseline checkpoint at {args.baseline}: run benchmarks/camvid_baseline.py first", file=sys.stderr)
        return 2
    started = time.perf_counter()
    runs = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for importance in args.importances.split(","):
            out = ROOT / "benchmarks" / "cache" / "budget" / f"{importance}_seed{seed}"
            argv_prune = ["prune", str(args.baseline), "--data", f"camvid:{args.camvid}", "--input-size", "180x240",
                          "--keep-freq", "0.25", "--trunc-mode", "area", "--channel-ratio", "0.5", "--scope", "head",
                          "--importance", importance, "--finetune-epochs", str(args.epochs), "--kd", str(args.kd),
                          "--lr", "5e-4", "--batch-size", "8", "--seed", str(seed), "--threads", "2",
                          "--no-progress", "--out", str(out)]
            t0 = time.perf_counter()
            if args.reuse and (out / "report.json").is_file():
                print(f"{importance} seed {seed}: reusing {out / 'report.json'}", file=sys.stderr, flush=True)
            else:
                print(f"{importance} seed {seed}: {args.epochs} epochs", file=sys.stderr, flush=True)
                with contextlib.redirect_stdout(io.StringIO()):
                    code = segprune(argv_prune)
                if code:
                    return code
            report = load_json(out / "report.json")
            stages = {s["stage"]: s for s in report["stages"]}
            runs.append({"importance": importance, "seed": seed, "gmacs": stages["fine-tuned"]["gmacs"],
                         "macs_fraction": stages["fine-tuned"]["gmacs"] / stages["original"]["gmacs"],
                         "miou_original": stages["original"]["miou"], "miou_pruned": stages["compressed"]["miou"],
                         "miou": stages["fine-tuned"]["miou"], "macc": stages["fine-tuned"]["macc"],
                         "seconds": report.get("seconds", time.perf_counter() - t0)})
            print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    summary = {}
    for importance in args.importances.split(","):
        mine = [r["miou"] for r in runs if r["importance"] == importance]
        summary[importance] = {"miou_median": statistics.median(mine), "miou_runs": mine,
                               "loss_vs_original": runs[0]["miou_original"] - statistics.median(mine)}
    save_json(args.out, make_report("bench.finetune_budget", command="python benchmarks/finetune_budget.py "
                                    + " ".join(argv if argv is not None else sys.argv[1:]),
                                    epochs=args.epochs, kd=args.kd, runs=runs, summary=summary,
                                    seconds=time.perf_counter() - started))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
