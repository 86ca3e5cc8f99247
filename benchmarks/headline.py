"""The compression headline: a third of the MACs against an honest control, its speed, its int8 graph.

Reads the Pareto runs that ``benchmarks/finetune_budget.py`` wrote (one JSON per MACs target,
each with the control: the unpruned model fine-tuned with the same budget, recipe and seeds)
and, in this one run:

1. the Pareto curve: per MACs target and channel ranking, the median and spread of val mIoU
   over seeds, against the control and the baseline (``headline.png``);
2. the headline point (``--headline-macs``): its runs and median, the control's, and
   spectral-l1 minus L1 paired per seed (same seed: same fine-tuning batches), on the uniform-width
   report at that target or, for a headline run at another budget, ``--ranking-from``'s;
3. speed: the headline model (seed ``--seed``), the same ranking and seed at the other MACs
   targets (where their checkpoints are on this machine) and the unpruned baseline exported to ONNX
   fp32 at every ``--latency-sizes`` and timed side by side, interleaved, in onnxruntime on
   the CPU with ``--threads`` threads (latency does not depend on the weights, only on the
   architecture, which every seed shares);
4. int8: the headline model's fp32 and int8 (Q/DQ, calibrated on 32 train images) graphs
   scored on the whole val split in onnxruntime at the training size.

Writes ``benchmarks/results/headline.json`` (``--out``), with every goal of the issue and
whether it was met, the commands of the runs it read, and the machine.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

from camvid_setup import VAL_SPLIT, export_camvid

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
GOALS = {"macs_fraction": 0.33, "loss_vs_control": 1.0, "speedup_ort_fp32": 2.5, "int8_delta_miou": 0.5,
         "paired_spectral_minus_l1": 1.0}
GOAL_SEEDS = 3  # the medians are over at least this many seeds
# What must be equal for reports to sit on one Pareto curve: the same baseline (path and val score, so a
# retrained baseline at the same path is caught), input size, band, pruning scope and fine-tuning budget.
# The control prunes nothing, so reports share it when the baseline and budget agree. The layers a report
# protects (--protect) are not a curve key: they make their own arm on the curve, since comparing widths per
# stage against uniform widths on one baseline and budget is the point of running them.
CONTROL_KEYS = ("baseline", "baseline_miou", "size", "epochs", "lr", "kd", "accuracy_split")
CURVE_KEYS = (*CONTROL_KEYS, "mode", "calib_images", "keep_freq", "scope", "prune_steps", "feature_kd")
# What must be equal for another budget's uniform-width runs to pair the rankings for a headline (--ranking-from):
# the rankings are then compared on the headline's model and data; the budget and band may differ (paired_from says).
RANKING_KEYS = ("baseline", "baseline_miou", "size", "accuracy_split", "scope")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pareto", type=Path, nargs="+", default=None,
                        help="finetune_budget.py reports, one per MACs target, all of one baseline and budget "
                             "(default: those of results/pareto_macs*.json that share the headline report's)")
    parser.add_argument("--headline-macs", type=float, default=0.33, help="MACs target of the headline point")
    parser.add_argument("--ranking", default="spectral-l1", help="the headline's channel ranking")
    parser.add_argument("--protect", default="",
                        help="the headline's protected layers, comma-separated as given to finetune_budget.py "
                             "--protect (default: none, uniform widths); spectral-l1 minus L1 is then paired on "
                             "the uniform-width report at the same target, which --pareto should name too")
    parser.add_argument("--ranking-from", type=Path, nargs="+", default=None,
                        help="finetune_budget.py reports of the same baseline, size and scope but another budget or "
                             "band, whose uniform-width report at --headline-macs pairs spectral-l1 against L1 "
                             "where the headline's own curve has no such report (a longer budget run for the "
                             "headline only); the JSON records which budget the pairs came from")
    parser.add_argument("--seed", type=int, default=0, help="the headline run whose model is exported and timed")
    parser.add_argument("--deployment-from", type=Path, default=None,
                        help="a headline JSON that exported, timed and checked in int8 this same model (the run of "
                             "--seed, by its checkpoint and val mIoU): its figures are taken instead of measuring "
                             "them again, where the checkpoint is gone (the run cache is not committed) and only the "
                             "accuracy side changed (e.g. a control seed added); the JSON names where they came from")
    parser.add_argument("--camvid", type=Path, default=ROOT.parent / "shared" / "data" / "camvid")
    parser.add_argument("--latency-sizes", default="360x480,512x1024", help="comma-separated HxW timed in onnxruntime")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    parser.add_argument("--runs", type=int, default=20, help="timed runs per model, round and size")
    parser.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / "cache" / "headline",
                        help="ONNX exports (replaced on every run)")
    parser.add_argument("--curve-only", action="store_true",
                        help="the Pareto curve and the headline's accuracy only: no export, no timing, no int8 "
                             "(needs no checkpoint; written to results/pareto.json unless --out is given)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON written here, atomically (default: results/headline.json, or results/pareto.json "
                             "with --curve-only)")
    args = parser.parse_args(argv)
    args.out = args.out or RESULTS / ("pareto.json" if args.curve_only else "headline.json")
    explicit = args.pareto is not None
    args.pareto = args.pareto if explicit else sorted(RESULTS.glob("pareto_macs*.json"))
    if not args.pareto:
        print("no Pareto runs: run benchmarks/finetune_budget.py --control --target-macs X --out "
              "benchmarks/results/pareto_macsX.json first", file=sys.stderr)
        return 2

    from segprune.cli.common import parse_size
    from segprune.compress.scope import protect_names
    from segprune.io import load_json, save_json
    from segprune.report import command_line, make_report, portable_path

    started = time.perf_counter()
    protect = sorted(protect_names(args.protect))
    try:
        reports = select_curve({p: load_json(p) for p in args.pareto}, args.headline_macs, explicit, protect)
        curve = pareto(reports)
        point = headline(reports, args.headline_macs, args.ranking, protect)
        if args.ranking_from:
            point |= ranking_elsewhere(point, [load_json(p) for p in args.ranking_from], args.headline_macs)
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2
    run = next((r for r in point["report"]["runs"] if r["importance"] == args.ranking and r["seed"] == args.seed),
               None)
    model = None
    if not args.curve_only:
        if run is None:
            print(f"the {args.headline_macs:g} report has no {args.ranking} run with seed {args.seed}: pass --seed "
                  f"one of {sorted(point['miou_runs'])}", file=sys.stderr)
            return 2
        model = run.get("checkpoint")
        if model is None:
            print(f"no {args.ranking} run with seed {args.seed} recorded its checkpoint: rerun finetune_budget.py "
                  "with --reuse to rewrite the JSON", file=sys.stderr)
            return 2
        if args.deployment_from is None and not (ROOT / model).is_file():
            print(f"the headline model {model} is not on this machine: rerun the finetune_budget.py command of "
                  f"{args.headline_macs:g} (its cache is not committed), pass --deployment-from the headline JSON "
                  "that timed it, or pass --curve-only", file=sys.stderr)
            return 2
    baseline = point["report"]["baseline"]
    deploy: dict = {"summary": {}, "runs": {}}
    if model is not None and args.deployment_from is not None:
        try:
            deploy = deployment_elsewhere(load_json(args.deployment_from), model, args.seed, run["miou"],
                                          portable_path(args.deployment_from, ROOT))
        except ValueError as err:
            print(err, file=sys.stderr)
            return 2
    elif model is not None:
        size = tuple(parse_size(point["report"]["size"]))
        others = other_points(reports, point["report"], args.ranking, args.seed)
        for name, path in list(others.items()):
            if not (ROOT / path).is_file():
                print(f"not timing {name}: {path} is not on this machine", file=sys.stderr)
                del others[name]
        deploy = measure_deployment(ROOT / baseline, ROOT / model, f"camvid:{args.camvid}", size,
                                    [tuple(parse_size(s)) for s in args.latency_sizes.split(",")], args,
                                    {name: ROOT / path for name, path in others.items()})
    if model is not None:
        timed = {**deploy["summary"]["pareto_speedup_ort_fp32"],
                 point_name(point["report"]): deploy["summary"]["speedup_ort_fp32"]}
        for row in curve:
            if row.get("ranking") == args.ranking and row["target_macs"] is not None:
                row["speedup_ort_fp32"] = timed.get(point_name(row))
    summary = {
        "macs_fraction": point["macs_fraction"], "ranking": args.ranking, "protect": protect,
        "miou_runs": point["miou_runs"], "miou_median": point["miou_median"],
        "control_runs": point["control_runs"], "control_median": point["control_median"],
        "loss_vs_control": point["control_median"] - point["miou_median"],
        "baseline_miou": point["baseline_miou"], "l1_runs": point["l1_runs"],
        "paired_spectral_minus_l1": point["paired"],
        "paired_mean": statistics.fmean(point["paired"].values()) if point["paired"] else float("nan"),
        "paired_over_uniform": point["over_uniform"], "paired_from": point.get("paired_from"),
        **deploy["summary"], "deployment_from": deploy.get("from"),
        "accuracy_split": VAL_SPLIT,
    }
    goals = accuracy_goals(summary)
    if model is not None:
        goals["speedup_ort_fp32"] = all(v >= GOALS["speedup_ort_fp32"] for v in summary["speedup_ort_fp32"].values())
        goals["int8_within_0.5"] = abs(summary["int8_delta_miou"]) <= GOALS["int8_delta_miou"]
    report = make_report(
        "bench.pareto" if model is None else "bench.headline", command=command_line(__file__, argv, ROOT),
        pareto_commands=[r["command"] for r in reports], model=model, baseline=baseline, **summary, goals=goals,
        pareto=curve, deployment=deploy["runs"],
        seconds=time.perf_counter() - started)
    report["machine"] = report["environment"]
    save_json(args.out, report)
    plot(curve, summary, args.out.with_suffix(".png"))
    print(json.dumps({**summary, "goals": goals}, indent=2))
    return 0


def accuracy_goals(summary: dict) -> dict[str, bool]:
    """The issue's accuracy goals, each met only as a median over at least GOAL_SEEDS seeds: the loss against
    the control on both sides (one lucky seed of either would decide it), the ranking's paired difference
    over that many pairs."""
    seeds = min(len(summary["miou_runs"]), len(summary["control_runs"]))
    return {
        "macs_fraction": summary["macs_fraction"] <= GOALS["macs_fraction"] + 5e-3,
        "within_1_of_control": seeds >= GOAL_SEEDS and summary["loss_vs_control"] <= GOALS["loss_vs_control"],
        "paired_spectral_minus_l1": (len(summary["paired_spectral_minus_l1"]) >= GOAL_SEEDS
                                     and summary["paired_mean"] >= GOALS["paired_spectral_minus_l1"]),
    }


def select_curve(reports: dict[Path, dict], target: float, explicit: bool,
                 protect: list[str] | None = None) -> list[dict]:
    """The reports on the headline's curve: one per MACs target and protected set, all of the headline
    report's recipe.

    The headline report is the first at ``target`` that protects ``protect``; found by the default glob, a
    report of the held-out video at the same target gives way to the val one. Another recipe is refused
    when the user named the report (``explicit``) and left out with a line on stderr when the glob found
    it; two reports at one target and protected set are refused either way (their seeds would be split
    between two rows).
    """
    protect = sorted(protect or ())
    candidates = [(p, r) for p, r in reports.items() if is_at(r, target, protect)]
    if not candidates:
        spared = f" protecting {','.join(protect)}" if protect else " at uniform widths"
        raise ValueError(f"no Pareto run has target {target:g}{spared}: pass its JSON with --pareto")
    if not explicit and len(candidates) > 1:  # named ones: the first is the headline's, the others are checked
        candidates = [(p, r) for p, r in candidates if r.get("accuracy_split") == VAL_SPLIT] or candidates
        if len(candidates) > 1:
            raise ValueError(f"{len(candidates)} reports at target {target:g} "
                             f"({', '.join(str(p) for p, _ in candidates)}): pass the headline's with --pareto")
    head = candidates[0][1]
    on_curve: dict[tuple[float, tuple[str, ...]], tuple[Path, dict]] = {}
    for path, report in reports.items():
        why = "no --target-macs" if report.get("target_macs") is None else mismatch(report, head, CURVE_KEYS)
        if why and explicit:
            raise ValueError(f"{path} is not on the headline's curve ({why}): pass reports of one baseline and budget")
        if why:
            print(f"leaving out {path.name}: {why}", file=sys.stderr)
            continue
        key = (report["target_macs"], tuple(recipe(report)["protect"]))
        if (twin := on_curve.get(key)) is not None:
            raise ValueError(f"{twin[0]} and {path} are both at target {report['target_macs']:g} with the same "
                             "protected layers: merge their runs into one report (finetune_budget.py --reuse with "
                             "all the seeds) or pass one")
        on_curve[key] = (path, report)
    return [report for _, report in on_curve.values()]


def recipe(report: dict) -> dict:
    """The fields of CURVE_KEYS: the baseline as a path from the repository root (a report may hold it
    absolute or relative), its val score from the runs (every run records it), and the truncation mode
    and calibration images from the run folder's name where the report has no field for them."""
    from segprune.report import portable_path

    config = report.get("config", "").split("_")
    baseline = report.get("baseline")
    if baseline is not None:
        baseline = portable_path(ROOT / baseline, ROOT)
    return {**{key: report.get(key) for key in CURVE_KEYS}, "baseline": baseline,
            "protect": sorted(report.get("protect") or ()),  # reports before --protect protected nothing
            "baseline_miou": report["runs"][0]["miou_original"],
            "mode": report.get("mode", config[1] if len(config) > 2 else None),
            "calib_images": report.get("calib_images", config[2].removeprefix("calib") if len(config) > 2 else None)}


