"""Spectral truncation where it should pay: SMP's U-Net R18 on CamVid, truncation against channel pruning.

DeepLabV3+'s stride-4 decoder grid at 176x240 (44x60) is already coarser than the grid CamVid's
labels need (95% of the non-DC energy: about 65x86 samples), so truncation has nothing to remove
there. A U-Net's stride-2 and stride-1 decoder blocks run on 88x120 and 176x240 grids: the band
from the label spectrum truncates them (every block whose grid is finer than the truncated one
runs on it, its skip resampled; :mod:`segprune.models.smp_decoders`).

Stages, all through the library (nothing builds CLI arguments), each cached under ``--cache`` and
picked up again by a later run:

1. ``baselines``: ``smp.Unet("resnet18")`` trained from scratch with the project's baseline recipe
   (``benchmarks/own_models.py``'s: AdamW 2e-3, weight decay 1e-4, 100 warm-up steps, scale
   0.75-1.5, batch 8) at ``--size``, on CamVid train (scored on val) and on train without video
   0006R0 (scored on that video, which no training saw).
2. ``runs``: from the first baseline, the same fine-tuning budget (CE + distillation from the
   baseline) for every arm: the control (nothing removed), truncation alone at the band of
   ``--energies`` and at each ``--keeps`` level, channels alone and truncation plus channels at
   each ``--targets`` MACs fraction, per seed.
3. ``deploy``: the unpruned model, the truncation-only model and the smallest target's
   truncation-plus-channels model exported to fp32 ONNX and timed in onnxruntime on the CPU,
   interleaved in one run, at ``--latency-sizes``; the int8 graph of the last one scored on val.

Writes ``benchmarks/results/unet_headline.json`` (command and machine inside) and its plots.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

from camvid_setup import ROOT, VAL_SPLIT, held_out_score

HELD_OUT = "0006R0"
STAGES = ("baselines", "runs", "deploy")


def unet(classes: int):
    """The untrained network: SMP's U-Net with a ResNet-18 encoder, as SMP builds it (no pretrained weights)."""
    import segmentation_models_pytorch as smp

    return smp.Unet(encoder_name="resnet18", encoder_weights=None, classes=classes)


def key(recipe: dict) -> str:
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def train_config(epochs: int, size: tuple[int, int], seed: int):
    from segprune.train import TrainConfig

    return TrainConfig(epochs=epochs, batch_size=8, optimizer="adamw", lr=2e-3, weight_decay=1e-4, warmup_iters=100,
                       crop_size=size, base_size=size, scale_range=(0.75, 1.5), eval_size=size,
                       eval_every=max(epochs, 1), seed=seed).validate()


def baseline(spec: str, cache: Path, split: str, scored_on: str, epochs: int, size: tuple[int, int],
             seed: int) -> dict:
    """Train (or find in ``cache``) the U-Net on ``split``; its checkpoint, digest and score on ``scored_on``."""
    from segprune.data import EvalTransform, TrainTransform, build_dataset
    from segprune.io import file_sha256, save_json
    from segprune.models import load_checkpoint
    from segprune.train import fit, seed_everything

    cfg = train_config(epochs, size, seed)
    recipe = {"model": "smp.Unet(resnet18)", "train_split": split, "train": cfg.to_dict()}
    out = cache / f"base_{key(recipe)}"
    ckpt = out / "last.safetensors"
    val = build_dataset(spec, "val", transform=EvalTransform())
    if not (out / "recipe.json").is_file():  # written last: a run cut short resumes from its last epoch
        train_set = build_dataset(spec, split, transform=TrainTransform(size, scale_range=(0.75, 1.5), base_size=size))
        seed_everything(seed)
        model = unet(val.num_classes)
        print(f"training U-Net R18 on {split}, {epochs} epochs at {size[0]}x{size[1]}", file=sys.stderr, flush=True)
        started = time.perf_counter()
        fit(model, train_set, val, cfg, out, device="cpu", progress=False, resume=ckpt.is_file())
        save_json(out / "recipe.json", {**recipe, "seconds": time.perf_counter() - started})
    model, _ = load_checkpoint(ckpt)
    scores = {name: held_out_score(model, build_dataset(spec, name, transform=EvalTransform()), size)
              for name in dict.fromkeys(("val", scored_on))}
    recipe_file = json.loads((out / "recipe.json").read_text())
    return {"checkpoint": str(ckpt), "sha256": file_sha256(ckpt), "train_split": split, "scores": scores,
            "train_seconds": recipe_file.get("seconds"), "recipe": recipe}


