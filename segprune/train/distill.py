"""Knowledge distillation from the uncompressed model into the compressed one (DESIGN decision 4).

Fine-tuning a pruned or truncated network against its own uncompressed parent recovers
accuracy the labels alone do not: the teacher's soft predictions carry the class
similarities the compression destroyed. The teacher is frozen and runs without gradient.
"""

from __future__ import annotations

from collections.abc import Callable
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


class TeacherWrapper(nn.Module):
    """Runs a frozen teacher beside the student in training; in eval it is the student alone.

    The teacher is kept in a plain tuple (``self._teacher``), not as a registered submodule,
    so ``parameters()`` and ``state_dict()`` (what the optimiser and the resumable training
    state see) exclude it; ``_apply`` is overridden so ``.to(device)``/``.half()`` still move
    it, and ``train()`` keeps it in eval mode. Its parameters are frozen in place
    (``requires_grad_(False)``).

    Training output: the student's dict (from a :class:`MultiExitWrapper`) or
    ``{"logits": student_logits}``, plus ``"teacher"``: the teacher's logits.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module) -> None:
        super().__init__()
        if teacher is student:
            raise ConfigError("the distillation teacher must be a separate model from the student")
        self.student = student
        teacher.eval().requires_grad_(False)
        self._teacher = (teacher,)

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
        out = self.student(x)
        if not self.training:
            return out
        with torch.no_grad():
            teacher_logits = self.teacher(x)
        out = dict(out) if isinstance(out, dict) else {"logits": out}
        out["teacher"] = teacher_logits
        return out
