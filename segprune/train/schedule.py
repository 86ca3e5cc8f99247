"""Optimiser and the poly learning-rate schedule with linear warm-up used by DeepLab."""

from __future__ import annotations

import torch
from torch import nn

from segprune.train.config import TrainConfig


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on BN/bias parameters: decaying them only fights normalisation."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=False)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def poly_warmup(total_iters: int, warmup_iters: int = 0, power: float = 0.9):
    """Multiplier for ``LambdaLR``: linear ramp to 1 over ``warmup_iters``, then ``(1 - t)^power``."""
    total = max(total_iters, 1)

    def factor(it: int) -> float:
        if warmup_iters and it < warmup_iters:
            return (it + 1) / warmup_iters
        progress = min(it, total - 1) / total
        return (1.0 - progress) ** power

    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_iters: int):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, poly_warmup(total_iters, cfg.warmup_iters, cfg.poly_power))
