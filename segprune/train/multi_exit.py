"""Training-only exits on backbone stages, and the self-regulation losses that use them.

Self-Regulation (Zhang et al., ICCV 2021) adds a segmentation exit and a class-presence head
on shallow backbone stages, trains them with the ground truth (multi-exit architecture, MEA),
and lets the exits regulate each other: the shallowest exit's prediction teaches the deep
ones (SR-F, shallow teacher -> deep students) and the final output's class presence teaches
the shallow ones (SR-L, deep teacher -> shallow students) [READ, RESEARCH 4.1]. The exits
exist only in training: in eval mode the wrapper is exactly the wrapped model, same FLOPs.

Output contract of :class:`MultiExitWrapper` in training mode::

    {"logits":   (B, K, H, W) final logits of the wrapped model,
     "exits":    [(B, K, H, W) per exit, in ``exits`` order, upsampled to the input size],
     "presence": [(B, K) sigmoid class-presence probabilities per exit ..., final last]}
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import chain
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from segprune.errors import ConfigError
from segprune.metrics import class_map
from segprune.models.blocks import ConvBNReLU
from segprune.train.losses import CrossEntropy, masked_mean, pixel_kl, resize_like

DEFAULT_EXITS = ("stem", "layer1", "layer2", "layer3")
SRL_MODES = ("bce", "kl")
SRF_MODES = ("hard_ce", "soft_kl", "mse")
DEFAULT_WARMUP_ITERS = 10_000  # README of the official demo, for its 40k-iteration schedule [CODE, RESEARCH 4.2]


class ClassLayer(nn.Sequential):
    """An exit: two 3x3 ConvBNReLU at ``width`` then a 1x1 conv to K classes [CODE, RESEARCH 4.2].

    The demo uses width 256 on a ResNet-101; segprune defaults to 64 because the exits only
    shape training and a pruned student's stages are narrow: the exit should not dwarf them.
    """

    def __init__(self, in_ch: int, num_classes: int, width: int = 64) -> None:
        super().__init__(ConvBNReLU(in_ch, width, 3), ConvBNReLU(width, width, 3),
                         nn.Conv2d(width, num_classes, 1))


class PresenceHead(nn.Module):
    """Image-level class presence: global average pool of a K-channel map, Linear K->K, sigmoid [CODE]."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(num_classes, num_classes)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc(logits.mean(dim=(2, 3))))


class MultiExitWrapper(nn.Module):
    """Adds training-only exits (``ClassLayer`` + presence head) on named backbone stages.

    A forward hook on ``model.backbone`` captures its output dict during the wrapper's own
    training forward only; the hook is removed right after, so the wrapped model carries no
    hook (copies, exports and direct calls see the plain model). Save ``wrapper.model`` to
    deploy: the exits are never part of a deployed checkpoint.
    """

    def __init__(self, model: nn.Module, exits: Sequence[str] = DEFAULT_EXITS,
                 num_classes: int | None = None, width: int = 64) -> None:
        super().__init__()
        backbone = getattr(model, "backbone", None)
        channels = getattr(backbone, "channels", None)
        if not isinstance(channels, dict):
            raise ConfigError(f"{type(model).__name__} has no backbone with stage channels: "
                              "multi-exit training needs a segprune SegmentationModel")
        unknown = [e for e in exits if e not in channels]
        if not exits or unknown:
            raise ConfigError(f"exits {list(exits)} must be a non-empty subset of {list(channels)}")
        if num_classes is None:
            num_classes = getattr(getattr(model, "config", None), "num_classes", None)
        if not num_classes or num_classes < 1 or width < 1:
            raise ConfigError(f"multi-exit needs num_classes >= 1 and width >= 1, got {num_classes} and {width}")
        self.model = model
        self.exit_names = tuple(exits)
        self.num_classes = num_classes
        self.heads = nn.ModuleDict({e: ClassLayer(channels[e], num_classes, width) for e in exits})
        self.presence = nn.ModuleDict({e: PresenceHead(num_classes) for e in (*exits, "final")})

    def exit_parameters(self) -> Iterator[nn.Parameter]:
        """The parameters the wrapper adds (exit heads and presence heads), not the model's."""
        return chain(self.heads.parameters(), self.presence.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, Any]:
        if not self.training:
            return self.model(x)
        captured: dict[str, torch.Tensor] = {}

        def capture(_module: nn.Module, _inputs: Any, output: dict[str, torch.Tensor]) -> None:
            captured.update((e, output[e]) for e in self.exit_names)

        handle = self.model.backbone.register_forward_hook(capture)
        try:
            logits = self.model(x)
        finally:
            handle.remove()
        size = x.shape[-2:]
        exits = [F.interpolate(self.heads[e](captured[e]), size=size, mode="bilinear", align_corners=False)
                 for e in self.exit_names]
        presence = [self.presence[e](m) for e, m in zip(self.exit_names, exits, strict=True)]
        presence.append(self.presence["final"](logits))
        return {"logits": logits, "exits": exits, "presence": presence}


