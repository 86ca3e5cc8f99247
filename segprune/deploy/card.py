"""``MODEL_CARD.md`` and ``baselines.json`` of a deployment folder, from the reports the stages wrote.

Every figure in the card is read from a JSON in the folder (``compressed/report.json``,
``export/*/export.json``, ``bench/bench.json``) at the precision the tables print, so the
card cannot say what the reports do not. Speed is quoted from the benchmark only, never
from MACs: a truncated U-Net with fewer MACs ran slower in onnxruntime (docs/results.md).
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from segprune.deploy.compression import stages_table
from segprune.io import atomic_write, load_json
from segprune.report import markdown_table

CARD = "MODEL_CARD.md"


def write_card(out: Path, cfg, *, size: tuple[int, int], command: str | None,
               engines_note: str | None) -> list[str]:
    """Record the compressed model's bench results as baselines in ``out`` and write the card; returns the files."""
    from segprune.regress import record_baselines

    compressed_report = load_json(out / "bench" / "compressed.json")
    record_baselines(out, compressed_report)
    text = card_text(out, cfg, size=size, command=command, engines_note=engines_note)
    with atomic_write(out / CARD, "w") as handle:
        handle.write(text)
    return [CARD, "baselines.json"]


def _percent(part: float, whole: float) -> float:
    return 100.0 * part / whole if whole else float("nan")


