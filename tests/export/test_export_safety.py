"""Exports that cannot be silently wrong or mixed (issue #17): NaN parity, whole-folder replacement, bench checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from segprune.errors import RegressionFound
from segprune.export import ExportConfig, ExportPlan, check_parity, export_model


class _Plain(nn.Module):
    """Two small convolutions: exports in about a second."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.conv = nn.Conv2d(8, 4, 3, padding=1)

    def forward(self, x):
        return self.conv(torch.relu(self.stem(x)))


def _batches(size, n):
    return [np.random.default_rng(0).standard_normal((n, 3, *size)).astype(np.float32)]


def _quiet(_msg: str) -> None:
    pass


def test_parity_fails_on_nan_from_either_side():
    model = _Plain().eval()
    images = _batches((8, 8), 1)
    with torch.no_grad():
        finite = model(torch.from_numpy(images[0])).numpy()
    nan_run = lambda _b: np.full_like(finite, np.nan)  # noqa: E731
    report = check_parity(model, nan_run, images, "fp32")
    assert not report.passed and report.nonfinite == finite.size and "non-finite" in report.summary()
    # a NaN PyTorch reference with a NaN graph "agrees" on every argmax: still a failure
    report = check_parity(model, nan_run, images, "fp32", references=[np.full_like(finite, np.nan)])
    assert report.agreement == 1.0 and not report.passed
    assert check_parity(model, lambda b: model(torch.from_numpy(b)).detach().numpy(), images).passed


def test_export_of_a_nan_model_fails_parity(tmp_path):
    model = _Plain()
    with torch.no_grad():
        model.conv.bias.fill_(float("nan"))
    with pytest.raises(RegressionFound, match="parity failed for fp32 .*NaN/Inf"):
        export_model(model, tmp_path / "nan", ExportConfig((16, 16)), ExportPlan(("fp32",)), _batches, log=_quiet)
    manifest = json.loads((tmp_path / "nan" / "export.json").read_text())
    assert manifest["failed"] == ["fp32"] and manifest["files"]["fp32"]["parity"][0]["nonfinite"] > 0
