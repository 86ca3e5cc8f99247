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
    ``kd > 0`` needs a ``teacher``; ``sr > 0`` needs a segprune model (its exits hook the
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
    seed: int = 0
    workers: int = 0

    def __post_init__(self) -> None:
        for name in ("lr", "ce", "recall", "sr", "kd", "kd_temperature"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"--{name.replace('_', '-')} {value!r} is not valid: use a finite number >= 0")
        if self.lr <= 0 or self.kd_temperature <= 0:
            raise ConfigError(f"--lr and --kd-temperature must be positive, got {self.lr} and {self.kd_temperature}")

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

    if config.kd > 0 and teacher is None:
        raise ConfigError("distillation (--kd > 0) needs the uncompressed model as teacher")
    cfg = config.train_config()
    train_set.transform = TrainTransform(cfg.crop_size, scale_range=cfg.scale_range, base_size=config.input_size)
    objective = Objective({"ce": config.ce, "recall": config.recall, "sr": config.sr, "kd": config.kd},
                          num_classes=val_set.num_classes, ignore_index=val_set.ignore_index,
                          kd_temperature=config.kd_temperature)
    seed_everything(config.seed)
    module = build_training_module(model, objective, teacher=teacher if config.kd > 0 else None)
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


def compress_and_finetune(model: nn.Module, compression, finetuning: FinetuneConfig | None, train_set, val_set, *,
                          size: tuple[int, int], calib=None, input_size: tuple[int, int] | None = None,
                          out_dir: str | Path | None = None, device: str | None = None, workers: int = 0,
                          progress: bool = False) -> tuple[Any, list[dict[str, Any]], dict[str, Any] | None]:
    """The recipe with a score after each step: ``compress_`` (``compression``), then :func:`finetune`.

    Returns the :class:`~segprune.compress.CompressResult`, the scored stages (``original``,
    ``compressed`` and, when ``finetuning`` has epochs, ``fine-tuned``; see :func:`score_stage`)
    and the fine-tuning summary. The teacher for distillation is a copy of ``model`` as given.
    ``segprune prune``, the demo and the benchmarks report compression this way.
    """
    import copy

    from segprune.compress import compress_
    from segprune.data import make_loader

    loader = make_loader(val_set, 4, shuffle=False, workers=workers)

    def stage(name: str) -> dict[str, Any]:
        return score_stage(name, model, size, loader, val_set.num_classes, input_size=input_size,
                           class_names=list(val_set.classes), progress=progress)

    stages = [stage("original")]
    teacher = copy.deepcopy(model).eval() if finetuning is not None and finetuning.kd > 0 else None
    result = compress_(model, compression, example=size, calib=calib)
    stages.append(stage("compressed"))
    summary = None
    if finetuning is not None and finetuning.epochs > 0:
        summary = finetune(model, train_set, val_set, finetuning, out_dir, teacher=teacher, device=device,
                           progress=progress)
        stages.append(stage("fine-tuned"))
    return result, stages, summary
