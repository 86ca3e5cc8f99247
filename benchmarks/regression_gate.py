"""Does the latency gate cry wolf, and does it catch a real slowdown? Both error rates, measured here.

1. Record a baseline for an ONNX model (onnxruntime CPU, the way ``segprune bench --record``
   does), then run ``--checks`` independent bench + check rounds of the *unchanged* model:
   every failure is a false alarm.
2. Plant a slowdown of about ``--slowdown`` (25 %) with
   :func:`segprune.regress.planted.plant_slowdown` (identity convolutions: bit-identical
   logits, extra time only), sized here by measuring it side by side with the original,
   then run the same number of rounds on it: every pass is a missed regression.

Each round is what CI does: ``segprune bench`` (``--runs`` timed calls) then ``segprune
check`` with the default tolerances (10 %, three standard errors of the baseline median,
up to 3 re-measurements). Default model: the CamVid DeepLabV3+ R18 fp32 export at 180x240
written by ``benchmarks/deployment.py``. Writes ``benchmarks/results/regression_gate.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT / "benchmarks" / "cache" / "deploy" / "onnx" / "baseline_180x240" / "model.fp32.onnx"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--data", default=f"camvid:{ROOT.parent / 'shared' / 'data' / 'camvid'}")
    parser.add_argument("--input-size", default="180x240")
    parser.add_argument("--checks", type=int, default=20)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--slowdown", type=float, default=0.25)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "regression_gate.json")
    args = parser.parse_args(argv)

    from segprune.bench import BenchSettings, bench, measure, open_runner
    from segprune.bench.run import latency_images
    from segprune.cli.common import parse_size
    from segprune.io import save_json
    from segprune.regress import Tolerances, check_result, record_baselines
    from segprune.regress.baselines import load_baselines
    from segprune.regress.planted import plant_slowdown
    from segprune.regress.remeasure import lazy_remeasurer
    from segprune.report import command_line, make_report

    if not args.model.is_file():
        print(f"{args.model} not found: run benchmarks/deployment.py first or pass --model", file=sys.stderr)
        return 2
    size = parse_size(args.input_size)
    work = ROOT / "benchmarks" / "cache" / "gate"
    card = work / "card"
    card.mkdir(parents=True, exist_ok=True)
    (card / "baselines.json").unlink(missing_ok=True)
    started = time.perf_counter()

    def bench_report(path: Path) -> dict:
        runner = open_runner(path, "onnxruntime", threads=args.threads)
        settings = BenchSettings(data=args.data, input_size=size, warmup=5, runs=args.runs, rounds=1,
                                 accuracy=False, progress=False)
        return make_report("bench", **bench({path.name: runner}, settings, threads=args.threads))

    base = bench_report(args.model)
    record_baselines(card, base)
    entries = load_baselines(card)
    tol = Tolerances()

    def rounds(path: Path, label: str) -> list[dict]:
        out = []
        for i in range(args.checks):
            report = bench_report(path)
            result = report["results"][0]
            calls = {"n": 0}
            again = lazy_remeasurer(result, report["settings"])

            def counted(again=again, calls=calls) -> float:
                calls["n"] += 1
                return again()

            outcome = check_result(result, entries, tol, counted)
            row = outcome.rows[-1]
            out.append({"p50_ms": result["latency"]["p50_ms"], "decided_ms": row.current, "limit_ms": row.limit,
                        "passed": row.passed, "remeasured": calls["n"]})
            print(f"{label} {i + 1}/{args.checks}: p50 {result['latency']['p50_ms']:.2f} ms -> "
                  f"{row.current:.2f} vs limit {row.limit:.2f}: {'pass' if row.passed else 'FAIL'}"
                  + (f" ({calls['n']} re-measured)" if calls["n"] else ""), file=sys.stderr, flush=True)
        return out

    unchanged = rounds(args.model, "unchanged")

    # Size the planted slowdown by measuring candidates side by side with the original.
    width, pairs, sizing = 64, 1, []
    slow_path = work / "planted.onnx"
    fast_runner = open_runner(args.model, "onnxruntime", threads=args.threads)
    images = latency_images(BenchSettings(data=args.data, input_size=size))
    while True:
        plant_slowdown(args.model, slow_path, pairs=pairs, width=width)
        slow_runner = open_runner(slow_path, "onnxruntime", threads=args.threads)
        timed = measure({"fast": lambda w, n: fast_runner.time_inference(images, w, n),
                         "slow": lambda w, n, r=slow_runner: r.time_inference(images, w, n)}, warmup=3, runs=40, rounds=4)
        factor = timed["slow"][0].p50_ms / timed["fast"][0].p50_ms
        sizing.append({"pairs": pairs, "width": width, "slowdown": factor - 1})
        print(f"planted {pairs} pairs x {width}: {100 * (factor - 1):.1f}% slower", file=sys.stderr)
        if factor - 1 >= args.slowdown or pairs >= 64:
            break
        pairs = max(pairs + 1, round(pairs * args.slowdown / max(factor - 1, 0.02)))
    slowed = rounds(slow_path, "planted")

    def rate(rows: list[dict], failing: bool) -> int:
        return sum((not r["passed"]) if failing else r["passed"] for r in rows)

    summary = {
        "baseline_p50_ms": base["results"][0]["latency"]["p50_ms"],
        "baseline_mad_ms": base["results"][0]["latency"]["mad_ms"],
        "limit_ms": unchanged[0]["limit_ms"],
        "unchanged_checks": len(unchanged), "false_alarms": rate(unchanged, True),
        "unchanged_remeasured": sum(r["remeasured"] > 0 for r in unchanged),
        "planted_slowdown": sizing[-1]["slowdown"], "planted_checks": len(slowed),
        "planted_caught": rate(slowed, True),
        "planted_median_p50_ms": statistics.median(r["p50_ms"] for r in slowed),
        "goal_no_false_alarm": rate(unchanged, True) == 0, "goal_all_caught": rate(slowed, True) == len(slowed),
    }
    report = make_report("bench.regression_gate", command=command_line(__file__, argv, ROOT), model=str(args.model),
                         data=args.data, input_size=list(size), runs=args.runs, threads=args.threads,
                         tolerances={"latency": tol.latency, "remeasure": tol.remeasure}, baseline=base["results"][0],
                         unchanged=unchanged, planted_sizing=sizing, planted=slowed, summary=summary,
                         seconds=time.perf_counter() - started)
    save_json(args.out, report)
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
