"""What the compression benchmarks share: the CamVid baseline, val and calibration loaders."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# What every CamVid accuracy in these benchmarks' JSON is measured on, unless it names a held-out video:
# SegNet's val split is one video that also gives 204 of the 367 train frames, so it is no test split.
VAL_SPLIT = "CamVid val (0016E5)"


def add_setup_args(parser: argparse.ArgumentParser) -> None:
    """The options :func:`load_setup` reads: data, baseline, input size, calibration images."""
    parser.add_argument("--camvid", type=Path, default=ROOT.parent / "shared" / "data" / "camvid",
                        help="CamVid folder (see its README)")
    parser.add_argument("--baseline", type=Path,
                        default=ROOT / "benchmarks" / "cache" / "camvid_r18" / "last.safetensors",
                        help="unpruned checkpoint from benchmarks/camvid_baseline.py")
    parser.add_argument("--size", default="180x240", help="input size the baseline runs at, HxW")
    parser.add_argument("--mode", default="area", choices=("area", "bilinear", "spectral"), help="truncation mode")
    parser.add_argument("--calib-images", type=int, default=32, help="train images that rank the channels")


def has_baseline(baseline: Path) -> bool:
    """Whether the baseline checkpoint exists; if not, says on stderr how to make it."""
    if baseline.is_file():
        return True
    print(f"no baseline at {baseline}: run benchmarks/camvid_baseline.py first", file=sys.stderr)
    return False


@dataclass
class CamvidSetup:
    base: Any  # the baseline model, loaded
    size: tuple[int, int]  # the input size it runs at
    spec: str  # dataset spec, camvid:PATH
    val: Any
    val_loader: Any
    calib_loader: Any  # --calib-images train images, evenly spaced, at the input size


def load_setup(camvid: Path, baseline: Path, size: str, calib_images: int) -> CamvidSetup | None:
    """The baseline and loaders, or None (with the reason on stderr) when the baseline is missing."""
    from torch.utils.data import Subset

    from segprune.cli.common import parse_size
    from segprune.data import EvalTransform, build_dataset, make_loader, spread
    from segprune.models import load_checkpoint

    if not has_baseline(baseline):
        return None
    hw = parse_size(size)
    spec = f"camvid:{camvid}"
    base, _ = load_checkpoint(baseline)
    val = build_dataset(spec, "val", transform=EvalTransform())
    calib = build_dataset(spec, "train", transform=EvalTransform(size=hw))
    return CamvidSetup(base, hw, spec, val, make_loader(val, 4, shuffle=False),
                       make_loader(Subset(calib, spread(len(calib), calib_images)), 4, shuffle=False))


def compress_run(spec: str, baseline: Path, size: tuple[int, int], compression: Any, finetuning: Any,
                 out: Path, calib_images: int = 32, prune_steps: int = 1, train_split: str = "train",
                 held_out: str | None = None) -> dict[str, Any]:
    """Compress ``baseline`` with ``compression`` (a CompressConfig), fine-tune with ``finetuning`` (a
    FinetuneConfig, distilling from the baseline), through the library, as ``segprune prune`` does
    (``prune_steps`` > 1: gradually, as ``--prune-steps``). Calibration and fine-tuning read
    ``train_split``.

    Writes ``out/model.safetensors`` and ``out/report.json`` (the stages original / compressed /
    fine-tuned with GMACs and val scores, the compression result, seconds) and returns the report.
    ``held_out`` (a split no training touched, e.g. ``video-0006R0`` with ``train_split``
    ``train-without-0006R0``) also scores the baseline and the result there: ``report["held_out"]``.
    """
    import time

    from segprune.data import EvalTransform, build_dataset, spread_loader
    from segprune.io import file_sha256, save_json
    from segprune.models import load_checkpoint, save_checkpoint
    from segprune.report import make_report
    from segprune.train import compress_and_finetune

    started = time.perf_counter()
    model, _ = load_checkpoint(baseline)
    val = build_dataset(spec, "val", transform=EvalTransform())
    calib = spread_loader(build_dataset(spec, train_split, transform=EvalTransform(size=size)), calib_images, 4)
    unseen = None if held_out is None else build_dataset(spec, held_out, transform=EvalTransform())
    scores = None if unseen is None else {"split": held_out, "original": held_out_score(model, unseen, size)}
    result, stages, _ = compress_and_finetune(model, compression, finetuning, build_dataset(spec, train_split), val,
                                              size=size, calib=calib, input_size=size, out_dir=out / "finetune",
                                              device="cpu", prune_steps=prune_steps)
    if scores is not None:
        scores["fine-tuned"] = held_out_score(model, unseen, size)
    save_checkpoint(out / "model.safetensors", model, {"compressed_from": str(baseline), "input_size": list(size),
                                                       "stages": stages})
    report = make_report("prune", checkpoint=str(baseline), checkpoint_sha256=file_sha256(baseline), data=spec,
                         input_size=list(size), keep_freq=result.keep_freq, compression=result.to_dict(),
                         finetune_config=finetuning.to_dict(),
                         prune_steps=prune_steps, train_split=train_split, stages=stages,
                         held_out=scores, seconds=time.perf_counter() - started)
    save_json(out / "report.json", report)
    return report


def held_out_score(model: Any, dataset: Any, size: tuple[int, int]) -> dict[str, float]:
    """mIoU and mAcc of ``model`` on ``dataset`` (images resized to ``size``, scored at label size)."""
    from segprune.data import make_loader
    from segprune.train import evaluate

    metrics, _ = evaluate(model, make_loader(dataset, 4, shuffle=False), dataset.num_classes, input_size=size,
                          progress=False)
    return {"miou": metrics.miou, "macc": metrics.macc}


def cached_report(out: Path, baseline: Path | None = None) -> dict[str, Any] | None:
    """The ``report.json`` of a finished run in ``out``, or None.

    A run folder is named by its recipe and ``report.json`` is written last (atomically), so a
    report there is that recipe's finished result; an interrupted run leaves none and is redone.
    The folder's name does not say which weights the baseline file held: with ``baseline``, a run
    of other weights at the same path (a retrained baseline) is stale and redone, with a line on
    stderr. A run recorded before the digest was kept cannot be checked, and says so.
    """
    from segprune.io import file_sha256, load_json

    if not (out / "report.json").is_file():
        return None
    report = load_json(out / "report.json")
    if baseline is not None:
        recorded = report.get("checkpoint_sha256")
        if recorded is None:
            print(f"{out}: a run recorded before baseline digests; its baseline cannot be checked",
                  file=sys.stderr)
        elif recorded != file_sha256(baseline):
            print(f"{out}: run from other weights than {baseline} (retrained?); running it again", file=sys.stderr)
            return None
    return report


def export_camvid(model: Any, out: Path, size: tuple[int, int], precisions: tuple[str, ...], data: str,
                  source: dict[str, Any]) -> dict[str, Any]:
    """Export ``model`` through the library to ``out`` at ``size``; returns the export manifest. Val
    images check each precision, 32 train images calibrate int8 (never val, which scores it)."""
    from segprune.data import image_batches
    from segprune.export import ExportConfig, ExportPlan, export_model
    from segprune.models import model_info

    classes = model_info(model)["num_classes"]
    # 360 and 180 are not multiples of the output stride 16: CamVid models are trained and scored there
    return export_model(model.eval(), out, ExportConfig(size, allow_unaligned=True), ExportPlan(precisions=precisions),
                        lambda at, n: image_batches(data, "val", at, 4, n, classes),
                        lambda at: image_batches(data, "train", at, 32, 1, classes),
                        source=source, log=lambda _msg: None)


def plot_runs(runs: dict[str, list[tuple[int, float]]], path: Path, title: str,
              references: dict[str, float] | None = None, split: str = "CamVid val") -> None:
    """One column per arm: each seed's mIoU on ``split`` as a point, the median as a bar, and horizontal
    reference lines (label: value); the spread matters as much as the median with 2-3 seeds."""
    import statistics

    from segprune.plots import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 4.0))
    for i, points in enumerate(runs.values()):
        ax.scatter([i] * len(points), [v for _, v in points], color=f"C{i}", zorder=3)
        for seed, value in points:
            ax.annotate(f"seed {seed}", (i, value), fontsize=7, xytext=(5, -2), textcoords="offset points")
        ax.hlines(statistics.median(v for _, v in points), i - 0.2, i + 0.2, color=f"C{i}", lw=2)
    for (label, value), style in zip((references or {}).items(), ("--", ":", "-."), strict=False):
        ax.axhline(value, color="grey", ls=style, lw=0.8, label=f"{label} {value:.2f}")
    ax.set(xticks=range(len(runs)), xticklabels=list(runs), xlim=(-0.6, len(runs) - 0.4),
           ylabel=f"{split} mIoU % (bar: median)", title=title)
    ax.title.set_fontsize(8)
    ax.grid(alpha=0.3, axis="y")
    if references:
        ax.legend(fontsize=7)
    _save(fig, path)
