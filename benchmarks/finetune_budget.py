"""Compression with a larger fine-tuning budget: how close does about half the MACs get to the baseline?

``benchmarks/compression.py`` gives every configuration one epoch of cross-entropy. This runs
one configuration (by default the one that reached 2x on onnxruntime in
``benchmarks/deployment.py``: keep-freq 0.25, half of the ASPP and decoder channels removed)
with ``--epochs`` of fine-tuning with cross-entropy plus distillation from the unpruned model,
once per ``--importances`` (e.g. torch-pruning's L1 magnitude, segprune's spectral and
spectral-l1; same layers, same ratio: equal MACs) and seed. Every run goes through the library
pipeline that ``segprune prune`` calls (``compress_`` then ``finetune``); ``--reuse`` takes runs
already in ``benchmarks/cache/budget`` instead of repeating them, and, where that cache is gone (a
new machine), the runs of the same recipe that the ``--out`` report already holds, when its
baseline is the same weights: a sweep cut short by a session's end goes on with the missing seeds.

``--control`` adds the honest comparison: the *unpruned* model fine-tuned with the same
budget, recipe and seeds (same code path, nothing removed), so a compressed model is
compared with a model that had the same extra epochs, not with the baseline that did not.

Writes ``benchmarks/results/finetune_budget.json`` (or ``--out``) and a plot beside it: every
run's mIoU by importance, against the baseline and the goal of losing at most 1 point.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from camvid_setup import (
    VAL_SPLIT,
    add_setup_args,
    cached_report,
    compress_run,
    has_baseline,
    held_out_score,
    plot_runs,
)

from segprune.cli.common import parse_ints

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_setup_args(parser)
    parser.add_argument("--keep-freq", type=float, default=0.25, help="decoder band kept per axis")
    parser.add_argument("--scope", default="head", choices=("decoder", "head", "all"),
                        help="layers that may lose channels")
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument("--channel-ratio", type=float, default=None,
                        help="fraction of channels removed per layer in scope (default 0.5)")
    amount.add_argument("--target-macs", type=float, default=None,
                        help="instead of --channel-ratio: fraction of the original MACs to reach")
    parser.add_argument("--protect", default="",
                        help="comma-separated modules in --scope that keep all their channels (widths per stage: "
                             "e.g. backbone.conv1,backbone.layer1,decoder.project spares the stride-2/4 path). Default: "
                             "none, uniform widths, the curve's reference (segprune prune protects 'fine' at --scope all "
                             "unless told 'none')")
    parser.add_argument("--epochs", type=int, default=6, help="fine-tuning epochs per run")
    parser.add_argument("--held-out", default=None, metavar="SEQ",
                        help="a CamVid video (e.g. 0006R0) left out: calibrate and fine-tune on train without it, "
                             "and score the runs on it as well as on val (pass a --baseline trained without it: "
                             "camvid_baseline.py --held-out SEQ)")
    parser.add_argument("--prune-steps", type=int, default=1,
                        help="gradual pruning: rounds of pruning, each followed by its share of --epochs "
                             "(the control is unpruned and shares the one-step control's cache)")
    parser.add_argument("--lr", type=float, default=5e-4, help="fine-tuning peak learning rate (poly decay)")
    parser.add_argument("--seeds", type=parse_ints, default="0,1", help="comma-separated fine-tuning seeds")
    parser.add_argument("--importances", default="l1,spectral", help="comma-separated channel rankings")
    parser.add_argument("--kd", type=float, default=1.0, help="weight of distillation from the unpruned model")
    parser.add_argument("--feature-kd", type=float, default=0.0,
                        help="weight of decoder-feature distillation from the unpruned model (the control never "
                             "distils features: it is the unpruned model)")
    parser.add_argument("--control", action="store_true",
                        help="also fine-tune the unpruned model with the same budget and seeds (the control)")
    parser.add_argument("--control-seeds", type=parse_ints, default=None,
                        help="seeds of the control, when they differ from --seeds: fewer because it is the costliest run "
                             "(full width), or more for a steadier reference (default: --seeds)")
    parser.add_argument("--reuse", action="store_true",
                        help="take a run whose report is already in benchmarks/cache/budget instead of redoing it "
                             "(the cache is keyed by every option that changes a run, importance and seed), or that "
                             "the --out report holds for the same recipe and baseline weights (checked by digest, "
                             "or for a report older than the digest by the baseline's val mIoU)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "finetune_budget.json",
                        help="JSON written here (atomically)")
    args = parser.parse_args(argv)

    import torch

    from segprune.cli.common import parse_size
    from segprune.compress import CompressConfig
    from segprune.compress.scope import protect_names
    from segprune.io import file_sha256, save_json
    from segprune.report import command_line, make_report, portable_path
    from segprune.train import FinetuneConfig

    if not has_baseline(args.baseline):
        return 2
    torch.set_num_threads(2)
    if args.target_macs is not None:
        config = f"keep{args.keep_freq:g}_{args.scope}_macs{args.target_macs:g}"
        ratio = None
    else:
        ratio = 0.5 if args.channel_ratio is None else args.channel_ratio
        config = f"keep{args.keep_freq:g}_{args.scope}_ratio{ratio:g}"
    protect = protect_names(args.protect)
    steps = f"_steps{args.prune_steps}" if args.prune_steps > 1 else ""
    spared = f"_protect-{'+'.join(protect)}" if protect else ""
    features = f"_fkd{args.feature_kd:g}" if args.feature_kd else ""
    held = f"_without{args.held_out}" if args.held_out else ""  # another baseline and training split
    config = (f"{args.size}_{args.mode}_calib{args.calib_images}_{config}{steps}{spared}_ep{args.epochs}_lr{args.lr:g}"
              f"_kd{args.kd:g}{features}{held}")
    size = parse_size(args.size)
    started = time.perf_counter()
    digest = file_sha256(args.baseline)
    recorded = earlier_runs(args.out, config, digest, lambda: baseline_val_miou(
        f"camvid:{args.camvid}", args.baseline, size)) if args.reuse else {}
    runs = []
    arms = [*(["control"] if args.control else []), *args.importances.split(",")]
    seeds = list(args.seeds)
    control_seeds = list(args.control_seeds or args.seeds) if args.control else []
    for seed, importance in schedule(arms, seeds, control_seeds):
        out = run_dir(config, importance, seed, args.size, args.epochs, args.lr, args.kd, held)
        t0 = time.perf_counter()
        if (importance, seed) in recorded and not (out / "report.json").is_file():
            print(f"{importance} seed {seed}: taken from {args.out} (same recipe and baseline)", file=sys.stderr)
            runs.append({**recorded[importance, seed], "recorded_in": portable_path(args.out, ROOT)})
            continue
        if args.reuse and (report := cached_report(out, args.baseline)) is not None:
            print(f"{importance} seed {seed}: reusing {out / 'report.json'}", file=sys.stderr, flush=True)
        else:
            print(f"{importance} seed {seed}: {args.epochs} epochs", file=sys.stderr, flush=True)
            compression = CompressConfig() if importance == "control" else CompressConfig(
                keep_freq=args.keep_freq, trunc_mode=args.mode, channel_ratio=ratio, target_macs=args.target_macs,
                importance=importance, scope=args.scope, protect=protect)
            finetuning = FinetuneConfig(epochs=args.epochs, batch_size=8, lr=args.lr, crop_size=size,
                                        input_size=size, kd=args.kd, seed=seed,
                                        feature_kd=0.0 if importance == "control" else args.feature_kd)
            report = compress_run(f"camvid:{args.camvid}", args.baseline, size, compression, finetuning, out,
                                  args.calib_images, 1 if importance == "control" else args.prune_steps,
                                  f"train-without-{args.held_out}" if args.held_out else "train",
                                  f"video-{args.held_out}" if args.held_out else None)
        stages = {s["stage"]: s for s in report["stages"]}
        runs.append({"importance": importance, "seed": seed, "gmacs": stages["fine-tuned"]["gmacs"],
                     "macs_fraction": stages["fine-tuned"]["gmacs"] / stages["original"]["gmacs"],
                     "miou_original": stages["original"]["miou"], "miou_pruned": stages["compressed"]["miou"],
                     "miou": stages["fine-tuned"]["miou"], "macc": stages["fine-tuned"]["macc"],
                     "per_class_iou": stages["fine-tuned"]["per_class_iou"],
                     "seconds": report.get("seconds", time.perf_counter() - t0),
                     "checkpoint": str((out / "model.safetensors").relative_to(ROOT))})
        if args.held_out:
            runs[-1].update(miou_held_out=report["held_out"]["fine-tuned"]["miou"],
                            miou_original_held_out=report["held_out"]["original"]["miou"])
        print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    summary = {}
    control = [r["miou"] for r in runs if r["importance"] == "control"]
    for importance in arms:
        mine = [r["miou"] for r in runs if r["importance"] == importance]
        summary[importance] = {"miou_median": statistics.median(mine), "miou_runs": mine,
                               "loss_vs_original": runs[0]["miou_original"] - statistics.median(mine)}
        classes = [r["per_class_iou"] for r in runs if r["importance"] == importance]
        summary[importance]["per_class_iou_median"] = {name: statistics.median(c[name] for c in classes)
                                                       for name in classes[0]}
        if control and importance != "control":
            summary[importance]["loss_vs_control"] = statistics.median(control) - statistics.median(mine)
        if args.held_out:
            unseen = [r["miou_held_out"] for r in runs if r["importance"] == importance]
            summary[importance].update(held_out_miou_median=statistics.median(unseen), held_out_miou_runs=unseen)
    report = make_report("bench.finetune_budget", command=command_line(__file__, argv, ROOT),
                         config=config, accuracy_split=VAL_SPLIT + (
                             f"; held_out: CamVid video {args.held_out}, left out of training" if args.held_out else ""),
                         baseline=portable_path(args.baseline, ROOT), baseline_sha256=digest, size=args.size,
                         keep_freq=args.keep_freq, scope=args.scope, protect=list(protect),
                         target_macs=args.target_macs, channel_ratio=ratio, prune_steps=args.prune_steps,
                         feature_kd=args.feature_kd, epochs=args.epochs, lr=args.lr, kd=args.kd, runs=runs,
                         summary=summary, seconds=time.perf_counter() - started)
    save_json(args.out, report)
    _plot(report, args.out.with_suffix(".png"), args.held_out)
    print(json.dumps(summary, indent=2))
    return 0


MIOU_MATCH = 1e-6
"""Two val mIoUs (percent) this close come from the same weights: a retrained baseline differs by tenths."""


def earlier_runs(out: Path, config: str, digest: str, val_miou: Callable[[], float]) -> dict[tuple[str, int], dict]:
    """``{(arm, seed): run}`` of the report at ``out`` that a run of ``config`` on the baseline of ``digest``
    may take instead of redoing it; empty, with the reason on stderr, where it may not.

    The run cache is not committed, so a new machine has only the reports: a sweep cut short (the
    control's last seed) goes on from them. Only the same recipe (``config`` names every option that
    changes a run) on the same weights counts. A report records its baseline's digest; one written
    before that is checked by the baseline's val mIoU (``val_miou``, computed only then) against the
    one its runs recorded: retraining at the same path gives other weights and another score.
    """
    from segprune.io import load_json

    if not out.is_file():
        return {}
    report = load_json(out)
    if report.get("config") != config:
        print(f"{out}: another recipe ({report.get('config')}); none of its runs is taken", file=sys.stderr)
        return {}
    recorded = report.get("baseline_sha256")
    if recorded is not None and recorded != digest:
        print(f"{out}: runs of other baseline weights (retrained?); none of its runs is taken", file=sys.stderr)
        return {}
    if recorded is None:
        score, theirs = val_miou(), {r["miou_original"] for r in report["runs"]}
        if len(theirs) != 1 or abs(score - theirs.pop()) > MIOU_MATCH:
            print(f"{out}: its runs start from a baseline of another val mIoU than this one's {score:.4f}; none of "
                  "its runs is taken", file=sys.stderr)
            return {}
    return {(r["importance"], r["seed"]): r for r in report["runs"]}


def baseline_val_miou(spec: str, baseline: Path, size: tuple[int, int]) -> float:
    """The baseline's val mIoU as the runs record it (their ``original`` stage: val at ``size``, batches of 4)."""
    from segprune.data import EvalTransform, build_dataset
    from segprune.models import load_checkpoint

    model, _ = load_checkpoint(baseline)
    return held_out_score(model, build_dataset(spec, "val", transform=EvalTransform()), size)["miou"]


