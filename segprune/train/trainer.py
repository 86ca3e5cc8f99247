"""The training loop: one function, ``fit``, used by ``segprune train``, the demo and fine-tuning.

It runs single-process or under ``torchrun`` (DistributedDataParallel; the confusion
matrix and the loss are reduced over ranks), with mixed precision on CUDA, a poly
schedule, evaluation every ``eval_every`` epochs, ``best``/``last`` checkpoints and an
exact resume (model, optimizer, scheduler, scaler, epoch, RNG) from ``last``.
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn
from tqdm import tqdm

from segprune.data import make_loader
from segprune.errors import CheckpointError, SegpruneError
from segprune.io import save_json
from segprune.models import save_checkpoint
from segprune.train.config import TrainConfig
from segprune.train.distributed import (
    DistContext,
    all_reduce_mean,
    barrier,
    broadcast_buffers,
    init_distributed,
    shard_indices,
)
from segprune.train.evaluate import evaluate
from segprune.train.losses import CrossEntropy
from segprune.train.schedule import build_optimizer, build_scheduler
from segprune.train.state import load_train_state, save_train_state


class TrainingDiverged(SegpruneError):
    """The loss became NaN or infinite: the options (learning rate, data) made training diverge."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def log(msg: str, ctx: DistContext | None = None) -> None:
    if ctx is None or ctx.is_main:
        print(msg, file=sys.stderr, flush=True)


def peak_memory_mb(device: torch.device) -> float:
    """Peak resident memory of this process (CPU) or peak allocated GPU memory, in MiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _autocast(device: torch.device, enabled: bool):
    if device.type != "cuda" or not enabled:
        return torch.autocast("cpu", enabled=False)
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def fit(model: nn.Module, train_set, val_set, cfg: TrainConfig, out_dir: str | Path | None = None, *,
        device: str | None = None, resume: bool = False, criterion: Callable | None = None,
        progress: bool = True, stop_after: int | None = None,
        train_module: nn.Module | None = None) -> dict[str, Any]:
    """Train ``model`` on ``train_set``, evaluating on ``val_set``; return the run's summary.

    ``criterion(outputs, labels)`` may replace cross-entropy; it receives the raw model
    output (a tensor, or whatever a training wrapper returns). Every epoch reseeds the
    RNGs from ``(seed, epoch, rank)``, so a resumed run sees the same batches and
    augmentations as an uninterrupted one. ``stop_after`` ends the run after that many
    epochs without changing the schedule, to split a long run over sessions (``--resume``).

    ``train_module`` is what the training steps call instead of ``model``: a wrapper that
    adds training-only parts (self-regulation exits, a distillation teacher) around it.
    Its parameters are optimised; evaluation and checkpoints use ``model`` alone, so the
    deployed network never carries the training-only parts.
    """
    cfg.validate()
    ctx = init_distributed(device)
    seed_everything(cfg.seed)
    out = Path(out_dir) if out_dir is not None else None
    core = model.to(ctx.device)
    trainable = (train_module if train_module is not None else core).to(ctx.device)
    if ctx.enabled:
        if ctx.device.type == "cuda":
            # converts BN layers in place inside the containers, so ``core`` sees them too
            trainable = nn.SyncBatchNorm.convert_sync_batchnorm(trainable)
        model = nn.parallel.DistributedDataParallel(
            trainable, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None,
            find_unused_parameters=train_module is not None)  # e.g. presence heads with a zero weight
    else:
        model = trainable
    criterion = criterion or CrossEntropy(ignore_index=getattr(train_set, "ignore_index", 255))

    loader = make_loader(train_set, cfg.batch_size, shuffle=True, workers=cfg.workers, seed=cfg.seed,
                         persistent_workers=False,
                         drop_last=len(train_set) >= cfg.batch_size * ctx.world_size * 2,
                         distributed=ctx.enabled)
    val_view = torch.utils.data.Subset(val_set, shard_indices(len(val_set), ctx)) if ctx.enabled else val_set
    val_loader = make_loader(val_view, cfg.batch_size, shuffle=False, workers=cfg.workers)
    steps_per_epoch = len(loader)
    optimizer = build_optimizer(trainable, cfg)
    scheduler = build_scheduler(optimizer, cfg, cfg.epochs * steps_per_epoch)
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp and ctx.device.type == "cuda"
                                  and not torch.cuda.is_bf16_supported())
    if hasattr(criterion, "set_total_iters"):  # objectives with a warm-up measured in steps
        criterion.set_total_iters(cfg.epochs * steps_per_epoch)
    history: list[dict] = []
    start_epoch, best = 0, {"miou": float("-inf"), "epoch": None}
    if resume:
        start_epoch, best, history = _resume(out, core, trainable if train_module is not None else None,
                                             optimizer, scheduler, scaler, ctx)
        if hasattr(criterion, "step"):
            criterion.step = start_epoch * steps_per_epoch

    num_classes = val_set.num_classes if hasattr(val_set, "num_classes") else core.config.num_classes
    class_names = getattr(val_set, "classes", None)
    metrics = None
    for epoch in range(start_epoch, cfg.epochs):
        seed_everything(cfg.seed + 1000 * epoch + ctx.rank)
        if ctx.enabled:
            loader.sampler.set_epoch(epoch)
        elif loader.generator is not None:
            loader.generator.manual_seed(cfg.seed + epoch)
        model.train()
        t0, seen, loss_sum = time.perf_counter(), 0, 0.0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", leave=False,
                   disable=not (progress and ctx.is_main), file=sys.stderr)
        for images, labels in bar:
            images = images.to(ctx.device, non_blocking=True)
            labels = labels.to(ctx.device, non_blocking=True)
            with _autocast(ctx.device, cfg.amp):
                outputs = model(images)
                loss = criterion(outputs, labels)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.grad_clip:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(trainable.parameters(), cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            value = float(loss.detach())
            if not math.isfinite(value):
                kept = f"; {out} holds the last finished epoch" if out else ""
                raise TrainingDiverged(f"the training loss became {value} at epoch {epoch + 1}: the run diverged "
                                       f"(lower --lr, now {cfg.lr:g}, or set --grad-clip); nothing of this epoch was "
                                       f"saved{kept}")
            seen += images.shape[0]
            loss_sum += value * images.shape[0]
            rate = seen * ctx.world_size / max(time.perf_counter() - t0, 1e-9)
            bar.set_postfix(loss=f"{loss.item():.3f}", img_s=f"{rate:.1f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
        train_seconds = time.perf_counter() - t0
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "loss": all_reduce_mean(loss_sum / max(seen, 1), ctx),
            "train_images_per_s": seen * ctx.world_size / train_seconds,
            "lr": scheduler.get_last_lr()[0],
        }
        last_epoch = epoch + 1 == cfg.epochs
        if (epoch + 1) % cfg.eval_every == 0 or last_epoch:
            broadcast_buffers(core, ctx)
            metrics, timing = evaluate(core, val_loader, num_classes, device=ctx.device,
                                       input_size=cfg.eval_size, class_names=class_names, ctx=ctx,
                                       progress=progress, amp=cfg.amp)
            record.update(miou=metrics.miou, macc=metrics.macc, pixel_acc=metrics.pixel_acc,
                          eval_images_per_s=timing["images_per_s"])
            if metrics.miou > best["miou"]:
                best = {"miou": metrics.miou, "epoch": epoch + 1}
                if out is not None and ctx.is_main:
                    save_checkpoint(out / "best.safetensors", core,
                                    {"epoch": epoch + 1, "metrics": metrics.to_dict(), "train": cfg.to_dict()})
        history.append(record)
        log(_epoch_line(record), ctx)
        if out is not None and ctx.is_main:
            save_checkpoint(out / "last.safetensors", core, {"epoch": epoch + 1, "train": cfg.to_dict()})
            save_train_state(out / "last.state.safetensors", {
                "epoch": epoch + 1, "best": best, "history": history, "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                "train_config": cfg.to_dict(),
                "train_module": trainable.state_dict() if train_module is not None else None})
            save_json(out / "history.json", history)
        barrier(ctx)
        if stop_after is not None and epoch + 1 >= stop_after:
            break
    summary = {"history": history, "best": best, "final": metrics.to_dict() if metrics else None,
               "peak_memory_mb": peak_memory_mb(ctx.device), "world_size": ctx.world_size, "rank": ctx.rank,
               "device": str(ctx.device)}
    return summary


def _check_resume_classes(path: Path, core: nn.Module) -> None:
    """A run resumed on data with another class count is the data's mistake, not the model options': say so."""
    from segprune.models import model_info, read_checkpoint_header

    config = read_checkpoint_header(path).get("config") or {}
    saved = config.get("num_classes", config.get("classes"))
    now = model_info(core, missing_ok=True).get("num_classes")
    if saved is not None and now is not None and saved != now:
        raise CheckpointError(f"{path.parent} was trained on {saved} classes, this --data has {now}: resume with "
                              "the run's dataset, or start a new run in another --out")


def checkpoint_epoch(path: Path) -> int | None:
    """The epoch recorded in a training checkpoint's metadata (None when it has none or cannot be read)."""
    from segprune.models import read_checkpoint_header

    try:
        return (read_checkpoint_header(path).get("metadata") or {}).get("epoch")
    except CheckpointError:
        return None