def mismatch(report: dict, reference: dict, keys: tuple[str, ...]) -> str | None:
    """The first of ``keys`` in which the two reports differ, as 'key a != b'; None when they agree.

    The baseline's val score is compared to 1e-3: the same weights re-scored on another machine may
    move in the last bits, a retrained baseline moves by far more."""
    mine, theirs = recipe(report), recipe(reference)

    def same(key: str) -> bool:
        if key == "baseline_miou":
            return math.isclose(mine[key], theirs[key], abs_tol=1e-3)
        return mine[key] == theirs[key]

    return next((f"{key} {mine[key]} != {theirs[key]}" for key in keys if not same(key)), None)


def controls(reports: list[dict], reference: dict) -> dict[int, float]:
    """The control's val mIoU by seed, pooled over the reports that share ``reference``'s baseline and budget.

    The control prunes nothing, so every MACs target of one budget shares it (finetune_budget.py caches
    it once); a report run without ``--control`` takes it from another. Two different figures for one
    seed mean two different controls: that is an error, not a choice.
    """
    pooled: dict[int, float] = {}
    for report in reports:
        if mismatch(report, reference, CONTROL_KEYS):
            continue
        for run in report["runs"]:
            if run["importance"] != "control":
                continue
            if pooled.setdefault(run["seed"], run["miou"]) != run["miou"]:
                raise ValueError(f"two controls for seed {run['seed']} ({pooled[run['seed']]:.4f} and "
                                 f"{run['miou']:.4f}) in reports of one baseline and budget: rerun one with --reuse")
    return dict(sorted(pooled.items()))


