"""Exports that cannot be silently wrong or mixed (issue #17): NaN parity, whole-folder replacement, bench checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from segprune.errors import RegressionFound
from segprune.export import ExportConfig, ExportPlan, check_parity, export_model
from tests.helpers import two_conv_model


def _batches(size, n):
    return [np.random.default_rng(0).standard_normal((n, 3, *size)).astype(np.float32)]


def _quiet(_msg: str) -> None:
    pass


def test_parity_fails_on_nan_from_either_side():
    model = two_conv_model().eval()
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
    model = two_conv_model()
    with torch.no_grad():
        model.conv.bias.fill_(float("nan"))
    with pytest.raises(RegressionFound, match="parity failed for fp32 .*NaN/Inf"):
        export_model(model, tmp_path / "nan", ExportConfig((16, 16)), ExportPlan(("fp32",)), _batches, log=_quiet)
    manifest = json.loads((tmp_path / "nan" / "export.json").read_text())
    assert manifest["failed"] == ["fp32"] and manifest["files"]["fp32"]["parity"][0]["nonfinite"] > 0


def _export(model, out, precisions=("fp32",), log=_quiet):
    # random weights leave near-tied logits that fp16 may flip: this file tests folders, not fp16 accuracy
    return export_model(model, out, ExportConfig((16, 16)), ExportPlan(precisions, min_agreement={"fp16": 0.5}),
                        _batches, log=log)


def _consistent(folder) -> dict:
    """The folder holds exactly the manifest's files (plus the manifest), each with the manifest's hash."""
    from segprune.io import file_sha256

    manifest = json.loads((folder / "export.json").read_text())
    files = {entry["file"]: entry["sha256"] for entry in manifest["files"].values()}
    assert sorted(p.name for p in folder.iterdir()) == sorted([*files, "export.json"])
    assert all(file_sha256(folder / name) == digest for name, digest in files.items())
    assert not [p.name for p in folder.parent.iterdir() if p.name.startswith(".")]  # no staging folder left
    return manifest


def test_reexport_replaces_the_folder_and_drops_precisions_not_asked_again(tmp_path):
    torch.manual_seed(0)
    _export(two_conv_model(), tmp_path / "out", ("fp32", "fp16"))
    _export(two_conv_model(), tmp_path / "out", ("fp32",))
    assert set(_consistent(tmp_path / "out")["files"]) == {"fp32"}
    assert not (tmp_path / "out" / "model.fp16.onnx").exists()


def test_interrupted_reexport_leaves_the_previous_export_whole(tmp_path, monkeypatch):
    import segprune.export.pipeline as pipeline

    _export(two_conv_model(), tmp_path / "out", ("fp32", "fp16"))
    before = _consistent(tmp_path / "out")

    def killed(*_args, **_kwargs):  # after the new model.fp32.onnx is written, before the manifest
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "to_fp16", killed)
    with pytest.raises(KeyboardInterrupt):
        _export(two_conv_model(), tmp_path / "out", ("fp32", "fp16"))
    assert _consistent(tmp_path / "out") == before


def test_concurrent_exports_into_one_folder_leave_one_whole_export(tmp_path):
    out = tmp_path / "out"
    started = []

    def log_a(_msg):  # export B runs start to finish while A is half-way
        if not started:
            started.append(True)
            _export(two_conv_model(), out, ("fp32", "fp16"))

    manifest = _export(two_conv_model(), out, ("fp32",), log=log_a)
    assert started and _consistent(out)["files"]["fp32"]["sha256"] == manifest["files"]["fp32"]["sha256"]
    assert not (out / "model.fp16.onnx").exists()


def test_failed_export_leaves_no_folder_and_a_foreign_folder_is_refused(tmp_path, monkeypatch):
    import segprune.export.pipeline as pipeline
    from segprune.errors import ConfigError, ExportError

    def broken(*_args, **_kwargs):
        raise ExportError("exporter failed")

    monkeypatch.setattr(pipeline, "export_onnx", broken)
    with pytest.raises(ExportError):
        _export(two_conv_model(), tmp_path / "new" / "out")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="holds files an export does not write"):
        _export(two_conv_model(), tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_bench_refuses_a_folder_file_its_manifest_does_not_describe(tmp_path):
    import shutil

    from segprune.bench import resolve_model
    from tests.helpers import run_cli

    torch.manual_seed(0)
    _export(two_conv_model(), tmp_path / "a", ("fp32",))
    _export(two_conv_model(), tmp_path / "b", ("fp32", "fp16"))
    assert resolve_model(tmp_path / "a", "onnxruntime", "fp32") == tmp_path / "a" / "model.fp32.onnx"
    shutil.copyfile(tmp_path / "b" / "model.fp32.onnx", tmp_path / "a" / "model.fp32.onnx")  # another model's file
    shutil.copyfile(tmp_path / "b" / "model.fp16.onnx", tmp_path / "a" / "model.fp16.onnx")  # a file not listed
    for precision, says in (("fp32", "does not match the sha256"), ("fp16", "is not listed")):
        code, _, err = run_cli(["bench", tmp_path / "a", "--precision", precision, "--no-accuracy"])
        assert code == 2 and says in err and len(err.strip().splitlines()) == 1, err
