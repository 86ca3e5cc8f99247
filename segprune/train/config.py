"""Training options, validated once so that a bad value fails before any work starts."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from segprune.errors import ConfigError

OPTIMIZERS = ("sgd", "adamw")


@dataclass
class TrainConfig:
    """Everything ``fit`` needs besides the model and the data.

    ``crop_size`` is the training crop after random scaling around ``base_size`` (the
    image is first resized to ``base_size`` when given: that is how a reduced training
    resolution is chosen). ``eval_size`` resizes evaluation inputs; predictions are
    upsampled back and scored at the label's own resolution, so mIoU stays comparable.
    """

    epochs: int = 10
    batch_size: int = 8
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_iters: int = 0
    poly_power: float = 0.9
    crop_size: tuple[int, int] = (96, 128)
    base_size: tuple[int, int] | None = None
    scale_range: tuple[float, float] = (0.5, 2.0)
    eval_size: tuple[int, int] | None = None
    eval_every: int = 1
    amp: bool = True
    seed: int = 0
    workers: int = 0
    grad_clip: float | None = None
    extra: dict = field(default_factory=dict)

    def validate(self) -> TrainConfig:
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer {self.optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
        for name in ("epochs", "batch_size", "eval_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("lr", "momentum", "weight_decay", "poly_power", "grad_clip"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value)):
                raise ConfigError(f"--{name.replace('_', '-')} {value!r} is not a finite number")
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in self.scale_range):
            raise ConfigError(f"scale range {self.scale_range} must be finite numbers")
        if self.lr <= 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if self.weight_decay < 0 or self.momentum < 0 or self.poly_power <= 0:
            raise ConfigError("weight decay and momentum must be >= 0 and the poly power > 0, got "
                              f"{self.weight_decay}, {self.momentum} and {self.poly_power}")
        if min(self.crop_size) < 8:
            raise ConfigError(f"crop size {self.crop_size} is too small: use at least 8x8")
        lo, hi = self.scale_range
        if not 0 < lo <= hi:
            raise ConfigError(f"scale range {self.scale_range} must satisfy 0 < low <= high")
        if self.warmup_iters < 0:
            raise ConfigError("warmup_iters must not be negative")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown training options {unknown}; valid ones are {sorted(known)}")
        data = dict(data)
        for key in ("crop_size", "base_size", "scale_range", "eval_size"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        return cls(**data).validate()