def arm_name(importance: str, report: dict) -> str:
    """A curve arm: the ranking, and the layers its report protected (widths per stage) when it did."""
    protect = recipe(report)["protect"]
    return f"{importance}, protect {'+'.join(protect)}" if protect else importance


def pareto(reports: list[dict]) -> list[dict]:
    """One row per MACs target, ranking and protected set, and one for the control they share: median,
    min and max val mIoU over seeds."""
    rows = []
    pooled = controls(reports, reports[0]) if reports else {}
    if pooled:
        rows.append({"target_macs": None, "arm": "control", "macs_fraction": 1.0, "seeds": list(pooled),
                     "miou_runs": list(pooled.values()), "miou_median": statistics.median(pooled.values()),
                     "miou_min": min(pooled.values()), "miou_max": max(pooled.values())})
    for report in reports:
        for arm in report["summary"]:
            if arm == "control":
                continue
            runs = [r for r in report["runs"] if r["importance"] == arm]
            mious = [r["miou"] for r in runs]
            rows.append({"target_macs": report.get("target_macs"), "arm": arm_name(arm, report), "ranking": arm,
                         "protect": recipe(report)["protect"],
                         "macs_fraction": statistics.median(r["macs_fraction"] for r in runs),
                         "seeds": [r["seed"] for r in runs], "miou_runs": mious,
                         "miou_median": statistics.median(mious), "miou_min": min(mious), "miou_max": max(mious)})
    return rows


