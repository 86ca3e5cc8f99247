"""Fine-tuning after compression: ``finetune(model, train_set, val_set, FinetuneConfig(...), teacher=original)``.

The recipe that recovers a compressed model (AdamW, poly decay without warm-up, the same
scale augmentation as training, CE plus optional recall, self-regulation and distillation
from the uncompressed model) in one place, so ``segprune prune``, the demo and the
benchmarks fine-tune alike. It composes after :func:`segprune.compress.compress_` and calls
:func:`segprune.train.fit`; a user with their own loop simply does not call it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from torch import nn

from segprune.errors import ConfigError
from segprune.train.config import TrainConfig


@dataclass(frozen=True)
class FinetuneConfig:
    """Epochs, batch, peak learning rate, sizes and the loss weights of the fine-tuning run.

    ``crop_size`` is the training crop and ``input_size`` the size images are scaled to
    before cropping and the size the model is evaluated at (``None``: the data's own).
    ``kd > 0`` (logits) and ``feature_kd > 0`` (decoder features, through a training-only
    1x1 adapter) need a ``teacher``; ``sr > 0`` needs a segprune model (its exits hook the
    backbone's stages).
    """

    epochs: int
    batch_size: int = 8
    lr: float = 1e-3
    crop_size: tuple[int, int] = (96, 128)
    input_size: tuple[int, int] | None = None
    ce: float = 1.0
    recall: float = 0.0
    sr: float = 0.0
    kd: float = 0.0
    kd_temperature: float = 4.0
    feature_kd: float = 0.0
    seed: int = 0
    workers: int = 0

    def __post_init__(self) -> None:
        for name in ("lr", "ce", "recall", "sr", "kd", "kd_temperature", "feature_kd"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"--{name.replace('_', '-')} {value!r} is not valid: use a finite number >= 0")
        if self.lr <= 0 or self.kd_temperature <= 0:
            raise ConfigError(f"--lr and --kd-temperature must be positive, got {self.lr} and {self.kd_temperature}")

    @property
    def distills(self) -> bool:
        """Whether a term learns from the teacher (logits or features)."""
        return self.kd > 0 or self.feature_kd > 0

    def train_config(self) -> TrainConfig:
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, optimizer="adamw", lr=self.lr,
                           warmup_iters=0, crop_size=self.crop_size, base_size=self.input_size,
                           scale_range=(0.75, 1.5), eval_size=self.input_size, eval_every=self.epochs,
                           seed=self.seed, workers=self.workers).validate()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def finetune(model: nn.Module, train_set, val_set, config: FinetuneConfig, out_dir: str | Path | None = None, *,
             teacher: nn.Module | None = None, device: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Fine-tune ``model`` in place with ``config``'s recipe; returns :func:`fit`'s summary.

    ``train_set``'s transform is replaced by the recipe's augmentation. ``teacher`` (the
    uncompressed model, in eval mode) is required when ``config.kd > 0``.
    """
    from segprune.data import TrainTransform
    from segprune.train.objective import Objective, build_training_module
    from segprune.train.trainer import fit, seed_everything

    if config.distills and teacher is None:
        raise ConfigError("distillation (--kd or --feature-kd > 0) needs the uncompressed model as teacher")
    cfg = config.train_config()
    train_set.transform = TrainTransform(cfg.crop_size, scale_range=cfg.scale_range, base_size=config.input_size)
    objective = Objective({"ce": config.ce, "recall": config.recall, "sr": config.sr, "kd": config.kd,
                           "feature_kd": config.feature_kd},
                          num_classes=val_set.num_classes, ignore_index=val_set.ignore_index,
                          kd_temperature=config.kd_temperature)
    seed_everything(config.seed)
    module = build_training_module(model, objective, teacher=teacher if config.distills else None)
    return fit(model, train_set, val_set, cfg, out_dir, device=device, criterion=objective, train_module=module,
               progress=progress)


def score_stage(name: str, model: nn.Module, size: tuple[int, int], loader, num_classes: int, *,
                input_size: tuple[int, int] | None = None, class_names: list[str] | None = None,
                progress: bool = False) -> dict[str, Any]:
    """One row of a compression report: cost at ``size`` (GMACs, M params) and val scores of ``model``.

    ``input_size`` resizes the images before the model (its training size); scores are at label
    resolution. The prune command, the demo and the benchmarks report every stage with this.
    """
    from segprune.compress.macs import count_macs
    from segprune.train.evaluate import evaluate

    macs = count_macs(model, size)
    metrics, _ = evaluate(model, loader, num_classes, input_size=input_size, class_names=class_names,
                          progress=progress)
    scores = metrics.to_dict()
    return {"stage": name, "gmacs": macs.total_macs / 1e9, "mparams": macs.total_params / 1e6,
            "macs_by_group": {k: v / 1e9 for k, v in macs.macs.items()}, "miou": scores["miou"],
            "macc": scores["macc"], "per_class_iou": scores["per_class_iou"],
            "per_class_acc": scores["per_class_acc"]}


def plan_prune_steps(compression, finetuning: FinetuneConfig | None, prune_steps: int) -> list[tuple[float, int]]:
    """The gradual schedule: per step, the fraction of the original MACs to reach and its fine-tuning epochs.

    Step ``i`` of ``n`` reaches ``target_macs ** (i / n)``, an equal share of the log-MACs, so
    every step removes the same fraction of what is left (the structured form of gradual
    pruning, Zhu and Gupta 2017); the epochs are split as evenly as possible, so the budget is
    the one-shot budget. Checked before any work: gradual pruning needs ``target_macs``
    (a channel ratio has no meaningful split) and at least one epoch per step.
    """
    if isinstance(prune_steps, bool) or not isinstance(prune_steps, int) or prune_steps < 1:
        raise ConfigError(f"--prune-steps {prune_steps!r} is not valid: use an integer >= 1")
    if prune_steps == 1:
        return [(compression.target_macs or 1.0, finetuning.epochs if finetuning is not None else 0)]
    if compression.target_macs is None:
        raise ConfigError(f"--prune-steps {prune_steps} needs --target-macs: each step reaches a share of the "
                          "MACs target (a --channel-ratio has no such split)")
    epochs = finetuning.epochs if finetuning is not None else 0
    if epochs < prune_steps:
        raise ConfigError(f"--prune-steps {prune_steps} needs at least one fine-tuning epoch per step, got "
                          f"--finetune-epochs {epochs}: use --finetune-epochs {prune_steps} or more")
    share, extra = divmod(epochs, prune_steps)
    return [(compression.target_macs ** ((i + 1) / prune_steps), share + (i < extra)) for i in range(prune_steps)]


def compress_and_finetune(model: nn.Module, compression, finetuning: FinetuneConfig | None, train_set, val_set, *,
                          size: tuple[int, int], calib=None, input_size: tuple[int, int] | None = None,
                          out_dir: str | Path | None = None, device: str | None = None, workers: int = 0,
                          progress: bool = False,
                          prune_steps: int = 1) -> tuple[Any, list[dict[str, Any]], dict[str, Any] | None]:
    """The recipe with a score after each step: ``compress_`` (``compression``), then :func:`finetune`.

    Returns the :class:`~segprune.compress.CompressResult`, the scored stages (``original``,
    ``compressed`` and, when ``finetuning`` has epochs, ``fine-tuned``; see :func:`score_stage`)
    and the fine-tuning summary. The teacher for distillation is a copy of ``model`` as given.
    ``segprune prune``, the demo and the benchmarks report compression this way.

    ``prune_steps`` > 1 prunes gradually (:func:`plan_prune_steps`): prune to each step's
    share of the MACs, fine-tune its share of the epochs (run folder ``out_dir/step<i>``,
    seed ``seed + i - 1``: the steps do not repeat one data order), repeat; the truncation is
    applied in the first step and the teacher is the model as given throughout. The stages in between are named
    ``step i/n compressed`` and ``step i/n fine-tuned``; the last two keep the one-shot
    names, so reports read alike. The result spans the whole run (MACs before the first step,
    after the last, channels from the original to the final width).
    """
    import copy
    from dataclasses import replace

    from segprune.compress import CompressConfig, check_compression, compress_
    from segprune.data import make_loader

    plan = plan_prune_steps(compression, finetuning, prune_steps)
    if len(plan) > 1:  # the final target is reached only at the end: a target that cannot be met fails now
        check_compression(model, compression, size)
    loader = make_loader(val_set, 4, shuffle=False, workers=workers)

    def stage(name: str) -> dict[str, Any]:
        return score_stage(name, model, size, loader, val_set.num_classes, input_size=input_size,
                           class_names=list(val_set.classes), progress=progress)

    stages = [stage("original")]
    teacher = copy.deepcopy(model).eval() if finetuning is not None and finetuning.distills else None
    results, summary = [], None
    for i, (target, epochs) in enumerate(plan):
        label = "" if i == len(plan) - 1 else f"step {i + 1}/{len(plan)} "
        step_config = compression if len(plan) == 1 else replace(compression, target_macs=target)
        if results:  # a later step: its target is relative to the model as it is now, its band kept
            relative = target * results[0].macs_before.total_macs / results[-1].macs_after.total_macs
            step_config = CompressConfig(target_macs=min(relative, 1.0), importance=compression.importance,
                                         scope=compression.scope, round_to=compression.round_to,
                                         protect=compression.protect)
        results.append(compress_(model, step_config, example=size, calib=calib))
        stages.append(stage(f"{label}compressed"))
        if finetuning is not None and epochs > 0:
            run_dir = out_dir if out_dir is None or len(plan) == 1 else Path(out_dir) / f"step{i + 1}"
            step_tuning = finetuning if len(plan) == 1 else replace(finetuning, epochs=epochs, seed=finetuning.seed + i)
            summary = finetune(model, train_set, val_set, step_tuning, run_dir, teacher=teacher, device=device,
                               progress=progress)
            stages.append(stage(f"{label}fine-tuned"))
    return _span(compression, results), stages, summary


def _span(compression, results: list) -> Any:
    """One CompressResult for a gradual run: from the model as given to the model at the end."""
    from dataclasses import replace

    first, final = results[0], results[-1]
    if len(results) == 1:
        return first
    pruning = final.pruning
    if pruning is not None:
        start = {name: before for r in reversed(results) if r.pruning is not None
                 for name, (before, _) in r.pruning.channels.items()}
        channels = {name: (start[name], after) for name, (_, after) in pruning.channels.items()}
        kept = [after / before for before, after in channels.values() if before]
        pruning = replace(pruning, macs_before=first.macs_before, channels=channels,
                          channel_ratio=1.0 - sum(kept) / len(kept) if kept else 0.0)
    return replace(final, config=compression, macs_before=first.macs_before, pruning=pruning)
