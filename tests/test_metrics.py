"""The confusion-matrix metrics agree with torchmetrics and handle ignore and absent classes."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from segprune.errors import DataError
from segprune.metrics import ConfusionMatrix, class_map

torchmetrics = pytest.importorskip("torchmetrics")


@settings(max_examples=25, deadline=None)
@given(k=st.integers(2, 12), h=st.integers(1, 17), w=st.integers(1, 17), b=st.integers(1, 3),
       seed=st.integers(0, 2**16))
def test_matches_torchmetrics_on_random_maps(k: int, h: int, w: int, b: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, k, (b, h, w), generator=g)
    target[torch.rand(b, h, w, generator=g) < 0.2] = 255
    pred = torch.randint(0, k, (b, h, w), generator=g)
    cm = ConfusionMatrix(k)
    cm.update(pred, target)
    m = cm.compute()

    ref_cm = torchmetrics.classification.MulticlassConfusionMatrix(k, ignore_index=255)(pred, target)
    assert torch.equal(cm.matrix, ref_cm)
    if m.pixels == 0:
        assert math.isnan(m.miou) and math.isnan(m.macc)
        return
    ref_iou = torchmetrics.classification.MulticlassJaccardIndex(k, average=None, ignore_index=255)(pred, target)
    present = (ref_cm.sum(0) + ref_cm.sum(1)) > 0
    assert m.miou == pytest.approx(float(ref_iou[present].mean()) * 100, abs=1e-4)
    ref_acc = torchmetrics.classification.MulticlassAccuracy(k, average=None, ignore_index=255)(pred, target)
    has_gt = ref_cm.sum(1) > 0
    assert m.macc == pytest.approx(float(ref_acc[has_gt].mean()) * 100, abs=1e-4)
    ref_pix = torchmetrics.classification.MulticlassAccuracy(k, average="micro", ignore_index=255)(pred, target)
    assert m.pixel_acc == pytest.approx(float(ref_pix) * 100, abs=1e-4)


def test_logits_are_argmaxed_and_ignore_never_counts() -> None:
    target = torch.tensor([[[0, 1, 255]]])
    logits = torch.zeros(1, 3, 1, 3)
    logits[0, 0, 0, 0] = logits[0, 1, 0, 1] = logits[0, 2, 0, 2] = 1
    cm = ConfusionMatrix(3)
    cm.update(logits, target)
    m = cm.compute(["a", "b", "c"])
    assert m.pixels == 2 and m.miou == 100.0 and math.isnan(m.per_class_iou["c"])


def test_merging_equals_one_pass() -> None:
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randint(0, 5, (2, 8, 8), generator=g), torch.randint(0, 5, (2, 8, 8), generator=g)
    whole, a, b = ConfusionMatrix(5), ConfusionMatrix(5), ConfusionMatrix(5)
    whole.update(pred, target)
    a.update(pred[:1], target[:1])
    b.update(pred[1:], target[1:])
    assert torch.equal((a + b).matrix, whole.matrix)


def test_label_outside_classes_is_a_clear_error() -> None:
    cm = ConfusionMatrix(3)
    with pytest.raises(DataError, match=r"label values \[7\] are outside 0..2"):
        cm.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.tensor([[[0, 7], [1, 2]]]))


def test_shape_mismatch_is_a_clear_error() -> None:
    with pytest.raises(DataError, match="upsample the logits"):
        ConfusionMatrix(3).update(torch.zeros(1, 4, 4, dtype=torch.long), torch.zeros(1, 8, 8, dtype=torch.long))


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 6))
def test_class_map_is_argmax_with_first_index_on_ties(seed: int, k: int) -> None:
    g = torch.Generator().manual_seed(seed)
    scores = torch.randint(0, 3, (2, k, 5, 7), generator=g).float()  # many ties
    assert torch.equal(class_map(scores), scores.argmax(1))


def test_prediction_outside_classes_counts_only_at_labelled_pixels() -> None:
    cm = ConfusionMatrix(3)
    cm.update(torch.tensor([[[0, 9]]]), torch.tensor([[[0, 255]]]))  # 9 sits on an ignore pixel
    assert int(cm.matrix.sum()) == 1
    with pytest.raises(DataError, match="another class count"):
        cm.update(torch.tensor([[[9, 0]]]), torch.tensor([[[0, 255]]]))