def is_at(report: dict, target: float, protect: list[str] | None = None) -> bool:
    """Whether ``report`` was run with ``--target-macs target`` and protected ``protect`` (none: uniform)."""
    return (report.get("target_macs") is not None and abs(report["target_macs"] - target) < 1e-9
            and recipe(report)["protect"] == sorted(protect or ()))


def at_target(reports: list[dict], target: float, protect: list[str] | None = None) -> dict | None:
    """The first report whose ``--target-macs`` was ``target`` and that protected ``protect``."""
    return next((r for r in reports if is_at(r, target, protect)), None)


def headline(reports: list[dict], target: float, ranking: str, protect: list[str] | None = None) -> dict | None:
    """The runs at ``target`` (protecting ``protect``): the ranking's and the control's; spectral-l1 minus
    L1 per seed; and, for a protected headline, its difference per seed to each uniform-width ranking.

    The rankings are paired on the uniform-width report at ``target``: with layers protected the two
    rankings may give one model (at keep 0.75 the spectral factor acts only where the protected layers
    are), so pairing them there would measure nothing.
    """
    report = at_target(reports, target, protect)
    if report is None:
        return None
    uniform = at_target(reports, target) or {"runs": []}

    mine, control = runs_by_seed(report, ranking), controls(reports, report)
    if not mine:
        arms = sorted({r["importance"] for r in report["runs"]} - {"control"})
        raise ValueError(f"the {target:g} report has no {ranking} runs: pass --ranking one of {', '.join(arms)}")
    over_uniform = {} if report is uniform else {
        arm: {seed: mine[seed] - theirs[seed] for seed in sorted(mine) if seed in theirs}
        for arm in ("spectral-l1", "l1") if (theirs := runs_by_seed(uniform, arm))}
    fractions = [r["macs_fraction"] for r in report["runs"] if r["importance"] == ranking]
    return {"report": report, "macs_fraction": statistics.median(fractions), "miou_runs": mine,
            "miou_median": statistics.median(mine.values()), "control_runs": control,
            "control_median": statistics.median(control.values()) if control else float("nan"),
            "baseline_miou": report["runs"][0]["miou_original"], **paired_rankings(uniform),
            "over_uniform": over_uniform}