def _bce(p: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    # binary_cross_entropy is banned under CUDA autocast; probabilities are computed in fp32 here
    with torch.autocast(p.device.type, enabled=False):
        return F.binary_cross_entropy(p.float(), target.float())


def presence_targets(labels: torch.Tensor, num_classes: int, ignore_index: int) -> torch.Tensor:
    """Multi-hot (B, K) of the classes present among each image's valid pixels."""
    b = labels.shape[0]
    flat = labels.reshape(b, -1)
    valid = (flat != ignore_index) & (flat >= 0) & (flat < num_classes)
    rows = torch.arange(b, device=labels.device)[:, None].expand_as(flat)
    idx = (rows * num_classes + flat.clamp(0, num_classes - 1))[valid]
    return (torch.bincount(idx, minlength=b * num_classes) > 0).float().view(b, num_classes)


class SRLoss(nn.Module):
    """Multi-exit and self-regulation losses over a :class:`MultiExitWrapper` training output.

    ``lambda_seg * MEA-seg + lambda_cls * MEA-cls + gate * (lambda_srl * SR-L + lambda_srf * SR-F)``:

    * MEA-seg: sum over the exits of CE(exit, labels). The final output's CE is left to the
      objective's ``ce``/``recall`` term; the demo's total (0.8 on all five CEs) is
      ``Objective({"ce": 0.8, "sr": 1.0}, ...)`` [CODE, RESEARCH 4.2].
    * MEA-cls: sum over exits and final of BCE(presence, multi-hot of the valid labels).
    * SR-L (deep teacher -> shallow students): sum over exits of BCE(presence_i,
      presence_final.detach()) [CODE]; ``srl="kl"`` is a per-class Bernoulli KL at
      ``temperature`` (times T^2), a variant pending the paper [INFERRED, RESEARCH 4.3/4.4].
    * SR-F (shallow teacher -> deep students): the first exit (``stem`` by default) teaches
      the other exits and the final output with CE on its detached argmax [CODE];
      ``soft_kl`` (KL at ``temperature``) and ``mse`` (of softmax probabilities) are variants
      [INFERRED]. ``mask_ignore=True`` (our choice; the demo has no ignore label) also ignores
      the pseudo-labels where the ground truth is ignore.

    The lambdas 0.8 / 0.2 / 1.0 / 1.0 are the demo's [CODE, RESEARCH 4.2]. The gate keeps the
    SR terms at zero for the first ``warmup_iters`` calls: the README trains with MEA only for
    10k of 40k iterations [CODE], so by default the warm-up is ``warmup_fraction=0.25`` of
    ``total_iters`` when that is known, else 10k. ``step`` counts calls; the objective
    advances it (``advance()``), and it travels in ``state_dict()`` for an exact resume.
    """

    def __init__(self, ignore_index: int = 255, *, lambda_seg: float = 0.8, lambda_cls: float = 0.2,
                 lambda_srl: float = 1.0, lambda_srf: float = 1.0, srl: str = "bce", srf: str = "hard_ce",
                 temperature: float = 1.0, mask_ignore: bool = True, warmup_iters: int | None = None,
                 warmup_fraction: float = 0.25, total_iters: int | None = None) -> None:
        super().__init__()
        self.lambdas = {"seg": lambda_seg, "cls": lambda_cls, "srl": lambda_srl, "srf": lambda_srf}
        if any(v < 0 for v in self.lambdas.values()):
            raise ConfigError(f"self-regulation weights must be >= 0, got {self.lambdas}")
        if srl not in SRL_MODES or srf not in SRF_MODES:
            raise ConfigError(f"srl must be one of {SRL_MODES} and srf one of {SRF_MODES}, got {srl!r}, {srf!r}")
        if temperature <= 0 or not 0 <= warmup_fraction <= 1 or (warmup_iters or 0) < 0:
            raise ConfigError("need temperature > 0, 0 <= warmup_fraction <= 1 and warmup_iters >= 0")
        self.ignore_index, self.srl, self.srf, self.temperature = ignore_index, srl, srf, temperature
        self.mask_ignore, self.warmup_fraction, self._warmup = mask_ignore, warmup_fraction, warmup_iters
        self.total_iters = total_iters
        self.ce = CrossEntropy(ignore_index)
        self.step = 0
        self.last_terms: dict[str, torch.Tensor] = {}

    @property
    def warmup_iters(self) -> int:
        if self._warmup is not None:
            return self._warmup
        if self.total_iters:
            return round(self.warmup_fraction * self.total_iters)
        return DEFAULT_WARMUP_ITERS

    @property
    def active(self) -> bool:
        """Whether the SR terms are on for the current call."""
        return self.step >= self.warmup_iters

    def advance(self, n: int = 1) -> None:
        self.step += n

    def get_extra_state(self) -> dict[str, int]:
        return {"step": self.step}

    def set_extra_state(self, state: dict[str, int]) -> None:
        self.step = int(state["step"])

    def forward(self, outputs: dict[str, Any], labels: torch.Tensor) -> torch.Tensor:
        exits, presence, final = outputs["exits"], outputs["presence"], outputs["logits"]
        lam, terms = self.lambdas, {}
        if lam["seg"]:
            terms["seg"] = sum(self.ce(e, labels) for e in exits)
        if lam["cls"]:
            target = presence_targets(labels, presence[-1].shape[1], self.ignore_index)
            terms["cls"] = sum(_bce(p, target) for p in presence)
        if self.active and lam["srl"]:
            teacher = presence[-1].detach()
            terms["srl"] = sum(self._srl(p, teacher) for p in presence[:-1])
        if self.active and lam["srf"]:
            teacher = resize_like(exits[0].detach(), labels.shape[-2:])
            terms["srf"] = sum(self._srf(resize_like(s, labels.shape[-2:]), teacher, labels)
                               for s in [*exits[1:], final])
        self.last_terms = {k: v.detach() for k, v in terms.items()}
        total = final.sum() * 0.0
        for k, v in terms.items():
            total = total + lam[k] * v
        return total

    def _srl(self, p: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        if self.srl == "bce":
            return _bce(p, teacher)
        t = self.temperature
        with torch.autocast(p.device.type, enabled=False):
            zs, zt = torch.logit(p.float(), eps=1e-6) / t, torch.logit(teacher.float(), eps=1e-6) / t
            pt = torch.sigmoid(zt)
            kl = pt * (F.logsigmoid(zt) - F.logsigmoid(zs)) + (1 - pt) * (F.logsigmoid(-zt) - F.logsigmoid(-zs))
            return kl.mean() * t**2

    def _srf(self, student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        valid = labels != self.ignore_index if self.mask_ignore else torch.ones_like(labels, dtype=torch.bool)
        if self.srf == "hard_ce":
            pseudo = torch.where(valid, class_map(teacher), self.ignore_index)
            return self.ce(student, pseudo)
        if self.srf == "soft_kl":
            return masked_mean(pixel_kl(student, teacher, self.temperature), valid)
        diff = (F.softmax(student.float(), 1) - F.softmax(teacher.float(), 1)).pow(2).mean(1)
        return masked_mean(diff, valid)
