"""Distillation, the combined objective and the training module built from it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from segprune.errors import ConfigError
from segprune.train import (
    DistillationKL,
    FeatureDistillation,
    MultiExitWrapper,
    Objective,
    TeacherWrapper,
    build_training_module,
)
from tests.helpers import tiny_model

K = 3


def _data(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, K, (2, 32, 48), generator=g)
    labels[:, :, :6] = 255
    return torch.randn(2, 3, 32, 48, generator=g), labels


def _models():
    torch.manual_seed(0)
    return tiny_model(K), tiny_model(K, decoder_channels=16)


def test_distillation_kl_is_zero_on_agreement_and_ignores_void_pixels() -> None:
    _, labels = _data()
    student, teacher = torch.randn(2, K, 32, 48), torch.randn(2, K, 32, 48)
    kd = DistillationKL(temperature=2.0)
    assert kd(student, student.clone(), labels).item() == pytest.approx(0.0, abs=1e-6)
    moved = teacher.clone()
    moved[..., :6] = 100.0
    assert kd(student, teacher, labels).item() == pytest.approx(kd(student, moved, labels).item())
    t = 2.0
    ref = F.kl_div(F.log_softmax(student / t, 1), F.log_softmax(teacher / t, 1), log_target=True,
                   reduction="none").sum(1)[..., 6:].mean() * t**2
    assert kd(student, teacher, labels).item() == pytest.approx(ref.item(), rel=1e-5)
    small = teacher[..., ::2, ::2]  # teacher predicting on a coarser grid is resized to the student
    up = F.interpolate(small, size=(32, 48), mode="bilinear", align_corners=False)
    assert kd(student, small, labels).item() == pytest.approx(kd(student, up, labels).item())
    with pytest.raises(ConfigError):
        DistillationKL(temperature=0)


def test_teacher_wrapper_hides_the_teacher_but_moves_it() -> None:
    student, teacher = _models()
    wrapper = TeacherWrapper(student, teacher)
    teacher_ids = {id(p) for p in teacher.parameters()}
    assert not teacher_ids & {id(p) for p in wrapper.parameters()}
    assert set(wrapper.state_dict()) == {f"student.{k}" for k in student.state_dict()}
    assert wrapper.model is student
    wrapper.train()
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    x, _ = _data()
    out = wrapper(x)
    assert set(out) == {"logits", "teacher"} and not out["teacher"].requires_grad
    wrapper.eval()
    assert torch.equal(wrapper(x), student(x))
    wrapper.to(torch.float64)
    assert next(teacher.parameters()).dtype == torch.float64
    wrapper.to("meta")
    assert next(teacher.parameters()).device.type == "meta"


def test_feature_distillation_is_relative_and_pools_the_teacher_to_the_student_grid() -> None:
    g = torch.Generator().manual_seed(0)
    teacher, student = torch.randn(2, 4, 16, 24, generator=g), torch.randn(2, 4, 16, 24, generator=g)
    fd = FeatureDistillation()
    assert fd(teacher.clone(), teacher).item() == pytest.approx(0.0, abs=1e-7)
    assert fd(torch.zeros_like(teacher), teacher).item() == pytest.approx(1.0)  # about 1 for no information
    assert fd(10 * student, 10 * teacher).item() == pytest.approx(fd(student, teacher).item(), rel=1e-5)
    coarse = student[..., ::2, ::2]  # a truncated decoder's grid: the teacher is area-pooled to it
    assert fd(coarse, teacher).item() == pytest.approx(fd(coarse, F.avg_pool2d(teacher, 2)).item(), rel=1e-6)


def test_feature_distillation_maps_a_narrower_student_onto_the_teacher() -> None:
    """A pruned student (8 decoder channels) against its teacher (16): a training-only 1x1 adapter maps them."""
    student, teacher = _models()
    wrapper = TeacherWrapper(student, teacher, features=True).train()
    assert wrapper.adapter.weight.shape == (16, 8, 1, 1)
    assert any(p is wrapper.adapter.weight for p in wrapper.parameters())
    assert not any(k.startswith("adapter") for k in wrapper.model.state_dict())  # the deployed model lacks it
    out = wrapper(_data()[0])
    mapped, target = out["features"]
    assert mapped.shape[1] == target.shape[1] == 16 and mapped.requires_grad and not target.requires_grad
    assert not student.decoder.fuse[1]._forward_hooks and not teacher.decoder.fuse[1]._forward_hooks
    wrapper.eval()
    x = _data()[0]
    assert torch.equal(wrapper(x), student(x))
    with pytest.raises(ConfigError, match="'feature_kd' loss term needs decoder features"):
        Objective({"feature_kd": 1.0}, K)(student.train()(x), _data()[1])


def test_teacher_wrapper_merges_with_the_exit_outputs() -> None:
    student, teacher = _models()
    wrapper = TeacherWrapper(MultiExitWrapper(student, width=8), teacher).train()
    out = wrapper(_data()[0])
    assert set(out) == {"logits", "exits", "presence", "teacher"}
    assert wrapper.model is student


def test_one_sgd_step_with_every_term_on() -> None:
    student, teacher = _models()
    objective = Objective({"ce": 1.0, "recall": 0.5, "sr": 1.0, "kd": 0.5, "feature_kd": 1.0}, K,
                          sr=dict(warmup_iters=0), exit_width=8)
    module = build_training_module(student, objective, teacher=teacher).train()
    assert isinstance(module, TeacherWrapper) and isinstance(module.student, MultiExitWrapper)
    opt = torch.optim.SGD(module.parameters(), lr=0.01)
    x, labels = _data()
    loss = objective(module(x), labels)
    assert torch.isfinite(loss)
    loss.backward()
    assert student.decoder.classifier.weight.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.student.exit_parameters())
    assert module.adapter.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())
    terms = objective.last_terms
    assert {"ce", "recall", "sr", "kd", "feature_kd", "total", "sr/seg", "sr/cls", "sr/srl", "sr/srf"} <= set(terms)
    assert all(isinstance(v, float) for v in terms.values())
    before = [p.detach().clone() for p in teacher.parameters()]
    opt.step()
    opt.zero_grad()
    assert torch.isfinite(objective(module(x), labels))
    assert all(torch.equal(a, b) for a, b in zip(before, teacher.parameters(), strict=True))


def test_plain_model_outputs_work_with_ce_and_recall() -> None:
    student, _ = _models()
    assert build_training_module(student, {"ce": 1.0, "recall": 1.0}) is student
    x, labels = _data()
    objective = Objective({"ce": 1.0, "recall": 1.0}, K)
    loss = objective(student.train()(x), labels)
    assert loss.item() == pytest.approx(objective.last_terms["ce"] + objective.last_terms["recall"], rel=1e-5)
    with pytest.raises(ConfigError, match="'sr' loss term"):
        Objective({"sr": 1.0}, K)(student(x), labels)


@pytest.mark.parametrize("terms", [{"focal": 1.0}, {"ce": -1.0}, {"ce": 0.0}])
def test_bad_terms_are_config_errors(terms) -> None:
    with pytest.raises(ConfigError):
        Objective(terms, K)


def test_kd_needs_a_teacher_with_the_same_classes() -> None:
    student, _ = _models()
    for term in ("kd", "feature_kd"):
        with pytest.raises(ConfigError, match="need a teacher"):
            build_training_module(student, {"ce": 1.0, term: 1.0})
    with pytest.raises(ConfigError, match="different numbers of classes"):
        build_training_module(student, {"kd": 1.0}, teacher=tiny_model(K + 1))