def runs_by_seed(report: dict, arm: str) -> dict[int, float]:
    """The val mIoU of ``arm``'s runs in ``report``, by seed."""
    return {r["seed"]: r["miou"] for r in report["runs"] if r["importance"] == arm}


def paired_rankings(uniform: dict) -> dict:
    """L1's runs and spectral-l1 minus L1 per seed in a uniform-width report (same seed: same batches)."""
    spectral, l1 = runs_by_seed(uniform, "spectral-l1"), runs_by_seed(uniform, "l1")
    return {"l1_runs": l1, "paired": {seed: spectral[seed] - l1[seed] for seed in sorted(spectral) if seed in l1}}


def ranking_elsewhere(point: dict, reports: list[dict], target: float) -> dict:
    """The rankings paired on another budget's uniform-width report at ``target`` (``--ranking-from``).

    A headline run at a longer budget (or another band) need not repeat the uniform-width ranking runs that
    its curve's budget already paired: with the same baseline, size and scope the two rankings are compared
    on the headline's model and data, and ``paired_from`` says at which budget and band. Refused where
    the headline's curve pairs them itself, so there is one answer, not a choice.
    """
    if point["paired"]:
        raise ValueError("the headline's own curve pairs spectral-l1 against L1 at its target: drop --ranking-from")
    uniform = at_target(reports, target)
    if uniform is None:
        raise ValueError(f"no --ranking-from report has target {target:g} at uniform widths")
    if why := mismatch(uniform, point["report"], RANKING_KEYS):
        raise ValueError(f"the --ranking-from report at {target:g} ranks another model ({why})")
    pairs = paired_rankings(uniform)
    if not pairs["paired"]:
        raise ValueError(f"the --ranking-from report at {target:g} has no seed run with both spectral-l1 and l1")
    return {**pairs, "paired_from": {"command": uniform["command"], "keep_freq": uniform["keep_freq"],
                                     "epochs": uniform["epochs"]}}