def bands(spec: str, size: tuple[int, int], energies: tuple[float, ...]) -> dict[float, dict]:
    """``--energy tau`` -> keep-freq for the U-Net at ``size``: the label spectrum of CamVid train, the
    decoder's finest grid at stride 1 (:func:`segprune.spectral.choose_band`, as ``segprune prune`` does)."""
    from segprune.data import build_dataset
    from segprune.spectral import analyze_labels, choose_band

    labels = analyze_labels(build_dataset(spec, "train"), taus=energies, ceiling_images=-1, progress=False)
    return {tau: choose_band(labels.spectrum, tau, labels.report["reference_size"], size, 1).to_dict()
            for tau in energies}


def ceilings(spec: str, grids: list[tuple[int, int]]) -> dict[tuple[int, int], float]:
    """The reconstruction ceiling ``analyze`` reports for each grid: val mIoU of the labels taken down to
    the grid and back (:class:`segprune.spectral.ceilings.Ceilings`), on every val map."""
    from segprune.data import build_dataset
    from segprune.spectral.analyze import label_batches
    from segprune.spectral.ceilings import Ceilings

    val = build_dataset(spec, "val")
    ceil = Ceilings(val.num_classes, grids=grids, ignore_index=val.ignore_index)
    for batch in label_batches(val, 4):
        for group in batch:
            ceil.update(group)
    return {tuple(row["grid"]): row["miou"] for row in ceil.results()["grid"]}


def arms(keep95: float, keep99: float, keeps: tuple[float, ...], targets: tuple[float, ...],
         seeds: dict[float, int], control_seeds: int):
    """(arm, CompressConfig, seed) in the order worth having first when a session runs out."""
    from segprune.compress import CompressConfig

    def channels(keep: float, target: float) -> CompressConfig:
        return CompressConfig(keep_freq=keep, target_macs=target, scope="all", importance="l1")

    def pair(target: float, seed: int) -> list:
        return [(f"channels {target:g}", channels(1.0, target), seed),
                (f"truncation+channels {target:g}", channels(keep95, target), seed)]

    small = min(targets)
    out = [("control", CompressConfig(keep_freq=1.0), 0),
           ("truncation e0.95", CompressConfig(keep_freq=keep95), 0), *pair(small, 0)]
    # a band that needs the whole grid at this input size truncates nothing: that arm is the control
    if keep99 < 1.0:
        out.append(("truncation e0.99", CompressConfig(keep_freq=keep99), 0))
    out += [(f"truncation keep {k:g}", CompressConfig(keep_freq=k), 0) for k in keeps if k not in (keep95, keep99)]
    # then the further seeds, the smallest target's first: its goal needs three paired seeds
    later = sorted(((t, s) for t in targets for s in range(seeds[t]) if (t, s) != (small, 0)),
                   key=lambda ts: (ts[1] + (ts[0] != small), ts[0]))
    for target, seed in later:
        out += pair(target, seed)
    out += [("control", CompressConfig(keep_freq=1.0), seed) for seed in range(1, control_seeds)]
    out += [("truncation e0.95", CompressConfig(keep_freq=keep95), seed) for seed in range(1, control_seeds)]
    return out


