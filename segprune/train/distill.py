"""Knowledge distillation from the uncompressed model into the compressed one (DESIGN decision 4).

Fine-tuning a pruned or truncated network against its own uncompressed parent recovers
accuracy the labels alone do not: the teacher's soft predictions carry the class
similarities the compression destroyed. The teacher is frozen and runs without gradient.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from segprune.errors import ConfigError
from segprune.train.losses import masked_mean, pixel_kl, resize_like


class DistillationKL(nn.Module):
    """KL(softmax(teacher/T) || softmax(student/T)) * T^2, averaged over valid pixels.

    ``temperature=4.0`` is our default (a common choice for dense distillation since Hinton
    et al. 2015; not from RESEARCH). Student logits smaller than the labels are upsampled to
    the labels first (as :class:`~segprune.train.losses.CrossEntropy` does) and the teacher's
    logits are resized to the student's; pixels whose label is ``ignore_index`` do not count.
    """

    def __init__(self, temperature: float = 4.0, ignore_index: int = 255) -> None:
        super().__init__()
        if temperature <= 0:
            raise ConfigError(f"distillation temperature must be > 0, got {temperature}")
        self.temperature, self.ignore_index = temperature, ignore_index

    def forward(self, student: torch.Tensor, teacher: torch.Tensor,
                labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is not None:
            student = resize_like(student, labels.shape[-2:])
        if teacher.shape[1] != student.shape[1]:
            raise ConfigError(f"the teacher predicts {teacher.shape[1]} classes and the student "
                              f"{student.shape[1]}: distill from a model trained on the same classes")
        teacher = resize_like(teacher.detach(), student.shape[-2:])
        kl = pixel_kl(student, teacher, self.temperature)
        valid = labels != self.ignore_index if labels is not None else torch.ones_like(kl, dtype=torch.bool)
        return masked_mean(kl, valid)


class FeatureDistillation(nn.Module):
    """Squared error between the student's decoder features, mapped by a 1x1 adapter to the
    teacher's width, and the teacher's, relative to the teacher's mean square.

    Pruning narrows the student's decoder, so a training-only 1x1 conv (FitNets, Romero et
    al. 2015) maps its channels onto the teacher's. The teacher's features are area-pooled
    to the student's grid: a truncated decoder runs on a coarser grid, and pooling keeps the
    band that grid can hold, the band the student is asked to reproduce. Dividing by the
    teacher's mean square (detached) makes the term about 1 for an untrained adapter and
    independent of the features' scale, so its weight means the same on any model.
    """

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        teacher = teacher.detach().float()
        if teacher.shape[-2:] != student.shape[-2:]:
            teacher = torch.nn.functional.adaptive_avg_pool2d(teacher, student.shape[-2:])
        return (student.float() - teacher).pow(2).mean() / teacher.pow(2).mean().clamp(min=1e-12)


class TeacherWrapper(nn.Module):
    """Runs a frozen teacher beside the student in training; in eval it is the student alone.

    The teacher is kept in a plain tuple (``self._teacher``), not as a registered submodule,
    so ``parameters()`` and ``state_dict()`` (what the optimiser and the resumable training
    state see) exclude it; ``_apply`` is overridden so ``.to(device)``/``.half()`` still move
    it, and ``train()`` keeps it in eval mode. Its parameters are frozen in place
    (``requires_grad_(False)``).

    Training output: the student's dict (from a :class:`MultiExitWrapper`) or
    ``{"logits": student_logits}``, plus ``"teacher"``: the teacher's logits; with
    ``features=True`` also ``"features"``: (the student's decoder features through the
    1x1 ``adapter``, the teacher's), captured by hooks on the family adapter's last
    ``feature_layers`` entry for the length of one forward. The adapter is a training-only
    parameter of this wrapper (optimised, in the training state, never in the deployed model).
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, features: bool = False) -> None:
        super().__init__()
        if teacher is student:
            raise ConfigError("the distillation teacher must be a separate model from the student")
        self.student = student
        teacher.eval().requires_grad_(False)
        self._teacher = (teacher,)
        self.adapter = None
        self._features: tuple[nn.Module, ...] = ()  # the student's and the teacher's feature layers
        if features:
            self._features = (_feature_layer(self.model), _feature_layer(teacher))
            widths = [_feature_width(m, layer) for m, layer in zip((self.model, teacher), self._features, strict=True)]
            self.adapter = nn.Conv2d(widths[0], widths[1], 1, bias=False).to(
                next(self.model.parameters()).device)

    @property
    def teacher(self) -> nn.Module:
        return self._teacher[0]

    @property
    def model(self) -> nn.Module:
        """The deployable network: the student, without any training wrapper."""
        return getattr(self.student, "model", self.student)

    def _apply(self, fn: Callable, recurse: bool = True) -> TeacherWrapper:
        super()._apply(fn, recurse)
        self.teacher._apply(fn, recurse)
        return self

    def train(self, mode: bool = True) -> TeacherWrapper:
        super().train(mode)
        self.teacher.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, Any]:
        if not self.training:
            return self.student(x)
        student_layer, teacher_layer = self._features or (None, None)
        with _capture(student_layer) as student_features:
            out = self.student(x)
        with torch.no_grad(), _capture(teacher_layer) as teacher_features:
            teacher_logits = self.teacher(x)
        out = dict(out) if isinstance(out, dict) else {"logits": out}
        out["teacher"] = teacher_logits
        if self.adapter is not None:
            out["features"] = (self.adapter(student_features[0]), teacher_features[0])
        return out


def _feature_layer(model: nn.Module) -> nn.Module:
    """The module whose output is ``model``'s decoder features (its family adapter's last ``feature_layers``)."""
    from segprune.models.adapters import adapter_for

    adapter = adapter_for(model)
    layers = adapter.features_of(model)
    if not layers or layers[-1].endswith(":in"):
        raise ConfigError(f"{adapter.family} models name no decoder feature layer: feature "
                          "distillation needs one (ModelAdapter.feature_layers)")
    return model.get_submodule(layers[-1])


@contextmanager
def _capture(layer: nn.Module | None) -> Iterator[list[torch.Tensor]]:
    """The outputs of ``layer`` in the forward run inside the block (nothing hooked for None)."""
    captured: list[torch.Tensor] = []
    if layer is None:
        yield captured
        return
    handle = layer.register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        yield captured
    finally:
        handle.remove()


def _feature_width(model: nn.Module, layer: nn.Module) -> int:
    """Channels of ``layer``'s output in ``model``, from one small forward in eval mode (no state changes)."""
    was_training = model.training
    param = next(model.parameters())
    try:
        with torch.no_grad(), _capture(layer) as features:
            model.eval()(torch.zeros(1, 3, 64, 64, device=param.device, dtype=param.dtype))
    finally:
        model.train(was_training)
    return int(features[0].shape[1])