def schedule(arms: list[str], seeds: list[int], control_seeds: list[int]) -> list[tuple[int, str]]:
    """The (seed, arm) runs in the order they are done: seed by seed, so that a cut-short sweep has whole
    seeds. The control runs its own seeds, which may be fewer than ``seeds`` (it is the costliest run) or
    more (a steadier reference); a control seed outside ``seeds`` runs the control alone."""
    return [(seed, arm) for seed in sorted(set(seeds) | set(control_seeds)) for arm in arms
            if seed in (control_seeds if arm == "control" else seeds)]


def run_dir(config: str, importance: str, seed: int, size: str, epochs: int, lr: float, kd: float,
            held: str = "") -> Path:
    """Where one run's model and report are cached; the control has nothing removed, so its folder
    does not depend on the compression options and every MACs target shares it (``held``: the
    video left out, which changes the baseline and the training split)."""
    where = f"control_{size}_ep{epochs}_lr{lr:g}_kd{kd:g}{held}" if importance == "control" else config
    return ROOT / "benchmarks" / "cache" / "budget" / where / f"{importance}_seed{seed}"


def _plot(report: dict, path: Path, held_out: str | None = None) -> None:
    """The runs on val at ``path``; with ``held_out`` (a video), the same runs on it at ``*_held_out.png``."""
    fraction = 100 * next(r for r in report["runs"] if r["importance"] != "control")["macs_fraction"]
    title = f"{report['config']}: {fraction:.1f}% MACs, {report['epochs']} epochs"
    panels = [("miou", "miou_original", "CamVid val", path)]
    if held_out:
        panels.append(("miou_held_out", "miou_original_held_out", f"unseen video {held_out}",
                       path.with_name(path.stem + "_held_out.png")))
    for key, original, split, where in panels:
        runs = {name: [(r["seed"], r[key]) for r in report["runs"] if r["importance"] == name]
                for name in report["summary"]}
        references = {"baseline (not fine-tuned)": report["runs"][0][original]}
        if runs.get("control"):
            references["control median - 1 (the goal)"] = statistics.median(v for _, v in runs["control"]) - 1.0
        plot_runs(runs, where, title, references, split=split)


if __name__ == "__main__":
    sys.exit(main())