def point_name(report_or_row: dict) -> str:
    """'macs<target>', and '_protect' for a report with protected layers: how a point's model is named among
    the timed ones."""
    spared = recipe(report_or_row)["protect"] if "runs" in report_or_row else report_or_row["protect"]
    return f"macs{report_or_row['target_macs']:g}" + ("_protect" if spared else "")


def other_points(reports: list[dict], head: dict, ranking: str, seed: int) -> dict[str, str]:
    """The checkpoint of ``ranking``'s run ``seed`` at every MACs target but the headline's, by point_name;
    a target whose run recorded none is named on stderr."""
    found = {}
    for report in reports:
        if report is head:
            continue
        run = next((r for r in report["runs"] if r["importance"] == ranking and r["seed"] == seed), None)
        if run is None or not run.get("checkpoint"):
            print(f"not timing {point_name(report)}: no {ranking} seed {seed} checkpoint recorded", file=sys.stderr)
        else:
            found[point_name(report)] = run["checkpoint"]
    return found


DEPLOYMENT_KEYS = ("int8_miou", "fp32_onnx_miou", "int8_delta_miou", "speedup_ort_fp32", "p50_ms",
                   "pareto_speedup_ort_fp32")
"""What :func:`measure_deployment` adds to the headline's summary."""


def deployment_elsewhere(prior: dict, model: str, seed: int, miou: float, source: str) -> dict:
    """:func:`measure_deployment`'s result as the headline JSON ``prior`` (read from ``source``) recorded it for
    ``model``, the checkpoint of run ``seed`` of val mIoU ``miou``, with ``from`` naming that JSON, command and
    machine.

    Latency depends on the architecture and the int8 check on the weights, both fixed by that run; a
    headline whose accuracy side changes (another control seed) may keep them when the checkpoint is
    gone. A JSON of another model, or of the same path holding another run (another mIoU), is refused.
    """
    theirs = (prior.get("miou_runs") or {}).get(str(seed))
    if prior.get("model") != model or theirs != miou:
        raise ValueError(f"{source} timed {prior.get('model')} (seed {seed}: val mIoU {theirs}), not this "
                         f"headline's {model} (val mIoU {miou:.4f}): measure it (the finetune_budget.py command "
                         "of the headline's target, then headline.py without --deployment-from)")
    missing = [k for k in DEPLOYMENT_KEYS if k not in prior]
    if missing:
        raise ValueError(f"{source} holds no deployment figures ({', '.join(missing)}): it is a --curve-only JSON")
    return {"summary": {k: prior[k] for k in DEPLOYMENT_KEYS}, "runs": prior.get("deployment", {}),
            "from": {"report": source, "command": prior.get("command"), "machine": prior.get("machine"),
                     "created": prior.get("created")}}


