"""CamVid baseline: DeepLabV3+ ResNet-18 (OS16) trained from scratch, evaluated on CamVid val.

Later benchmarks (spectral analysis, compression, export) start from the checkpoint this
writes, so it is cached under ``benchmarks/cache/`` (git-ignored) and reused when its
recipe has not changed; ``--retrain`` forces a new run. The JSON result goes to
``benchmarks/results/camvid_baseline.json``.

``--held-out SEQ`` trains without one whole video (the ``train-without-SEQ`` split) and
scores on it (``video-SEQ``) as well as on val: val is 101 frames of video 0016E5, which also
gives 204 of the 367 train frames, so val alone overstates accuracy on unseen footage.

Training runs at a reduced resolution (``--size``, default 180x240, half of CamVid's
360x480) to fit in an hour on two CPU cores; evaluation feeds the model the same reduced
size and scores the upsampled logits against the full-resolution 360x480 labels.

``--finish-size HxW --finish-epochs N`` adds a second stage: the cached first-stage model
fine-tuned for N more epochs at that size (e.g. 360x480, where thin classes such as poles
and signs span four times as many pixels), then scored at it. ``--finish-size`` equal to
``--size`` is that stage's same-epochs control.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = ROOT / "benchmarks" / "cache" / "camvid_r18"
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "camvid_baseline.json"
DEFAULT_SCALE = "0.75,1.5"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--camvid", type=Path, default=ROOT.parent / "shared" / "data" / "camvid")
    parser.add_argument("--size", default="180x240", help="training and evaluation input size HxW")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--held-out", default=None, metavar="SEQ",
                        help="train without CamVid video SEQ (e.g. 0006R0) and score on it as well as on val; "
                             "the cache and result default to names with the video in them")
    parser.add_argument("--color-jitter", type=float, default=0.0, metavar="S",
                        help="brightness, contrast and saturation factors drawn in [1-S, 1+S] (0: none)")
    parser.add_argument("--scale-range", default=DEFAULT_SCALE, metavar="LO,HI", help="random scale range")
    parser.add_argument("--finish-size", default=None, metavar="HxW",
                        help="second stage: fine-tune the first stage's model at this input size and score at it")
    parser.add_argument("--finish-epochs", type=int, default=0, metavar="N", help="epochs of the second stage")
    parser.add_argument("--finish-lr", type=float, default=5e-4, help="peak learning rate of the second stage")
    parser.add_argument("--retrain", action="store_true", help="train even if a cached run with this recipe exists")
    args = parser.parse_args(argv)
    if (args.finish_size is None) != (args.finish_epochs <= 0):
        parser.error("--finish-size and --finish-epochs (> 0) go together")

    import torch

    from segprune.cli.common import parse_size
    from segprune.data import EvalTransform, TrainTransform, build_dataset, make_loader
    from segprune.io import save_json
    from segprune.models import create_model, load_checkpoint
    from segprune.report import command_line, make_report, metrics_table
    from segprune.train import TrainConfig, evaluate, fit, seed_everything

    if args.threads:
        torch.set_num_threads(args.threads)
    if not (args.camvid / "train.txt").is_file():
        print(f"CamVid not found at {args.camvid}: pass --camvid DIR (SegNet layout)", file=sys.stderr)
        return 2
    size = parse_size(args.size)
    spec = f"camvid:{args.camvid}"
    train_split = f"train-without-{args.held_out}" if args.held_out else "train"
    suffix = (f"_without_{args.held_out}" if args.held_out else "") + (
        f"_jitter{args.color_jitter:g}" if args.color_jitter else "") + (
        f"_scale{args.scale_range.replace(',', '-')}" if args.scale_range != DEFAULT_SCALE else "")
    if suffix:  # variants of the recipe keep their own cache and result, so none replaces the baseline's
        args.cache = args.cache.with_name(args.cache.name + suffix) if args.cache == DEFAULT_CACHE else args.cache
    finish = f"_finish{args.finish_size}_ep{args.finish_epochs}" if args.finish_size else ""
    if suffix or finish:
        args.out = args.out.with_name(args.out.stem + suffix + finish + ".json") if args.out == DEFAULT_OUT else args.out
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, optimizer="adamw", lr=args.lr,
                      weight_decay=1e-4, warmup_iters=100, crop_size=size, base_size=size,
                      scale_range=tuple(float(v) for v in args.scale_range.split(",")), eval_size=size, eval_every=5,
                      seed=args.seed).validate()
    recipe = {"model": "deeplabv3plus_resnet18", "output_stride": 16, "train": cfg.to_dict(),
              **({"train_split": train_split} if args.held_out else {}),
              **({"color_jitter": args.color_jitter} if args.color_jitter else {})}
    train_set = build_dataset(spec, train_split, transform=TrainTransform(size, scale_range=cfg.scale_range,
                                                                          base_size=size,
                                                                          color_jitter=args.color_jitter))
    val_set = build_dataset(spec, "val", transform=EvalTransform())

    def stage(cache: Path, recipe: dict, cfg: TrainConfig, train_set, start: Path | None):
        """Train one stage into ``cache`` unless it holds a run of this very recipe; its summary and wall time."""
        recipe_file = cache / "recipe.json"
        cached = (cache / "last.safetensors").is_file() and recipe_file.is_file() \
            and json.loads(recipe_file.read_text()) == json.loads(json.dumps(recipe))
        if cached and not args.retrain:
            print(f"reusing the cached run in {cache} (same recipe); --retrain to train again", file=sys.stderr)
            saved = json.loads((cache / "train_summary.json").read_text())
            return saved["summary"], saved["wall_seconds"]
        seed_everything(args.seed)
        model = (load_checkpoint(start)[0] if start is not None else
                 create_model("deeplabv3plus_resnet18", num_classes=train_set.num_classes, output_stride=16))
        begin = time.perf_counter()
        summary = fit(model, train_set, val_set, cfg, cache, device="cpu")
        wall = time.perf_counter() - begin
        save_json(recipe_file, recipe)
        save_json(cache / "train_summary.json", {"summary": summary, "wall_seconds": wall})
        return summary, wall

    train_summary, wall = stage(args.cache, recipe, cfg, train_set, None)
    stages = [{"input_size": list(size), "epochs": cfg.epochs, "lr": cfg.lr, "wall_seconds": wall,
               "history": train_summary["history"]}]
    eval_size, checkpoint_dir = size, args.cache
    if args.finish_size:
        # The first stage is shared with the plain recipe's cache; the second keeps its own.
        eval_size = parse_size(args.finish_size)
        finish_cfg = dataclasses.replace(cfg, epochs=args.finish_epochs, lr=args.finish_lr, warmup_iters=0,
                                         crop_size=eval_size, base_size=eval_size, eval_size=eval_size).validate()
        finish_set = build_dataset(spec, train_split, transform=TrainTransform(
            eval_size, scale_range=cfg.scale_range, base_size=eval_size, color_jitter=args.color_jitter))
        finish_cache = args.cache.with_name(args.cache.name + finish)
        train_summary, finish_wall = stage(finish_cache, {**recipe, "finish": finish_cfg.to_dict()}, finish_cfg,
                                           finish_set, args.cache / "last.safetensors")
        stages.append({"input_size": list(eval_size), "epochs": finish_cfg.epochs, "lr": finish_cfg.lr,
                       "wall_seconds": finish_wall, "history": train_summary["history"]})
        wall += finish_wall
        checkpoint_dir = finish_cache

    # Final numbers come from the last checkpoint, re-evaluated here: the val split is
    # only read, never used to pick a checkpoint, so this is not tuned on val.
    model, _ = load_checkpoint(checkpoint_dir / "last.safetensors")

    def score(split):
        dataset = build_dataset(spec, split, transform=EvalTransform())
        return (*evaluate(model, make_loader(dataset, 4, shuffle=False), dataset.num_classes, input_size=eval_size,
                          class_names=dataset.classes), dataset)

    metrics, timing, _ = score("val")
    held_out = None
    if args.held_out:
        held_metrics, _, held_set = score(f"video-{args.held_out}")
        held_out = {"split": f"video-{args.held_out}", "images": len(held_set), **held_metrics.to_dict()}
    history = train_summary["history"]
    report = make_report(
        "bench.camvid_baseline",
        command=command_line(__file__, argv, ROOT),
        data={"dataset": "CamVid (SegNet split)", "train_split": train_split,
              "train_images": len(train_set), "val_images": len(val_set),
              "accuracy_splits": ["val", *([held_out["split"]] if held_out else [])],
              "label_resolution": [360, 480], "input_resolution": list(eval_size)},
        model=model.config.to_dict(), parameters=sum(p.numel() for p in model.parameters()),
        train=cfg.to_dict(), stages=stages, color_jitter=args.color_jitter,
        checkpoint="last (the final epoch), not the best on val",
        val=metrics.to_dict(), held_out=held_out,
        train_images_per_s_median=statistics.median(h["train_images_per_s"] for h in history),
        eval_images_per_s=timing["images_per_s"], train_wall_seconds=wall,
        peak_memory_mb=train_summary["peak_memory_mb"], history=history,
    )
    save_json(args.out, report)
    print(metrics_table(metrics.to_dict()))
    held = f"  held-out {held_out['split']} mIoU {held_out['miou']:.2f}" if held_out else ""
    print(f"val mIoU {metrics.miou:.2f}  mAcc {metrics.macc:.2f}{held}  training {wall / 60:.1f} min  -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
