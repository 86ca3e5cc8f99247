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
"""

from __future__ import annotations

import argparse
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
    parser.add_argument("--retrain", action="store_true", help="train even if a cached run with this recipe exists")
    args = parser.parse_args(argv)

    import torch

    from segprune.cli.common import parse_size
    from segprune.data import EvalTransform, TrainTransform, build_dataset, make_loader
    from segprune.io import save_json
    from segprune.models import create_model, load_checkpoint
    from segprune.report import make_report, metrics_table
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
        args.out = args.out.with_name(args.out.stem + suffix + ".json") if args.out == DEFAULT_OUT else args.out
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, optimizer="adamw", lr=args.lr,
                      weight_decay=1e-4, warmup_iters=100, crop_size=size, base_size=size,
                      scale_range=tuple(float(v) for v in args.scale_range.split(",")), eval_size=size, eval_every=5,
                      seed=args.seed).validate()
    recipe = {"model": "deeplabv3plus_resnet18", "output_stride": 16, "train": cfg.to_dict(),
              **({"train_split": train_split} if args.held_out else {}),
              **({"color_jitter": args.color_jitter} if args.color_jitter else {})}
    recipe_file = args.cache / "recipe.json"
    cached = (args.cache / "last.safetensors").is_file() and recipe_file.is_file() \
        and json.loads(recipe_file.read_text()) == json.loads(json.dumps(recipe))
    train_summary = None
    wall = 0.0
    if args.retrain or not cached:
        train_set = build_dataset(spec, train_split, transform=TrainTransform(size, scale_range=cfg.scale_range,
                                                                              base_size=size,
                                                                              color_jitter=args.color_jitter))
        val_set = build_dataset(spec, "val", transform=EvalTransform())
        seed_everything(args.seed)
        model = create_model("deeplabv3plus_resnet18", num_classes=train_set.num_classes, output_stride=16)
        start = time.perf_counter()
        train_summary = fit(model, train_set, val_set, cfg, args.cache, device="cpu")
        wall = time.perf_counter() - start
        save_json(recipe_file, recipe)
        save_json(args.cache / "train_summary.json", {"summary": train_summary, "wall_seconds": wall})
    else:
        print(f"reusing the cached run in {args.cache} (same recipe); --retrain to train again", file=sys.stderr)
        saved = json.loads((args.cache / "train_summary.json").read_text())
        train_summary, wall = saved["summary"], saved["wall_seconds"]

    # Final numbers come from the last checkpoint, re-evaluated here: the val split is
    # only read, never used to pick a checkpoint, so this is not tuned on val.
    model, _ = load_checkpoint(args.cache / "last.safetensors")

    def score(split):
        dataset = build_dataset(spec, split, transform=EvalTransform())
        return (*evaluate(model, make_loader(dataset, 4, shuffle=False), dataset.num_classes, input_size=size,
                          class_names=dataset.classes), dataset)

    metrics, timing, val_set = score("val")
    held_out = None
    if args.held_out:
        held_metrics, _, held_set = score(f"video-{args.held_out}")
        held_out = {"split": f"video-{args.held_out}", "images": len(held_set), **held_metrics.to_dict()}
    history = train_summary["history"]
    report = make_report(
        "bench.camvid_baseline",
        command=" ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        data={"dataset": "CamVid (SegNet split)", "train_split": train_split,
              "train_images": len(build_dataset(spec, train_split)), "val_images": len(val_set),
              "accuracy_splits": ["val", *([held_out["split"]] if held_out else [])],
              "label_resolution": [360, 480], "input_resolution": list(size)},
        model=model.config.to_dict(), parameters=sum(p.numel() for p in model.parameters()),
        train=cfg.to_dict(), color_jitter=args.color_jitter, checkpoint="last (the final epoch), not the best on val",
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