def _epoch_line(r: dict) -> str:
    parts = [f"epoch {r['epoch']}", f"loss {r['loss']:.4f}", f"{r['train_images_per_s']:.1f} img/s"]
    if "miou" in r:
        parts += [f"val mIoU {r['miou']:.2f}", f"mAcc {r['macc']:.2f}"]
    return "  ".join(parts)


def _resume(out: Path | None, core: nn.Module, wrapper: nn.Module | None, optimizer, scheduler, scaler,
            ctx: DistContext):
    if out is None:
        raise CheckpointError("resume needs the run folder: pass --out DIR of the run to continue")
    state = load_train_state(out / "last.state.safetensors")
    weights_epoch = checkpoint_epoch(out / "last.safetensors")
    if weights_epoch != state["epoch"]:
        raise CheckpointError(f"{out}: last.safetensors holds epoch {weights_epoch} but last.state.safetensors epoch "
                              f"{state['epoch']}: the run was interrupted while saving; continuing would train from "
                              "mismatched weights and optimizer state. Start again in a new --out, or copy "
                              "best.safetensors as --init")
    _check_resume_classes(out / "last.safetensors", core)
    try:
        weights = load_file(str(out / "last.safetensors"), device=str(ctx.device))
        core.load_state_dict(weights, strict=True)
    except (RuntimeError, FileNotFoundError) as exc:
        raise CheckpointError(f"cannot resume from {out / 'last.safetensors'}: {str(exc).splitlines()[0]}; "
                              "resume with the same --arch and model options as the first run") from None
    if wrapper is not None:
        if not state.get("train_module"):
            raise CheckpointError(f"{out} was trained without the training-only modules asked for now "
                                  "(self-regulation exits or distillation): resume with the same loss options")
        wrapper.load_state_dict(state["train_module"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    log(f"resumed from epoch {state['epoch']} in {out}", ctx)
    return int(state["epoch"]), state["best"], list(state["history"])
