"""The fine-tuning objective: a weighted sum of CE, recall, self-regulation and distillation terms.

``Objective`` is the ``criterion`` that :func:`segprune.train.fit` calls with the training
module's raw output, and :func:`build_training_module` builds that module from the same term
weights, so the CLI's ``--loss ce=1,recall=0.5,sr=1,kd=0.5`` configures both sides at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from segprune.errors import ConfigError
from segprune.train.distill import DistillationKL, FeatureDistillation, TeacherWrapper
from segprune.train.losses import CrossEntropy, RecallCrossEntropy
from segprune.train.multi_exit import DEFAULT_EXITS, MultiExitWrapper, SRLoss

TERMS = ("ce", "recall", "sr", "kd", "feature_kd")


def _check_terms(terms: Mapping[str, float]) -> dict[str, float]:
    unknown = sorted(set(terms) - set(TERMS))
    if unknown:
        raise ConfigError(f"unknown loss terms {unknown}: choose from {', '.join(TERMS)}")
    weights = {k: float(terms.get(k, 0.0)) for k in TERMS}
    if any(w < 0 for w in weights.values()) or not any(weights.values()):
        raise ConfigError(f"loss weights must be >= 0 with at least one positive, got {dict(terms)}")
    return weights


class Objective(nn.Module):
    """``objective(outputs, labels) -> loss``: the weighted sum of the enabled terms.

    ``outputs`` is a logits tensor (plain model) or the dict of the training wrappers
    (``"logits"``, plus ``"exits"``/``"presence"`` from :class:`MultiExitWrapper` and
    ``"teacher"`` from :class:`TeacherWrapper`). ``ce`` and ``recall`` score the final logits,
    ``sr`` is :class:`SRLoss` (options in ``sr``; its warm-up counter advances once per call),
    ``kd`` is :class:`DistillationKL` at ``kd_temperature``, ``feature_kd``
    :class:`FeatureDistillation` of the decoder features. ``last_terms`` holds the last
    call's per-term values (unweighted; the sub-terms of ``sr`` as ``sr/seg`` ...), as floats, and
    ``total``. ``exits``/``exit_width`` configure the wrapper that :func:`build_training_module`
    adds when ``sr`` is on. ``state_dict()`` carries the SR step and recall EMA counts.
    """

    def __init__(self, terms: Mapping[str, float], num_classes: int, ignore_index: int = 255, *,
                 label_smoothing: float = 0.0, recall: Mapping[str, Any] | None = None,
                 sr: Mapping[str, Any] | None = None, kd_temperature: float = 4.0,
                 total_iters: int | None = None, exits: Sequence[str] = DEFAULT_EXITS,
                 exit_width: int = 64) -> None:
        super().__init__()
        self.weights = _check_terms(terms)
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.exits, self.exit_width = tuple(exits), exit_width
        self.ce = CrossEntropy(ignore_index, label_smoothing)
        self.recall = RecallCrossEntropy(num_classes, ignore_index, **(recall or {}))
        self.sr = SRLoss(ignore_index, total_iters=total_iters, **(sr or {}))
        self.kd = DistillationKL(kd_temperature, ignore_index)
        self.feature_kd = FeatureDistillation()
        self._last: dict[str, torch.Tensor] = {}

    @property
    def step(self) -> int:
        """Calls so far (the SR warm-up clock); set it when resuming without the state dict."""
        return self.sr.step

    @step.setter
    def step(self, value: int) -> None:
        self.sr.step = int(value)

    def set_total_iters(self, total_iters: int) -> None:
        """Tell the SR warm-up the schedule length once the loader is built."""
        self.sr.total_iters = total_iters

    @property
    def last_terms(self) -> dict[str, float]:
        return {k: float(v) for k, v in self._last.items()}

    def _need(self, outputs: dict[str, Any], key: str, term: str, fix: str) -> Any:
        if key not in outputs:
            raise ConfigError(f"the {term!r} loss term needs {fix}: build the training module "
                              "with segprune.train.build_training_module")
        return outputs[key]

    def forward(self, outputs: torch.Tensor | Mapping[str, Any], labels: torch.Tensor) -> torch.Tensor:
        out = dict(outputs) if isinstance(outputs, Mapping) else {"logits": outputs}
        logits, w = out["logits"], self.weights
        terms: dict[str, torch.Tensor] = {}
        if w["ce"]:
            terms["ce"] = self.ce(logits, labels)
        if w["recall"]:
            terms["recall"] = self.recall(logits, labels)
        if w["sr"]:
            self._need(out, "exits", "sr", "a MultiExitWrapper's exits")
            terms["sr"] = self.sr(out, labels)
            self.sr.advance()
        if w["kd"]:
            terms["kd"] = self.kd(logits, self._need(out, "teacher", "kd", "teacher logits"), labels)
        if w["feature_kd"]:
            terms["feature_kd"] = self.feature_kd(*self._need(out, "features", "feature_kd",
                                                              "decoder features from a teacher"))
        total = sum(w[k] * v for k, v in terms.items())
        self._last = {k: v.detach() for k, v in terms.items()}
        if w["sr"]:
            self._last.update({f"sr/{k}": v for k, v in self.sr.last_terms.items()})
        self._last["total"] = total.detach()
        return total


def build_training_module(model: nn.Module, objective_cfg: Objective | Mapping[str, float],
                          teacher: nn.Module | None = None) -> nn.Module:
    """Wrap ``model`` for the objective: exits when ``sr`` > 0, a teacher when ``kd`` or ``feature_kd`` > 0.

    Returns ``model`` itself when no term needs a wrapper. The deployable network stays
    reachable as ``module.model`` for a wrapper (save that, never the wrapper). A ``teacher``
    given while both are 0 is not used.
    """
    if isinstance(objective_cfg, Objective):
        weights, exits, width = objective_cfg.weights, objective_cfg.exits, objective_cfg.exit_width
        num_classes: int | None = objective_cfg.num_classes
    else:
        weights, exits, width, num_classes = _check_terms(objective_cfg), DEFAULT_EXITS, 64, None
    distills = weights["kd"] or weights["feature_kd"]
    if distills and teacher is None:
        raise ConfigError("the 'kd' and 'feature_kd' loss terms need a teacher: pass the uncompressed checkpoint "
                          "as teacher")
    classes = {getattr(getattr(m, "config", None), "num_classes", None) for m in (model, teacher)} - {None}
    if distills and len(classes) > 1:
        raise ConfigError(f"teacher and student predict different numbers of classes {sorted(classes)}: "
                          "distill from a model trained on the same classes")
    module = model
    if weights["sr"]:
        module = MultiExitWrapper(module, exits, num_classes=num_classes, width=width)
    if distills:
        module = TeacherWrapper(module, teacher, features=bool(weights["feature_kd"]))
    return module