def measure_deployment(baseline: Path, model: Path, data: str, size: tuple[int, int],
                       latency_sizes: list[tuple[int, int]], args: argparse.Namespace,
                       others: dict[str, Path] | None = None) -> dict:
    """Export the models through the library, time them interleaved per size, score int8 against fp32.

    ``others``: the ranking's models at the other MACs targets, timed in the same interleaved rounds so
    the curve has a speed-up per point (latency depends on the architecture only, not on the seed).
    """
    import torch

    from segprune.bench import BenchSettings, bench, open_runner
    from segprune.models import load_checkpoint

    torch.set_num_threads(args.threads)
    paths = {"unpruned": baseline, "headline": model, **(others or {})}
    models = {name: load_checkpoint(path)[0] for name, path in paths.items()}

    def export(name: str, at: tuple[int, int], precisions: tuple[str, ...]) -> Path:
        out = args.cache / f"{name}_{at[0]}x{at[1]}"
        print(f"exporting {name} at {at[0]}x{at[1]}: {','.join(precisions)}", file=sys.stderr, flush=True)
        export_camvid(models[name], out, at, precisions, data, {"checkpoint": str(paths[name]), "data": data})
        return out

    runs = {}
    accuracy_dir = export("headline", size, ("fp32", "int8"))
    runners = {f"headline {p}": open_runner(accuracy_dir / f"model.{p}.onnx", "onnxruntime", threads=args.threads)
               for p in ("fp32", "int8")}
    runs["int8"] = bench(runners, BenchSettings(data=data, input_size=size, runs=5, rounds=1, progress=False),
                         threads=args.threads)
    by = {r["label"]: r for r in runs["int8"]["results"]}
    summary = {"int8_miou": by["headline int8"]["accuracy"]["miou"], "fp32_onnx_miou": by["headline fp32"]["accuracy"]["miou"]}
    summary["int8_delta_miou"] = summary["int8_miou"] - summary["fp32_onnx_miou"]
    summary["speedup_ort_fp32"], summary["p50_ms"] = {}, {}
    summary["pareto_speedup_ort_fp32"] = {name: {} for name in models if name not in ("unpruned", "headline")}
    for at in latency_sizes:
        key = f"{at[0]}x{at[1]}"
        runners = {name: open_runner(export(name, at, ("fp32",)) / "model.fp32.onnx", "onnxruntime",
                                     threads=args.threads) for name in models}
        print(f"timing at {key}", file=sys.stderr, flush=True)
        runs[key] = bench(runners, BenchSettings(data=data, input_size=at, runs=args.runs, rounds=4, accuracy=False,
                                                 progress=False), threads=args.threads)
        p50 = {r["label"]: r["latency"]["p50_ms"] for r in runs[key]["results"]}
        summary["p50_ms"][key] = p50
        summary["speedup_ort_fp32"][key] = p50["unpruned"] / p50["headline"]
        for name in summary["pareto_speedup_ort_fp32"]:
            summary["pareto_speedup_ort_fp32"][name][key] = p50["unpruned"] / p50[name]
    return {"summary": summary, "runs": runs}


def plot(curve: list[dict], summary: dict, path: Path) -> None:
    """mIoU against the MACs fraction, one line per ranking, the control and the baseline as bands."""
    from segprune.plots import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    for i, arm in enumerate(sorted({r["arm"] for r in curve} - {"control"})):
        rows = sorted((r for r in curve if r["arm"] == arm), key=lambda r: r["macs_fraction"])
        x = [r["macs_fraction"] for r in rows]
        ax.plot(x, [r["miou_median"] for r in rows], "o-", color=f"C{i}", label=f"{arm} (median)")
        ax.vlines(x, [r["miou_min"] for r in rows], [r["miou_max"] for r in rows], color=f"C{i}", alpha=0.5)
        for r in rows:
            if speed := r.get("speedup_ort_fp32"):
                ax.annotate(" / ".join(f"{v:.2f}x" for v in speed.values()), (r["macs_fraction"], r["miou_median"]),
                            textcoords="offset points", xytext=(5, 0), ha="left", va="center", fontsize=6,
                            color=f"C{i}", bbox={"fc": "white", "ec": "none", "alpha": 0.8, "pad": 0.5})
    control = [m for r in curve if r["arm"] == "control" for m in r["miou_runs"]]
    if control:
        ax.axhspan(min(control), max(control), color="grey", alpha=0.2)
        ax.axhline(statistics.median(control), color="grey", lw=1.2,
                   label=f"control: unpruned, same fine-tuning (median {statistics.median(control):.2f}, band: spread)")
        ax.axhline(statistics.median(control) - 1.0, color="grey", ls=":", lw=0.8, label="control - 1 point")
    ax.axhline(summary["baseline_miou"], color="black", ls="--", lw=0.8,
               label=f"baseline ({summary['baseline_miou']:.2f})")
    ax.axvline(GOALS["macs_fraction"], color="C3", ls=":", lw=0.8)
    if any(r.get("speedup_ort_fp32") for r in curve):  # room right of the last point for its speed-up label
        left, right = ax.get_xlim()
        ax.set_xlim(left, right + 0.15 * (right - left))
    sizes = " / ".join(summary.get("speedup_ort_fp32", {}))
    ax.set(xlabel="fraction of the unpruned model's MACs", ylabel="CamVid val mIoU %",
           title="DeepLabV3+ R18 on CamVid: same fine-tuning budget for every point" + (
               f"\n(beside the points: onnxruntime CPU fp32 speed-up at {sizes}, one interleaved run)" if sizes else ""))
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=1)  # below: never over a point
    _save(fig, path)


if __name__ == "__main__":
    sys.exit(main())
