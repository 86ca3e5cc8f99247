"""``segprune train``: train a segmentation model and keep its best and last checkpoints."""

from __future__ import annotations

import argparse
from pathlib import Path

from segprune.cli.common import (
    add_data_args,
    add_model_args,
    add_output_args,
    add_runtime_args,
    apply_runtime,
    build_or_load_model,
    check_free_space,
    emit,
    parse_floats,
    parse_size,
    positive_int,
    prepare_output_dir,
)

NAME = "train"
HELP = "train a model (baseline checkpoint when you have none)"
DESCRIPTION = ("Train DeepLabV3+ or DAN on a dataset. Writes best.safetensors, last.safetensors (+ .json configs), "
               "last.state.safetensors (for --resume) and history.json into --out. Runs under "
               "`torchrun --nproc_per_node N` for multi-GPU DistributedDataParallel training.")


# What a training run writes into --out: a folder holding any of these is a run.
RUN_FILES = ("last.safetensors", "last.safetensors.json", "last.state.safetensors", "best.safetensors",
             "best.safetensors.json", "history.json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_args(parser)
    parser.add_argument("--train-split", default="train", help="split to train on")
    parser.add_argument("--val-split", default="val", help="split to evaluate on (never the test split)")
    add_model_args(parser)
    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--epochs", type=positive_int, default=10, help="passes over the training split")
    opt.add_argument("--batch-size", type=positive_int, default=8, help="images per step (per process under torchrun)")
    opt.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd", help="SGD with momentum (DeepLab recipe) or AdamW (often better from scratch)")
    opt.add_argument("--lr", type=float, default=0.01, help="peak learning rate (poly decay to 0)")
    opt.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    opt.add_argument("--weight-decay", type=float, default=1e-4, help="weight decay (not applied to BN and biases)")
    opt.add_argument("--warmup-iters", type=int, default=0, help="linear learning-rate warm-up steps")
    opt.add_argument("--grad-clip", type=float, default=None, help="clip the gradient norm to this value")
    opt.add_argument("--no-amp", action="store_true", help="disable mixed precision on CUDA (CPU never uses it)")
    opt.add_argument("--seed", type=int, default=0, help="seed for initialisation, shuffling and augmentation")
    aug = parser.add_argument_group("augmentation and resolution")
    aug.add_argument("--crop-size", type=parse_size, default=(96, 128), metavar="HxW", help="training crop height and width")
    aug.add_argument("--base-size", type=parse_size, default=None, metavar="HxW",
                     help="resize training images to this size before random scaling (reduced-resolution training)")
    aug.add_argument("--scale-range", type=parse_floats, default=(0.5, 2.0), metavar="LO,HI",
                     help="random scale factors applied before cropping")
    aug.add_argument("--eval-size", type=parse_size, default=None, metavar="HxW",
                     help="run evaluation inputs at this size; logits are upsampled and scored at label size")
    aug.add_argument("--block-labels", type=int, default=None, metavar="B",
                     help="train on block-wise weak labels: each BxB block takes one class (eval uses full labels)")
    aug.add_argument("--block-mode", choices=("majority", "pure"), default="majority",
                     help="majority: the block's most frequent class; pure: mixed blocks become ignore")
    aug.add_argument("--block-purity", type=float, default=1.0, metavar="P",
                     help="with --block-mode pure, the majority share a block needs to keep its label")
    aug.add_argument("--eval-every", type=positive_int, default=1, metavar="N", help="evaluate every N epochs")
    run = parser.add_argument_group("run")
    run.add_argument("--out", type=Path, default=Path("runs/train"), metavar="DIR", help="run folder for checkpoints, training state and history")
    run.add_argument("--resume", action="store_true", help="continue the run in --out from its last epoch")
    run.add_argument("--overwrite", action="store_true",
                     help="replace the run already in --out (its checkpoints, state and history are removed first)")
    run.add_argument("--stop-after", type=int, default=None, metavar="N",
                     help="stop after epoch N without changing the schedule; continue later with --resume")
    add_runtime_args(parser)
    add_output_args(parser)


def run(args: argparse.Namespace) -> int:
    from segprune.data import EvalTransform, TrainTransform, build_dataset
    from segprune.data.blocks import BlockLabelTransform
    from segprune.errors import ConfigError
    from segprune.report import make_report, metrics_table
    from segprune.train import TrainConfig, fit, seed_everything

    apply_runtime(args)
    if args.resume and args.overwrite:
        raise ConfigError("give --resume or --overwrite, not both")
    cfg = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
        momentum=args.momentum, weight_decay=args.weight_decay, warmup_iters=args.warmup_iters,
        crop_size=args.crop_size, base_size=args.base_size, scale_range=tuple(args.scale_range),
        eval_size=args.eval_size, eval_every=args.eval_every, amp=not args.no_amp, seed=args.seed,
        workers=args.workers, grad_clip=args.grad_clip).validate()
    transform = TrainTransform(cfg.crop_size, scale_range=cfg.scale_range, base_size=cfg.base_size)
    train_set = build_dataset(args.data, args.train_split, transform=transform)
    if args.block_labels:
        train_set.transform = BlockLabelTransform(transform, train_set.num_classes, args.block_labels,
                                                  args.block_mode, args.block_purity, train_set.ignore_index)
    val_set = build_dataset(args.data, args.val_split, transform=EvalTransform())
    seed_everything(cfg.seed)
    model = build_or_load_model(args, train_set.num_classes)
    # best and last weights, the optimizer state (up to two moments per weight), and a temporary during each save
    check_free_space(args.out, model, 5, "a training run of this model")
    prepare_output_dir(args.out, resume=args.resume, overwrite=args.overwrite, owned=RUN_FILES)
    summary = fit(model, train_set, val_set, cfg, args.out, device=args.device, resume=args.resume,
                  progress=not args.no_progress, stop_after=args.stop_after)
    report = make_report("train", data=args.data, block_labels=args.block_labels and
                         {"block": args.block_labels, "mode": args.block_mode, "purity": args.block_purity}, model=model.config.to_dict(), train=cfg.to_dict(),
                         out=str(args.out), **summary)
    if summary["rank"] == 0:
        table = metrics_table(summary["final"]) if summary["final"] else "no evaluation ran"
        emit(args, report, f"{table}\nbest val mIoU {summary['best']['miou']:.2f} at epoch "
                           f"{summary['best']['epoch']}; checkpoints in {args.out}")
    return 0