def stage_grids(keep: float, size: tuple[int, int], classes: int) -> dict[str, list[int]]:
    """The grid each U-Net decoder block runs on at ``keep`` (its output, recorded by a forward hook)."""
    import torch

    from segprune.models import adapter_for

    model = unet(classes).eval()
    adapter_for(model).set_truncation(model, keep, "area")
    grids: dict[str, list[int]] = {}
    hooks = [block.register_forward_hook(lambda m, i, o, n=f"decoder.blocks.{k}": grids.__setitem__(n, list(o.shape[-2:])))
             for k, block in enumerate(model.decoder.blocks)]
    with torch.no_grad():
        model(torch.zeros(1, 3, *size))
    for hook in hooks:
        hook.remove()
    return grids


def finetune_config(epochs: int, size: tuple[int, int], seed: int):
    """The one fine-tuning budget of every arm, the control's included: CE + distillation from the baseline."""
    from segprune.train import FinetuneConfig

    return FinetuneConfig(epochs=epochs, batch_size=8, lr=5e-4, crop_size=size, input_size=size, kd=1.0, seed=seed)


def run_arms(spec: str, base: dict, size: tuple[int, int], plan, epochs: int, cache: Path,
             budget_s: float | None) -> list[dict]:
    """Every arm of ``plan`` (cached by recipe and baseline digest), until ``budget_s`` seconds are spent."""
    from camvid_setup import cached_report, compress_run

    baseline_file = Path(base["checkpoint"])
    started, rows = time.perf_counter(), []
    for arm, compression, seed in plan:
        tuning = finetune_config(epochs, size, seed)
        recipe = {"arm": arm, "compress": compression.__dict__, "finetune": tuning.to_dict(), "size": list(size),
                  "baseline": base["sha256"]}
        out = cache / f"run_{key(recipe)}"
        report = cached_report(out, baseline_file)
        if report is None:
            if budget_s is not None and time.perf_counter() - started > budget_s:
                print(f"{arm} seed {seed}: not run (--budget spent)", file=sys.stderr, flush=True)
                continue
            print(f"{arm} seed {seed}: compressing and fine-tuning {epochs} epochs", file=sys.stderr, flush=True)
            report = compress_run(spec, baseline_file, size, compression, tuning, out)
        stages = {s["stage"]: s for s in report["stages"]}
        row = {"arm": arm, "seed": seed, "keep_freq": report["keep_freq"],
               "macs_fraction": stages["fine-tuned"]["gmacs"] / stages["original"]["gmacs"],
               "gmacs": stages["fine-tuned"]["gmacs"], "miou": stages["fine-tuned"]["miou"],
               "miou_before_finetune": stages["compressed"]["miou"], "checkpoint": str(out / "model.safetensors"),
               "seconds": report["seconds"]}
        rows.append(row)
        print(f"{arm} seed {seed}: {100 * row['macs_fraction']:.1f}% MACs, val mIoU {row['miou']:.2f}", flush=True)
    return rows



