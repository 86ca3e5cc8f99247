"""What the papers claim, measured on CamVid val against a cross-entropy control.

One section of ``benchmarks/results/evidence.json`` per claim (``--claims``), each with its
arms, seeds, runs, medians and the command, and a plot ``evidence_<claim>.png``:

- ``spectral`` (Chen, Chiu and Wu), on the trained baseline, no training: how much of the
  val cross-entropy each band carries (CE by band, Parseval), and the mIoU of truncation
  alone at each keep-freq next to the reconstruction ceiling of the same decoder grid (the
  val labels themselves passed through that grid).
- ``recall`` (Tian et al. 2021) and ``sr`` (Zhang et al. ICCV 2021): the baseline fine-tuned
  for ``--epochs`` with recall loss instead of CE, or CE plus self-regulation, against CE
  alone, same budget, recipe and seeds, nothing pruned, no distillation (a teacher trained
  with CE would pull every arm back to CE). mIoU, mAcc and per-class recall; for ``sr`` also
  whether the deployed model is unchanged (same MACs, same ONNX graph).
- ``atrous`` (Kim et al. 2023) and ``blocks`` (Chen, Chiu and Wu): trained from scratch for
  ``--scratch-epochs`` at the baseline's input size: ``--atrous-rates auto`` against the
  default (6, 12, 18), with the effective receptive field of both; block-wise labels
  (b = 8, majority) against full labels. Both share the from-scratch control (default
  rates, full labels).

Runs are cached under ``benchmarks/cache/evidence`` keyed by their recipe, so a claim can be
extended with more seeds without repeating the others. Every figure is CamVid val (video
0016E5).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from camvid_setup import VAL_SPLIT, cached_report, compress_run, has_baseline, plot_runs

from segprune.cli.common import parse_ints

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "evidence.json"
CACHE = ROOT / "benchmarks" / "cache" / "evidence"
CLAIMS = ("spectral", "recall", "sr", "atrous", "blocks")
RARE = ("Pole", "SignSymbol", "Bicyclist", "Pedestrian")
KEEPS = (1.0, 0.75, 0.5, 0.33, 0.25)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--claims", default="spectral", help=f"comma-separated, from {','.join(CLAIMS)}")
    parser.add_argument("--camvid", type=Path, default=ROOT.parent / "shared" / "data" / "camvid")
    parser.add_argument("--baseline", type=Path,
                        default=ROOT / "benchmarks" / "cache" / "camvid_r18" / "last.safetensors",
                        help="the trained baseline (spectral, recall and sr start from it)")
    parser.add_argument("--size", default="180x240", help="input size the baseline runs and trains at, HxW")
    parser.add_argument("--seeds", type=parse_ints, default="0,1", help="comma-separated seeds per arm")
    parser.add_argument("--epochs", type=int, default=8, help="fine-tuning epochs (recall, sr)")
    parser.add_argument("--lr", type=float, default=5e-4, help="fine-tuning peak learning rate")
    parser.add_argument("--scratch-epochs", type=int, default=12, help="training epochs from scratch (atrous, blocks)")
    parser.add_argument("--out", type=Path, default=OUT, help="JSON updated here: each claim replaces its section")
    args = parser.parse_args(argv)
    claims = args.claims.split(",")
    if unknown := [c for c in claims if c not in CLAIMS]:
        print(f"--claims {','.join(unknown)}: not one of {','.join(CLAIMS)}", file=sys.stderr)
        return 2
    if not (args.camvid / "train.txt").is_file():
        print(f"CamVid not found at {args.camvid}: pass --camvid DIR (SegNet layout)", file=sys.stderr)
        return 2
    if {"spectral", "recall", "sr"} & set(claims) and not has_baseline(args.baseline):
        return 2

    import torch

    from segprune.cli.common import parse_size
    from segprune.io import load_json, save_json
    from segprune.report import command_line, make_report

    torch.set_num_threads(2)
    size = parse_size(args.size)
    seeds = list(args.seeds)
    spec = f"camvid:{args.camvid}"
    command = command_line(__file__, argv, ROOT)
    for claim in claims:
        started = time.perf_counter()
        if claim == "spectral":
            section = spectral_claims(spec, args.baseline, size)
        elif claim in ("recall", "sr"):
            section = finetune_claim(claim, spec, args.baseline, size, seeds, args.epochs, args.lr)
        else:
            section = scratch_claim(claim, spec, size, seeds, args.scratch_epochs)
        section.update(claim=claim, command=command, seconds=time.perf_counter() - started,
                       accuracy_split=VAL_SPLIT)
        report = load_json(args.out) if args.out.is_file() else make_report("bench.evidence", claims={})
        report["claims"][claim] = section
        report.update({k: v for k, v in make_report("bench.evidence").items() if k in ("created", "environment")})
        save_json(args.out, report)
        PLOTS[claim](section, args.out.with_name(f"evidence_{claim}.png"))
        print(json.dumps({claim: section.get("summary")}, indent=2), flush=True)
    return 0


def spectral_claims(spec: str, baseline: Path, size: tuple[int, int]) -> dict[str, Any]:
    """CE by band of the baseline, and truncation alone against the ceiling of the same decoder grid."""
    import copy

    from segprune.compress import CompressConfig, compress_
    from segprune.data import EvalTransform, build_dataset, make_loader
    from segprune.models import load_checkpoint
    from segprune.models.grid import decoder_grid
    from segprune.spectral import analyze_model
    from segprune.spectral.analyze import label_batches
    from segprune.spectral.ceilings import Ceilings
    from segprune.train import evaluate

    model, _ = load_checkpoint(baseline)
    val = build_dataset(spec, "val", transform=EvalTransform())
    loader = make_loader(val, 4, shuffle=False)
    bands, _ = analyze_model(model, loader, input_size=size, progress=False)
    label_size = tuple(build_dataset(spec, "val")[0][1].shape[-2:])
    native = (-(-size[0] // 4), -(-size[1] // 4))  # the decoder's stride-4 grid
    grids = {keep: decoder_grid(*native, keep) for keep in KEEPS}
    ceilings = Ceilings(val.num_classes, grids=sorted(set(grids.values())), ignore_index=val.ignore_index)
    for batch in label_batches(build_dataset(spec, "val"), 4):
        for group in batch:
            ceilings.update(group)
    ceiling = {tuple(r["grid"]): r["miou"] for r in ceilings.results()["grid"]}
    rows = []
    for keep in KEEPS:
        truncated = copy.deepcopy(model)
        if keep < 1.0:
            compress_(truncated, CompressConfig(keep_freq=keep), example=size)
        metrics, _ = evaluate(truncated, loader, val.num_classes, input_size=size, progress=False)
        rows.append({"keep_freq": keep, "grid": list(grids[keep]), "miou": metrics.miou,
                     "ceiling_miou": ceiling[tuple(grids[keep])],
                     **band_share(bands["ce_share"], keep, label_size, size)})
    derive_losses(rows)
    return {"arms": ["truncation alone", "grid ceiling"], "seeds": [], "input_size": list(size),
            "label_size": list(label_size),
            "baseline": str(baseline), "cross_entropy": bands["cross_entropy"], "ce_share": bands["ce_share"],
            "truncation": rows,
            "summary": {"label_band": {f"{r['keep_freq']:g}": r["label_band"] for r in rows},
                        "ce_share_below": {f"{r['keep_freq']:g}": r["ce_share_below_keep"] for r in rows},
                        "truncation_loss": {f"{r['keep_freq']:g}": r["loss"] for r in rows},
                        "ceiling_loss": {f"{r['keep_freq']:g}": r["ceiling_loss"] for r in rows},
                        "ceiling_loss_vs_full_grid": {f"{r['keep_freq']:g}": r["ceiling_loss_vs_full_grid"]
                                                      for r in rows}}}


def band_share(ce_share: dict, keep: float, label_size: tuple[int, int], size: tuple[int, int]) -> dict:
    """The label band a decoder truncated to ``keep`` resolves (a fraction of the labels' Nyquist, not of
    the decoder's: :func:`segprune.models.grid.held_band`) and the share of the CE in the bands below it."""
    from segprune.models.grid import held_band

    f = held_band(keep, label_size, size)
    nearest = min(range(len(ce_share["f"])), key=lambda i: abs(ce_share["f"][i] - f))
    return {"label_band": f, "ce_share_below_keep": ce_share["cumulative"][nearest]}


def derive_losses(rows: list[dict]) -> None:
    """Each keep's mIoU lost: measured against keep 1 (the first row), the ceiling against 100, and the
    ceiling against the full decoder grid's (what truncation itself takes away from the best possible)."""
    full, grid = rows[0]["miou"], rows[0]["ceiling_miou"]
    for row in rows:
        row["loss"], row["ceiling_loss"] = full - row["miou"], 100.0 - row["ceiling_miou"]
        row["ceiling_loss_vs_full_grid"] = grid - row["ceiling_miou"]


def finetune_claim(claim: str, spec: str, baseline: Path, size: tuple[int, int], seeds: list[int], epochs: int,
                   lr: float) -> dict[str, Any]:
    """The baseline fine-tuned with the claim's loss against CE alone; nothing pruned, no distillation."""
    from segprune.compress import CompressConfig
    from segprune.train import FinetuneConfig

    weights = {"ce": {}, "recall": {"ce": 0.0, "recall": 1.0}, "sr": {"sr": 1.0}}
    runs = []
    for seed in seeds:
        for arm in ("ce", claim):
            out = CACHE / f"finetune_{size[0]}x{size[1]}_ep{epochs}_lr{lr:g}" / f"{arm}_seed{seed}"
            report = cached_report(out, baseline)
            if report is None:
                print(f"{claim}: {arm} seed {seed}, {epochs} epochs", file=sys.stderr, flush=True)
                finetuning = FinetuneConfig(epochs=epochs, batch_size=8, lr=lr, crop_size=size, input_size=size,
                                            seed=seed, **weights[arm])
                report = compress_run(spec, baseline, size, CompressConfig(), finetuning, out)  # nothing removed
            stages = {s["stage"]: s for s in report["stages"]}
            tuned = stages["fine-tuned"]
            runs.append({"arm": arm, "seed": seed, "miou": tuned["miou"], "macc": tuned["macc"],
                         "per_class_acc": tuned.get("per_class_acc"), "per_class_iou": tuned["per_class_iou"],
                         "gmacs": tuned["gmacs"], "gmacs_original": stages["original"]["gmacs"],
                         "miou_original": stages["original"]["miou"], "checkpoint": str(out / "model.safetensors")})
    section = {"arms": ["ce", claim], "seeds": seeds, "epochs": epochs, "lr": lr, "input_size": list(size),
               "baseline": str(baseline), "distillation": 0.0, "runs": runs,
               "summary": _medians(runs, ["ce", claim], ("miou", "macc"))}
    mine = [r for r in runs if r["arm"] == claim]
    if claim == "recall" and all(r["per_class_acc"] for r in runs):
        rare = [c for c in RARE if c in runs[0]["per_class_acc"]]  # CamVid's; other data have other names
        section["summary"]["rare_class_recall"] = {
            arm: {c: statistics.median(r["per_class_acc"][c] for r in runs if r["arm"] == arm) for c in rare}
            for arm in ("ce", claim)}
    if claim == "sr":
        section["summary"]["deployed_unchanged"] = {
            "macs": all(r["gmacs"] == r["gmacs_original"] for r in mine),
            "onnx_graph": same_graph(Path(mine[0]["checkpoint"]), baseline, size)}
    return section


def same_graph(model: Path, baseline: Path, size: tuple[int, int]) -> bool:
    """Whether two checkpoints export to the same ONNX graph: node types in order, weight shapes."""
    import tempfile

    import onnx

    from segprune.export import ExportConfig
    from segprune.export.onnx_export import export_onnx
    from segprune.models import load_checkpoint

    def structure(path: Path, folder: Path) -> tuple:
        graph = onnx.load(str(export_onnx(load_checkpoint(path)[0].eval(), folder / "m.onnx",
                                          ExportConfig(size, allow_unaligned=True)))).graph
        return [n.op_type for n in graph.node], sorted((i.name, tuple(i.dims)) for i in graph.initializer)

    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        return structure(model, Path(a)) == structure(baseline, Path(b))


def scratch_claim(claim: str, spec: str, size: tuple[int, int], seeds: list[int], epochs: int) -> dict[str, Any]:
    """From scratch: the claim's arm against the control (default atrous rates, full labels)."""
    arms = {"control": {}, "atrous": {"atrous_rates": "auto"}, "blocks": {"block": 8}}
    runs = []
    for seed in seeds:
        for arm in ("control", claim):
            runs.append({"arm": arm, "seed": seed, **train_scratch(spec, size, epochs, seed, **arms[arm])})
    section = {"arms": ["control", claim], "seeds": seeds, "epochs": epochs, "input_size": list(size), "runs": runs,
               "summary": _medians(runs, ["control", claim], ("miou", "macc"))}
    if claim == "atrous":
        section["summary"]["erf"] = {arm: {k: statistics.median(r["erf"][k] for r in runs if r["arm"] == arm)
                                           for k in ("radius_50", "radius_90", "outside_central_half")}
                                     for arm in ("control", claim)}
        section["summary"]["rates"] = {arm: next(r["atrous_rates"] for r in runs if r["arm"] == arm)
                                       for arm in ("control", claim)}
        section["rule_reach_px"] = min(size) / 2  # the rule: the largest tap reaches the image border
    return section


def train_scratch(spec: str, size: tuple[int, int], epochs: int, seed: int, atrous_rates: Any = None,
                  block: int | None = None) -> dict[str, Any]:
    """Train DeepLabV3+ R18 from scratch with the baseline recipe (shorter); val scores and, for rates, the ERF."""
    from segprune.data import EvalTransform, TrainTransform, build_dataset, make_loader, spread_loader
    from segprune.data.blocks import BlockLabelTransform
    from segprune.io import save_json
    from segprune.models import create_model, load_checkpoint
    from segprune.models.erf import effective_receptive_field
    from segprune.train import TrainConfig, evaluate, fit, seed_everything

    name = f"scratch_{size[0]}x{size[1]}_ep{epochs}" + (f"_rates-{atrous_rates}" if atrous_rates else "") + (
        f"_block{block}" if block else "")
    out = CACHE / name / f"seed{seed}"
    cached = cached_report(out)
    if cached is not None:
        return cached
    print(f"from scratch: {name} seed {seed}", file=sys.stderr, flush=True)
    cfg = TrainConfig(epochs=epochs, batch_size=8, optimizer="adamw", lr=2e-3, weight_decay=1e-4, warmup_iters=100,
                      crop_size=size, base_size=size, scale_range=(0.75, 1.5), eval_size=size, eval_every=epochs,
                      seed=seed).validate()
    train_set = build_dataset(spec, "train", transform=TrainTransform(size, scale_range=cfg.scale_range,
                                                                      base_size=size))
    if block:
        train_set.transform = BlockLabelTransform(train_set.transform, train_set.num_classes, block,
                                                  ignore_index=train_set.ignore_index)
    val = build_dataset(spec, "val", transform=EvalTransform())
    seed_everything(seed)
    model = create_model("deeplabv3plus_resnet18", num_classes=train_set.num_classes, output_stride=16,
                         input_size=size, **({"atrous_rates": atrous_rates} if atrous_rates else {}))
    fit(model, train_set, val, cfg, out, device="cpu", progress=False)
    model, _ = load_checkpoint(out / "last.safetensors")
    metrics, _ = evaluate(model, make_loader(val, 4, shuffle=False), val.num_classes, input_size=size,
                          class_names=val.classes, progress=False)
    erf = effective_receptive_field(model, spread_loader(build_dataset(spec, "val", transform=EvalTransform(size)),
                                                         16, 1), target="aspp")
    report = {"miou": metrics.miou, "macc": metrics.macc, "per_class_iou": metrics.to_dict()["per_class_iou"],
              "atrous_rates": list(model.config.atrous_rates), "block": block, "erf": erf.to_dict(),
              "checkpoint": str(out / "last.safetensors")}
    save_json(out / "report.json", report)
    return report


def _medians(runs: list[dict], arms: list[str], keys: tuple[str, ...]) -> dict[str, Any]:
    """Per arm and metric: the runs and their median; and the claim arm minus the control, paired by seed."""
    out: dict[str, Any] = {}
    for arm in arms:
        for key in keys:
            values = [r[key] for r in runs if r["arm"] == arm]
            out[f"{arm}_{key}_runs"], out[f"{arm}_{key}_median"] = values, statistics.median(values)
    control, claim = arms
    for key in keys:
        by = {r["seed"]: r[key] for r in runs if r["arm"] == control}
        out[f"{key}_paired_delta"] = {r["seed"]: r[key] - by[r["seed"]] for r in runs
                                      if r["arm"] == claim and r["seed"] in by}
    return out


def _plot_spectral(section: dict, path: Path) -> None:
    from segprune.plots import _pyplot, _save

    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.8))
    # the DC term alone is many times the CE and the other bands' terms cancel most of it
    # (RESEARCH.md 1.2(a): terms can be negative), so the curve starts after DC, on a log axis
    f, share = section["ce_share"]["f"], section["ce_share"]["cumulative"]
    left.plot(f[1:], share[1:], color="C0")
    left.axhline(1.0, color="grey", lw=0.8, ls="--")
    for row in section["truncation"]:
        left.axvline(row["label_band"], color="C1", lw=0.6, alpha=0.6)
    left.annotate("decoder bands,\nkeep 0.25 .. 1", (section["truncation"][0]["label_band"], share[1]), fontsize=7,
                  xytext=(4, -20), textcoords="offset points")
    left.set(xlabel="band kept per axis (fraction of the labels' Nyquist)", yscale="log",
             ylabel="CE of the bands up to f / total CE",
             title=f"baseline CE by band (CE {section['cross_entropy']:.3f}; DC alone {share[0]:.1f}x)")
    rows = section["truncation"]
    keeps = [r["keep_freq"] for r in rows]
    right.plot(keeps, [r["loss"] for r in rows], "o-", color="C1", label="truncation alone (measured)")
    right.plot(keeps, [r["ceiling_loss_vs_full_grid"] for r in rows], "s--", color="C2",
               label="grid ceiling: labels through the grid, against the full grid's")
    right.set(xlabel="keep-freq", ylabel="mIoU lost (points)", title="loss against keep-freq")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.title.set_fontsize(9)
    right.legend(fontsize=7)
    _save(fig, path)