def card_text(out: Path, cfg, *, size: tuple[int, int], command: str | None, engines_note: str | None) -> str:
    prune = load_json(out / "compressed" / "report.json")
    bench = load_json(out / "bench" / "bench.json")
    exports = {name: load_json(out / "export" / name / "export.json") for name in ("original", "compressed")}
    stages = prune["stages"]
    first, last = stages[0], stages[-1]
    by_label = {r["label"]: r for r in bench["results"]}
    speed = {r["model"]: r for r in bench["ratios"]}
    base, fp32 = by_label["original fp32"], by_label["compressed fp32"]
    device = base["device"]
    where = f"{device.get('name') or device['kind']}" + (f", {device['threads']} threads" if device.get("threads") else "")
    acc = base.get("accuracy") or {}
    split = (f"{acc.get('data')} {acc.get('split')}, {acc.get('images')} images"
             + ("" if acc.get("full_split", True) else " (not the full split)")) if acc else "not measured"
    band = prune.get("band")
    plan = cfg.plan
    ft = plan.finetune

    lines = [f"# Model card: {prune['checkpoint']}, compressed by segprune", ""]
    headline = (f"{_percent(last['gmacs'], first['gmacs']):.1f}% of the MACs and "
                f"{_percent(last['mparams'], first['mparams']):.1f}% of the parameters of the original")
    if "compressed fp32" in speed:
        headline += (f"; in {fp32['backend']} fp32 on {where}: {speed['compressed fp32']['speedup_p50']:.2f}x the "
                     f"original's speed (p50), {speed['compressed fp32'].get('delta_miou', float('nan')):+.2f} mIoU "
                     f"on {split}")
    lines += [headline + ".", ""]

    lines += ["## What was done", ""]
    lines.append(f"- **Source**: `{prune['checkpoint']}` ({prune['family']} family), data `{prune['data']}`, scored at "
                 f"{size[0]}x{size[1]}.")
    if band:
        lines.append(f"- **Band**: the train labels' spectrum puts {band['tau']:.2f} of their non-DC energy below "
                     f"f_c = {band['cutoff']:.3f}; the decoder keeps keep-freq {prune['keep_freq']:.3f} of its band "
                     f"({prune['trunc_mode']} resampling; it holds {band['held']:.3f} of the label energy).")
    else:
        lines.append(f"- **Band**: keep-freq {prune['keep_freq']:.3f} as given ({prune['trunc_mode']}).")
    pruning = prune.get("pruning")
    if pruning:
        target = (f"to {prune['target_macs']:g} of the MACs" if prune.get("target_macs") is not None
                  else f"channel ratio {prune['channel_ratio']:g}")
        lines.append(f"- **Channels**: removed {target} by `{prune['importance']}` importance in scope "
                     f"`{prune['scope']}` (torch-pruning surgery, {plan.calib_images} calibration images).")
    else:
        lines.append("- **Channels**: none removed.")
    if ft:
        losses = ", ".join(f"{name} {getattr(ft, key):g}" for name, key in
                           (("CE", "ce"), ("recall", "recall"), ("self-regulation", "sr"), ("distillation", "kd"),
                            ("feature distillation", "feature_kd")) if getattr(ft, key))
        lines.append(f"- **Fine-tuning**: {ft.epochs} epoch{'s' if ft.epochs > 1 else ''} on {cfg.train_split}, {losses}, lr {ft.lr:g}, batch "
                     f"{ft.batch_size}, crop {ft.crop_size[0]}x{ft.crop_size[1]}; the teacher is the original.")
    else:
        lines.append("- **Fine-tuning**: none.")
    lines.append(f"- **Export**: ONNX opset {exports['compressed']['opset']} at {size[0]}x{size[1]}, precisions "
                 f"{', '.join(cfg.precisions)} (precision set in the graph), each compared with PyTorch on "
                 f"{cfg.parity_images} {cfg.val_split} images and checked against TensorRT's ONNX rules.")
    lines.append("")

    lines += [f"## Cost and accuracy in PyTorch ({cfg.val_split} split)", ""]
    lines.append(stages_table(stages, markdown=True))
    lines.append("")

    lines += [f"## Deployment figures, measured side by side on {where}", ""]
    rows = []
    for r in bench["results"]:
        ratio = speed.get(r["label"], {})
        a = r.get("accuracy") or {}
        model, _, precision = r["label"].partition(" ")
        parity = _parity(exports.get(model, {}), r["precision"])
        rows.append([r["label"], r["backend"], r["precision"], r["latency"]["p50_ms"], r["latency"]["p90_ms"],
                     ratio.get("speedup_p50", 1.0 if r is base else float("nan")), a.get("miou", float("nan")),
                     a.get("macc", float("nan")), parity])
    lines.append(markdown_table(rows, ["model", "backend", "precision", "p50 ms", "p90 ms", "speed-up (p50)",
                                       "mIoU", "mAcc", "parity agreement"], 2))
    s = bench["settings"]
    lines += ["", f"mIoU on {split}. Latency: batch {s['batch_size']}, {s['runs']} timed runs after {s['warmup']} "
                  f"warm-up, interleaved in {s['rounds']} rounds (`bench/bench.json`).", "",
              "![latency and mIoU](bench/bench.png)"]
    if band:
        lines += ["", "![label energy by band](compressed/label_energy.png)"]
    lines.append("")

    lines += ["## Files", "", markdown_table([
        ["compressed/model.safetensors", "the compressed model (segprune checkpoint, reloads without the original)"],
        ["compressed/report.json", "the band, the pruning and the scored stages"],
        ["export/original/, export/compressed/", "ONNX per precision; export.json: hashes, parity, TensorRT rules"],
        ["bench/bench.json", "both models side by side: latency and mIoU per backend and precision"],
        ["bench/compressed.json", "the compressed model's results alone: what the baselines were recorded from"],
        ["baselines.json", "regression baselines: `segprune check RESULT --baseline .`"],
        ["compress.json", "the options and the finished stages (a re-run resumes from it)"]], ["file", "what"]), ""]

    gate = ["segprune", "bench", str(out / "export" / "compressed"), "--precision", "fp32", "--data", cfg.data,
            "--split", cfg.val_split, "--input-size", f"{size[0]}x{size[1]}", "--report", "result.json"]
    if cfg.threads:
        gate += ["--threads", str(cfg.threads)]
    lines += ["## Reproduce and gate", "", "```", command or "(made through the Python API)", "```", "",
              "In CI, on this machine kind (a baseline is per backend, precision, shape and device):", "", "```",
              shlex.join(gate), f"segprune check result.json --baseline {shlex.quote(str(out))}", "```", ""]

    lines += ["## What was not verified", ""]
    if engines_note:
        lines.append(f"- No TensorRT engine was built: {engines_note}. The graphs passed the rule check, but only "
                     "a build on the target GPU proves they build, and their GPU latency is unmeasured.")
    if device["kind"] == "cpu":
        lines.append(f"- Latency was measured on this CPU only ({where}); another device needs its own baseline.")
    lines.append("- Speed-ups are the benchmark's, not the MACs': fewer MACs need not mean faster (a truncated "
                 "U-Net ran slower in onnxruntime, docs/results.md).")
    lines.append(f"- Accuracy is on {split} only; nothing was tuned on it here, but it is not a held-out test set.")
    int8 = by_label.get("compressed int8")
    if int8 and int8["latency"]["p50_ms"] >= fp32["latency"]["p50_ms"]:
        lines.append(f"- int8 was not faster than fp32 here ({int8['latency']['p50_ms']:.2f} against "
                     f"{fp32['latency']['p50_ms']:.2f} ms): the Q/DQ graph is for TensorRT and int8 accelerators.")
    return "\n".join(lines) + "\n"


def _parity(manifest: dict[str, Any], precision: str) -> Any:
    entry = (manifest.get("files") or {}).get(precision)
    if not entry or not entry.get("parity"):
        return "-"
    return min(c["agreement"] for c in entry["parity"])