def deploy(spec: str, models: dict[str, Path], size: tuple[int, int], latency_sizes: list[tuple[int, int]],
           int8_model: str, cache: Path, runs: int, threads: int) -> dict:
    """fp32 ONNX of each model timed in onnxruntime, all models interleaved in one run per size; the int8
    graph of ``int8_model`` (calibrated on 32 train images) scored on val against its own fp32 graph."""
    from camvid_setup import export_camvid

    from segprune.bench import BenchSettings, bench, open_runner
    from segprune.models import load_checkpoint

    loaded = {name: load_checkpoint(path)[0] for name, path in models.items()}
    out: dict = {"latency_ms_p50": {}, "speedup_ort_fp32": {}, "runs": {}}
    for at in latency_sizes:
        tag = f"{at[0]}x{at[1]}"
        files = {}
        for name, model in loaded.items():
            folder = cache / "onnx" / f"{name.replace(' ', '_')}_{tag}"
            export_camvid(model, folder, at, ("fp32",), spec, {"checkpoint": str(models[name])})
            files[name] = folder / "model.fp32.onnx"
        print(f"timing onnxruntime fp32 at {tag}", file=sys.stderr, flush=True)
        runners = {name: open_runner(str(f), "onnxruntime", threads=threads) for name, f in files.items()}
        payload = bench(runners, BenchSettings(data=spec, split="val", input_size=at, batch_size=1, warmup=3,
                                               runs=runs, rounds=4, accuracy=False, progress=False), threads=threads)
        p50 = {r["label"]: r["latency"]["p50_ms"] for r in payload["results"]}
        out["runs"][tag] = payload
        out["latency_ms_p50"][tag] = p50
        out["speedup_ort_fp32"][tag] = {name: p50["unpruned"] / p50[name] for name in p50 if name != "unpruned"}
    folder = cache / "onnx" / f"{int8_model.replace(' ', '_')}_int8_{size[0]}x{size[1]}"
    export_camvid(loaded[int8_model], folder, size, ("fp32", "int8"), spec, {"checkpoint": str(models[int8_model])})
    runners = {p: open_runner(str(folder / f"model.{p}.onnx"), "onnxruntime", threads=threads) for p in ("fp32", "int8")}
    print("scoring fp32 and int8 graphs on val", file=sys.stderr, flush=True)
    payload = bench(runners, BenchSettings(data=spec, split="val", input_size=size, batch_size=1, warmup=1, runs=3,
                                           rounds=1, accuracy=True, progress=False), threads=threads)
    miou = {r["label"]: r["accuracy"]["miou"] for r in payload["results"]}
    out["int8"] = {"model": int8_model, "miou_fp32_graph": miou["fp32"], "miou_int8_graph": miou["int8"],
                   "delta_miou": miou["int8"] - miou["fp32"]}
    return out


def summarize(rows: list[dict], bands95_99: dict, ceiling_of: dict, grids_of: dict, targets, deployed: dict | None):
    """The issue's figures from the runs: truncation against the control, the paired differences, the keep curve."""
    import statistics

    def runs_of(arm: str) -> dict[int, dict]:
        return {r["seed"]: r for r in rows if r["arm"] == arm}

    control = runs_of("control")
    control_miou = [r["miou"] for r in control.values()]
    med = statistics.median(control_miou) if control_miou else None
    truncation = {}
    for tau, band in bands95_99.items():
        arm = runs_of(f"truncation e{tau:g}")
        if band["keep_freq"] >= 1.0:
            truncation[f"energy_{tau:g}"] = {"band": band, "keep_freq": 1.0, "macs_fraction": 1.0,
                                             "note": "this band needs the whole decoder grid at this input size: "
                                                     "nothing to truncate; the arm is the control"}
            continue
        if not arm:
            continue
        mious = [r["miou"] for r in arm.values()]
        truncation[f"energy_{tau:g}"] = {
            "band": band, "keep_freq": band["keep_freq"], "keep_per_stage": grids_of[band["keep_freq"]],
            "macs_fraction": next(iter(arm.values()))["macs_fraction"],
            "miou_runs": {str(s): r["miou"] for s, r in arm.items()},
            "control_runs": {str(s): r["miou"] for s, r in control.items()},
            "delta_vs_control_median": None if med is None else statistics.median(mious) - med}
    paired = {}
    for target in targets:
        chan, both = runs_of(f"channels {target:g}"), runs_of(f"truncation+channels {target:g}")
        paired[f"{target:g}"] = [{"seed": s, "truncation_plus_channels": both[s]["miou"], "channels_only": chan[s]["miou"],
                                  "difference": both[s]["miou"] - chan[s]["miou"],
                                  "macs_fraction": {"truncation_plus_channels": both[s]["macs_fraction"],
                                                    "channels_only": chan[s]["macs_fraction"]}}
                                 for s in sorted(set(chan) & set(both))]
    curve = []
    truncation_only = [r for r in rows if r["seed"] == 0 and (r["arm"] == "control" or r["arm"].startswith("truncation "))]
    for r in sorted(truncation_only, key=lambda r: -r["keep_freq"]):
        grid = grids_of[r["keep_freq"]]["decoder.blocks.4"]
        curve.append({"keep": r["keep_freq"], "arm": r["arm"], "finest_grid": grid, "macs_fraction": r["macs_fraction"],
                      "miou": r["miou"], "predicted_ceiling": ceiling_of.get(tuple(grid))})
    goals = {}
    e95 = truncation.get("energy_0.95")
    if e95 is not None:
        goals["truncation_alone_20pct_macs_within_0.5"] = {
            "macs_removed": 1 - e95["macs_fraction"], "delta_vs_control_median": e95["delta_vs_control_median"],
            "seeds": len(e95["miou_runs"]),
            "met": 1 - e95["macs_fraction"] >= 0.2 and e95["delta_vs_control_median"] >= -0.5}
    pairs = paired.get("0.33", [])
    if pairs:
        diffs = [p["difference"] for p in pairs]
        goals["truncation_plus_channels_plus_1_over_channels_at_0.33"] = {
            "median_difference": statistics.median(diffs), "seeds": len(diffs),
            "met": len(diffs) >= 3 and statistics.median(diffs) >= 1.0}
    point = runs_of("truncation+channels 0.33").get(0)
    if point is not None and med is not None:
        speed = {tag: s.get("truncation+channels 0.33") for tag, s in (deployed or {}).get("speedup_ort_fp32",
                                                                                           {}).items()}
        goals["compressed_le_0.33_within_1_and_2.5x_faster"] = {
            "macs_fraction": point["macs_fraction"], "delta_vs_control_median": point["miou"] - med,
            "speedup_ort_fp32": speed,
            "met": bool(point["macs_fraction"] <= 0.33 and point["miou"] - med >= -1.0 and speed
                        and all(v is not None and v >= 2.5 for v in speed.values()))}
    return {"truncation_only": truncation, "paired_trunc_plus_channels_minus_channels": paired, "keep_curve": curve,
            "goals": goals}