def _plot_arms(section: dict, path: Path) -> None:
    plot_runs({arm: [(r["seed"], r["miou"]) for r in section["runs"] if r["arm"] == arm] for arm in section["arms"]},
              path, f"{section['claim']}: {section['epochs']} epochs, {len(section['seeds'])} seeds per arm",
              {"baseline (not fine-tuned)": section["runs"][0]["miou_original"]}
              if "miou_original" in section["runs"][0] else None)


def _plot_recall(section: dict, path: Path) -> None:
    from segprune.plots import _pyplot, _save

    plt = _pyplot()
    runs = section["runs"]
    classes = list(runs[0]["per_class_acc"])
    fig, ax = plt.subplots(figsize=(8.0, 3.8))
    for i, arm in enumerate(section["arms"]):
        median = [statistics.median(r["per_class_acc"][c] or 0.0 for r in runs if r["arm"] == arm) for c in classes]
        ax.bar([k + 0.4 * i for k in range(len(classes))], median, width=0.4, color=f"C{i}", label=arm)
    ax.set(xticks=[k + 0.2 for k in range(len(classes))], ylabel="per-class recall % (median over seeds)",
           title="recall loss against CE, fine-tuned from the baseline, same budget")
    ax.set_xticklabels(classes, rotation=45, ha="right", fontsize=7)
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    _save(fig, path)


PLOTS = {"spectral": _plot_spectral, "recall": _plot_recall, "sr": _plot_arms, "atrous": _plot_arms,
         "blocks": _plot_arms}


if __name__ == "__main__":
    sys.exit(main())
