"""``segprune check``: a bench result against the recorded baseline; exit 1 on a regression."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from segprune.cli.common import add_output_args, emit

NAME = "check"
HELP = "compare a bench result with its baseline: exit 1 on an accuracy or latency regression"
DESCRIPTION = ("Compare every result in a `segprune bench --report` JSON with the baseline entry of the same "
               "backend, precision, input shape and device in CARD_DIR/baselines.json. mIoU and mAcc may drop by at "
               "most --miou-tol points. The p50 latency may exceed the baseline p50 by --latency-tol plus three "
               "standard errors of the baseline's median (from its median absolute deviation); above that the model is timed again (--remeasure "
               "series) and the median of all p50s decides. Exit 0: no regression; 1: a regression; 2: no baseline "
               "for this device (the message gives the command that records one) or bad input.")


def _fraction(text: str) -> float:
    try:
        return float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a fraction: write 10% or 0.1") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("result", type=Path, help="a bench report: `segprune bench ... --report RESULT.json`")
    parser.add_argument("--baseline", type=Path, required=True, metavar="CARD_DIR",
                        help="model card folder holding baselines.json, e.g. models/deeplabv3plus_resnet18_camvid/")
    parser.add_argument("--miou-tol", type=float, default=0.5, metavar="POINTS",
                        help="largest allowed mIoU (and mAcc) drop, absolute points")
    parser.add_argument("--latency-tol", type=_fraction, default=0.10, metavar="FRACTION",
                        help="allowed p50 increase relative to the baseline (10%% or 0.1), before the spread term")
    parser.add_argument("--remeasure", type=int, default=3, metavar="K",
                        help="extra timing series before a latency failure stands (0: decide on the result alone)")
    add_output_args(parser)


def run(args: argparse.Namespace) -> int:
    from segprune.errors import ConfigError, RegressionFound
    from segprune.io import load_json
    from segprune.regress import Tolerances, check_report, load_baselines, outcome_table
    from segprune.regress.schema import check_bench_report
    from segprune.report import make_report

    if not args.result.is_file():
        raise ConfigError(f"{args.result} does not exist: write one with `segprune bench MODEL --report {args.result}`")
    report = load_json(args.result)
    check_bench_report(report, str(args.result))
    entries = load_baselines(args.baseline)
    tol = Tolerances(miou=args.miou_tol, latency=args.latency_tol, remeasure=args.remeasure)
    outcomes = check_report(report, entries, tol)
    out = make_report("check", result=str(args.result), baseline=str(args.baseline),
                      tolerances={"miou": tol.miou, "latency": tol.latency, "remeasure": tol.remeasure},
                      outcomes=[o.to_dict() for o in outcomes])
    emit(args, out, outcome_table(outcomes))
    missing = [(r, o) for r, o in zip(report["results"], outcomes, strict=True) if o.missing]
    if missing:
        result, outcome = missing[0]
        raise ConfigError(f"no baseline for {outcome.key} in {args.baseline}: "
                          f"record one with `{_record_command(result, report['settings'], args.baseline)}`")
    failed = [o.key for o in outcomes if not o.passed]
    if failed:
        raise RegressionFound(f"regression in {', '.join(failed)} (table above)")
    return 0


def _record_command(result: dict, settings: dict, card: Path) -> str:
    shape = result["input_shape"]
    parts = ["segprune", "bench", result["model"], "--backend", result["backend"], "--precision", result["precision"],
             "--input-size", f"{shape[2]}x{shape[3]}", "--batch-size", str(shape[0]), "--data", settings["data"],
             "--split", settings["split"], "--record", str(card)]
    if result["device"].get("threads"):
        parts += ["--threads", str(result["device"]["threads"])]
    if result["device"]["kind"] == "cuda":
        parts += ["--device", "cuda"]
    return shlex.join(parts)