def plot(report: dict, path: Path) -> None:
    """Left: the keep curve, measured mIoU beside the reconstruction ceiling. Right: the paired seeds per target."""
    from segprune.plots import _pyplot, _save

    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11.5, 4), gridspec_kw={"wspace": 0.45})
    curve = report["keep_curve"]
    if curve:
        keeps = [c["keep"] for c in curve]
        left.plot(keeps, [c["miou"] for c in curve], "o-", color="C0", label="measured (fine-tuned, seed 0)")
        for c in curve:
            left.annotate(f"{c['macs_fraction']:.2f} MACs", (c["keep"], c["miou"]), fontsize=7, xytext=(3, -10),
                          textcoords="offset points")
        left.set(xlabel="keep-freq (truncation only)", title="U-Net R18: keep curve")
        left.set_ylabel("CamVid val mIoU % (measured)", color="C0")
        ceiling = left.twinx()  # the ceilings sit near 100: their order, not their level, is the prediction
        ceiling.plot(keeps, [c["predicted_ceiling"] for c in curve], "s--", color="C1")
        ceiling.set_ylabel("label ceiling at the finest grid, mIoU %", color="C1")
        left.grid(alpha=0.3)
    for i, pairs in enumerate(report["paired_trunc_plus_channels_minus_channels"].values()):
        for p in pairs:
            right.plot([i - 0.15, i + 0.15], [p["channels_only"], p["truncation_plus_channels"]], "o-", color=f"C{i}")
            right.annotate(f"seed {p['seed']}", (i + 0.15, p["truncation_plus_channels"]), fontsize=7)
    targets = list(report["paired_trunc_plus_channels_minus_channels"])
    right.set(xticks=range(len(targets)), xticklabels=[f"{t} MACs\nchannels | trunc+channels" for t in targets],
              ylabel="CamVid val mIoU %", title="paired per seed, same fine-tuning budget")
    right.grid(alpha=0.3, axis="y")
    _save(fig, path)


BLOCK_BEGIN, BLOCK_END = "<!-- unet_headline: benchmarks/unet_headline.py --table -->", "<!-- end unet_headline -->"


def band_line(tau: str, band: dict, size: str, grids: dict) -> str:
    """What ``--energy tau`` asks of the U-Net at the input size, from its band in the JSON."""
    need, native = "x".join(map(str, band["grid"])), "x".join(map(str, band["decoder_grid"]))
    label = "x".join(map(str, band["label_size"]))
    if not band["resolves"]:
        return (f"`--energy {tau}`: the {label} train labels need a {need} grid; at input {size} the U-Net's finest "
                f"decoder grid ({native}) holds {band['held']:.3f} of that energy, so nothing is truncated.")
    finest = "x".join(map(str, grids[f"{band['keep_freq']:g}"]["decoder.blocks.4"]))
    return (f"`--energy {tau}`: the {label} train labels need a {need} grid; at input {size} the U-Net's finest "
            f"decoder grid ({native}) holds it at keep-freq {band['keep_freq']:.3f}, a {finest} grid.")


def readme_block(report: dict) -> str:
    """The U-Net results block of docs/results.md, made from the JSON (a test compares them): every figure with its split."""
    def med(values) -> float:
        import statistics

        return statistics.median(values)

    base = report["baseline_miou"]
    size = "x".join(map(str, report["data"]["input_size"]))
    control = {r["seed"]: r["miou"] for r in report["runs"] if r["arm"] == "control"}
    lines = [BLOCK_BEGIN, "",
             f"SMP `Unet(\"resnet18\")` trained from scratch at {size} (30 epochs, the baseline recipe): CamVid val "
             f"**{base['val']:.2f}** (trained on train); held-out video 0006R0 **{base['held_out']:.2f}** (a second "
             f"baseline trained on train without that video). Every arm below starts from the first and gets the "
             f"same fine-tuning budget ({report['finetune']['epochs']} epochs of CE + distillation, lr "
             f"{report['finetune']['lr']:g}); mIoU on CamVid val; the control is the unpruned model with that budget "
             f"(val {', '.join(f'{v:.2f}' for v in control.values())}).", "",
             *[band_line(tau, b, size, report["stage_grids"]) for tau, b in report["bands"].items()], "",
             "| arm | keep-freq | MACs | val mIoU (per seed) | vs control median |", "|---|---|---|---|---|"]
    arms: dict[str, list[dict]] = {}
    for r in report["runs"]:
        arms.setdefault(r["arm"], []).append(r)
    for arm, rows in arms.items():
        mious = [r["miou"] for r in rows]
        delta = "" if arm == "control" or not control else f"{med(mious) - med(control.values()):+.2f}"
        lines.append(f"| {arm} | {rows[0]['keep_freq']:.3f} | {100 * med(r['macs_fraction'] for r in rows):.1f}% "
                     f"| {', '.join(f'{m:.2f}' for m in mious)} | {delta} |")
    for name, t in report["truncation_only"].items():
        if "note" in t:
            lines += ["", f"`--energy {name.split('_')[1]}`: {t['note']} (the band: "
                          f"{t['band']['input_size_needed'][0]}x{t['band']['input_size_needed'][1]} input or larger)."]
    lines += ["", "Truncation plus channels minus channels alone, paired per seed (MACs of each side):"]
    for target, pairs in report["paired_trunc_plus_channels_minus_channels"].items():
        text = "; ".join(f"seed {p['seed']}: {p['difference']:+.2f} ({100 * p['macs_fraction']['truncation_plus_channels']:.1f}% "
                         f"vs {100 * p['macs_fraction']['channels_only']:.1f}%)" for p in pairs) or "not run"
        lines.append(f"- at {target} of the MACs: {text}")
    lines += ["", "The keep curve (truncation only, seed 0) beside the label ceiling `analyze` reports for the finest "
                  "grid (val labels taken down to the grid and back):", "",
              "| keep-freq | finest grid | MACs | val mIoU | label ceiling |", "|---|---|---|---|---|"]
    for c in report["keep_curve"]:
        ceiling = "" if c["predicted_ceiling"] is None else f"{c['predicted_ceiling']:.2f}"
        lines.append(f"| {c['keep']:.3f} | {c['finest_grid'][0]}x{c['finest_grid'][1]} | {100 * c['macs_fraction']:.1f}% "
                     f"| {c['miou']:.2f} | {ceiling} |")
    deploy = report.get("deploy")
    if deploy:
        lines += ["", "onnxruntime CPU fp32, 2 threads, all models interleaved in one run (p50 ms, speed-up over the "
                      "unpruned model):", ""]
        for tag, p50 in deploy["latency_ms_p50"].items():
            lines.append(f"- {tag}: " + ", ".join(
                f"{name} {ms:.1f}" + ("" if name == "unpruned" else f" ({deploy['speedup_ort_fp32'][tag][name]:.2f}x)")
                for name, ms in p50.items()))
        q = deploy["int8"]
        lines.append(f"- int8 Q/DQ of {q['model']} at {size}: val {q['miou_int8_graph']:.2f} against its fp32 "
                     f"graph's {q['miou_fp32_graph']:.2f} ({q['delta_miou']:+.2f})")
    lines += ["", "Goals:"]
    for goal, g in report["goals"].items():
        shown = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in g.items() if k != "met"}
        lines.append(f"- `{goal}`: **{'met' if g['met'] else 'not met'}** {json.dumps(shown)}")
    if report.get("not_run"):
        lines += ["", f"Not run in this session (the plan's rest, `--budget`): {', '.join(report['not_run'])}."]
    lines += ["", f"`benchmarks/results/unet_headline.json` ({report['environment'].get('cpu', 'CPU')}), "
                  "`unet_headline.png`.", "", BLOCK_END]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--camvid", type=Path, default=ROOT.parent / "shared" / "data" / "camvid",
                        help="CamVid folder (SegNet layout; see its README)")
    parser.add_argument("--size", default="176x240", help="training and evaluation input size HxW")
    parser.add_argument("--epochs", type=int, default=30, help="training epochs of each baseline")
    parser.add_argument("--finetune-epochs", type=int, default=4, help="fine-tuning epochs of every arm")
    parser.add_argument("--energies", default="0.95,0.99", help="label-energy thresholds of the truncation-only arms")
    parser.add_argument("--keeps", default="0.5,0.25,0.125", help="keep-freq levels of the keep curve")
    parser.add_argument("--targets", default="0.33,0.5", help="MACs fractions of the channel arms")
    parser.add_argument("--seeds", default="3,2", help="seeds per target (same order as --targets)")
    parser.add_argument("--control-seeds", type=int, default=3, help="seeds of the control and of energy 0.95")
    parser.add_argument("--budget", type=float, default=None,
                        help="minutes of new runs this invocation may start (cached runs are free)")
    parser.add_argument("--latency-sizes", default="352x480,512x1024", help="onnxruntime timing sizes")
    parser.add_argument("--runs", type=int, default=20, help="timed runs per model and round")
    parser.add_argument("--stage", choices=STAGES, action="append",
                        help="run only these stages (repeatable; default: all, each picking up its cache)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (PyTorch and onnxruntime)")
    parser.add_argument("--table", action="store_true", help="print the docs/results.md block of --out and stop")
    parser.add_argument("--replot", action="store_true", help="draw the plots of --out again and stop")
    parser.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / "cache" / "unet_headline",
                        help="trained baselines and runs, kept between invocations")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "unet_headline.json",
                        help="the JSON report (plots are written beside it)")
    args = parser.parse_args(argv)
    if args.table:
        print(readme_block(json.loads(args.out.read_text())))
        return 0
    if args.replot:
        plot(json.loads(args.out.read_text()), args.out.with_suffix(".png"))
        return 0

    import torch

    from segprune.cli.common import parse_size
    from segprune.io import save_json
    from segprune.report import command_line, make_report

    if not (args.camvid / "train.txt").is_file():
        print(f"CamVid not found at {args.camvid}: pass --camvid DIR (SegNet layout)", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    stages = args.stage or list(STAGES)
    size = parse_size(args.size)
    spec = f"camvid:{args.camvid}"
    started = time.perf_counter()
    bases = {"val": baseline(spec, args.cache, "train", "val", args.epochs, size, 0),
             "held_out": baseline(spec, args.cache, f"train-without-{HELD_OUT}", f"video-{HELD_OUT}", args.epochs,
                                  size, 0)}
    for name, base in bases.items():
        print(f"baseline ({name}): {base['checkpoint']} sha256 {base['sha256'][:12]} "
              + ", ".join(f"{split} mIoU {s['miou']:.2f}" for split, s in base["scores"].items()), flush=True)
    report = make_report("bench.unet_headline", command=command_line(__file__, argv, ROOT),
                         data={"dataset": "CamVid (SegNet split)", "val_split": VAL_SPLIT,
                               "held_out_split": f"video-{HELD_OUT} (every frame of that video; the held-out "
                                                 f"baseline trains on train-without-{HELD_OUT})",
                               "input_size": list(size)},
                         baseline_miou={"val": bases["val"]["scores"]["val"]["miou"],
                                        "held_out": bases["held_out"]["scores"][f"video-{HELD_OUT}"]["miou"]},
                         baselines=bases)
    if stages == ["baselines"]:
        save_json(args.out.with_name(args.out.stem + "_baselines.json"), report)
        return 0
    energies = tuple(float(t) for t in args.energies.split(","))
    keeps = tuple(float(k) for k in args.keeps.split(","))
    targets = tuple(float(t) for t in args.targets.split(","))
    seeds = dict(zip(targets, (int(n) for n in args.seeds.split(",")), strict=True))
    band = bands(spec, size, energies)
    keep95, keep99 = band[energies[0]]["keep_freq"], band[energies[-1]]["keep_freq"]
    for tau, b in band.items():
        print(f"--energy {tau:g}: keep-freq {b['keep_freq']:.3f}, grid {b['decoder_grid']}", flush=True)
    plan = arms(keep95, keep99, keeps, targets, seeds, args.control_seeds)
    rows = run_arms(spec, bases["val"], size, plan, args.finetune_epochs, args.cache,
                    None if args.budget is None else 60 * args.budget)
    classes = 11
    grids_of = {k: stage_grids(k, size, classes) for k in {1.0, keep95, keep99, *keeps}}
    ceiling_of = ceilings(spec, sorted({tuple(g["decoder.blocks.4"]) for g in grids_of.values()}))
    deployed = None
    if "deploy" in stages:
        first = {r["arm"]: Path(r["checkpoint"]) for r in rows if r["seed"] == 0}
        models = {"unpruned": Path(bases["val"]["checkpoint"])}
        for arm in ("truncation e0.95", f"truncation+channels {min(targets):g}"):
            if arm in first:
                models[arm] = first[arm]
        deployed = deploy(spec, models, size, [parse_size(s) for s in args.latency_sizes.split(",")],
                          list(models)[-1], args.cache, args.runs, args.threads)
    summary = summarize(rows, {t: band[t] for t in energies}, ceiling_of, grids_of, targets, deployed)
    report.update(finetune=finetune_config(args.finetune_epochs, size, 0).to_dict(), bands={f"{t:g}": b for t, b in
                                                                                            band.items()},
                  stage_grids={f"{k:g}": g for k, g in grids_of.items()}, runs=rows, **summary,
                  speedup_ort_fp32=None if deployed is None else deployed["speedup_ort_fp32"],
                  int8_delta_miou=None if deployed is None else deployed["int8"],
                  deploy=deployed, not_run=[f"{a} seed {s}" for a, _, s in plan
                                            if not any(r["arm"] == a and r["seed"] == s for r in rows)],
                  seconds=time.perf_counter() - started)
    save_json(args.out, report)
    plot(report, args.out.with_suffix(".png"))
    print(json.dumps(report["goals"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
