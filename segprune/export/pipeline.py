"""The whole export: fp32 ONNX, then each requested precision, each followed by its checks.

Outputs in ``out_dir``: ``model.<precision>.onnx`` per precision and ``export.json``, the
manifest (files, hashes, parity figures, TensorRT rule check, settings). The folder is built
in a temporary sibling and renamed into place whole, so it only ever holds one export's
files, each listed (with its hash) in the manifest; ``segprune bench`` checks them against it. Every file is
checked twice: its parity with PyTorch, and (unless ``ExportPlan.tensorrt_check`` is off)
the rules TensorRT imposes on the graph (:mod:`segprune.export.trt_rules`). A file that
fails its parity check is renamed ``model.<precision>.PARITY-FAILED.onnx``, one that breaks
a TensorRT rule ``model.<precision>.TRT-INCOMPATIBLE.onnx``, so nothing downstream picks it
up by its usual name, yet it is kept for inspection; the manifest records the failure and
:class:`~segprune.errors.RegressionFound` (exit 1) is raised after everything is written.
The manifest is also written when a TensorRT engine build fails, with the error, before
that error propagates.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from segprune.errors import ConfigError, ExportError, RegressionFound, SegpruneError
from segprune.export.onnx_export import ExportConfig, export_onnx
from segprune.export.onnx_runner import OnnxRunner
from segprune.export.parity import MIN_AGREEMENT, check_parity, reference_logits
from segprune.export.precision import INT8_REST, PRECISIONS, quantize_int8, to_fp16
from segprune.export.trt_rules import check_file, summary
from segprune.io import file_sha256, load_json, save_json, staged_dir
from segprune.models.adapters import model_info

MANIFEST = "export.json"


@dataclass
class ExportPlan:
    """What to write: precisions, calibration, parity thresholds, the TensorRT rule check, optional engines.

    ``tensorrt_check`` (on by default) checks every graph against TensorRT's published
    rules on this machine, GPU or not; ``int8_rest`` is the precision of the int8 graph
    outside its Q/DQ pairs (:func:`segprune.export.precision.quantize_int8`). ``None`` picks
    for the consumer: ``fp16`` when TensorRT engines are built (a strongly typed engine runs
    every layer outside a Q/DQ pair in the graph's type, so fp32 there would be slow),
    ``fp32`` otherwise (onnxruntime on a CPU runs an fp16 rest several times slower, docs/results.md).
    """

    precisions: Sequence[str] = ("fp32",)
    calib_method: str = "percentile"
    min_agreement: dict[str, float] = field(default_factory=dict)
    tensorrt: bool = False
    workspace_bytes: int = 4 << 30
    tensorrt_check: bool = True
    int8_rest: str | None = None

    def validate(self) -> ExportPlan:
        if self.int8_rest is None:
            self.int8_rest = "fp16" if self.tensorrt else "fp32"
        if not self.precisions:
            raise ConfigError(f"--precision names no precision: pass one or more of {','.join(PRECISIONS)}, "
                              "e.g. --precision fp32,int8")
        bad = [p for p in self.precisions if p not in PRECISIONS]
        if bad:
            raise ConfigError(f"--precision {','.join(bad)} is not one of {','.join(PRECISIONS)}")
        for precision, value in self.min_agreement.items():
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"parity threshold for {precision} must be a share in [0, 1], got {value}")
        if self.int8_rest not in INT8_REST:
            raise ConfigError(f"--int8-rest {self.int8_rest} is not one of {','.join(INT8_REST)}")
        return self


FAILED_TAGS = {"parity": "PARITY-FAILED", "tensorrt": "TRT-INCOMPATIBLE"}


def onnx_name(precision: str, failed: bool | str = False) -> str:
    """``model.<p>.onnx``; a failed file carries what failed: ``failed`` is ``"parity"`` (or True) or ``"tensorrt"``."""
    if not failed:
        return f"model.{precision}.onnx"
    return f"model.{precision}.{FAILED_TAGS['parity' if failed is True else failed]}.onnx"


def _parity_sizes(cfg: ExportConfig, stride: int) -> list[tuple[int, int]]:
    # A dynamic-H/W graph is also checked at a second, larger size: a shape frozen at the
    # example size during tracing shows up only there.
    sizes = [cfg.input_size]
    if "hw" in cfg.dynamic:
        sizes.append((cfg.input_size[0] + 2 * stride, cfg.input_size[1] + 4 * stride))
    return sizes


def export_model(model: nn.Module, out_dir: str | Path, cfg: ExportConfig, plan: ExportPlan,
                 batches: Callable[[tuple[int, int], int], list[np.ndarray]],
                 calib_batches: Callable[[tuple[int, int]], list[np.ndarray]] | None = None,
                 source: dict[str, Any] | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Export ``model`` to ``out_dir`` for every precision of ``plan``; returns the manifest.

    ``batches(size, batch_size)`` gives the parity batches at an input size;
    ``calib_batches(size)`` the int8 calibration images (required for int8).
    """
    plan = plan.validate()
    if plan.tensorrt:
        from segprune.export.tensorrt import require_tensorrt

        require_tensorrt("--tensorrt")  # fail before writing anything, with the install instruction
    out = Path(out_dir)
    check_export_dir(out)
    if "int8" in plan.precisions and calib_batches is None:
        raise ConfigError("int8 needs calibration images: pass --calib-images N with --data")
    error: SegpruneError | None = None
    with staged_dir(out) as stage:  # the folder is replaced whole: never two exports' files side by side
        manifest = _export_files(model, stage, cfg, plan, batches, calib_batches, source, log)
        if plan.tensorrt:
            if (out / "timing.cache").is_file():  # the previous export's kernel timings speed up this build
                shutil.copyfile(out / "timing.cache", stage / "timing.cache")
            try:
                _build_engines(stage, manifest["files"], cfg, plan, log)
            except SegpruneError as exc:  # the ONNX files exist: say so in the manifest, then fail as before
                manifest["engine_error"] = str(exc)
                error = exc
        save_json(stage / MANIFEST, manifest)
    if error is not None:
        raise error
    if manifest["failed"]:
        raise RegressionFound(_failure_message(manifest["failed"], manifest["failures"], manifest["files"], out))
    return manifest


def check_export_dir(out: Path) -> None:
    """Refuse an ``out`` that an export may not replace: a file, or a folder holding files an export never writes.

    An export replaces its folder whole (:func:`segprune.io.staged_dir`), so a folder of the
    user's other files is refused rather than deleted.
    """
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file: pass a folder for the export")
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if not _is_export_file(p.name))
        if foreign:
            raise ConfigError(f"--out {out} holds files an export does not write ({', '.join(foreign[:3])}): an export "
                              "replaces its whole folder, so pass an empty folder, a previous export or a new path")


def check_export_file(folder: Path, file: Path, precision: str) -> None:
    """Refuse a file of an export folder unless its manifest lists it, with the same hash for an ONNX file.

    What ``segprune bench FOLDER`` measures must be the model the manifest describes, not a
    file left by another export or copied in by hand.
    """
    manifest_path = folder / MANIFEST
    again = f"export it again with `segprune export MODEL --out {folder} --precision {precision}`"
    if not manifest_path.is_file():
        raise ExportError(f"{folder} has no {MANIFEST}, so {file.name} cannot be checked: {again}")
    manifest = load_json(manifest_path)
    entry = (manifest.get("files") or {}).get(precision) if isinstance(manifest, dict) else None
    entry = entry if isinstance(entry, dict) else {}
    listed = (entry.get("engine") or {}).get("file") if file.suffix == ".engine" else entry.get("file")
    if listed != file.name:
        raise ExportError(f"{file} is not listed in {manifest_path} (left by another export): {again}")
    if file.suffix == ".onnx" and entry.get("sha256") != file_sha256(file):
        raise ExportError(f"{file} does not match the sha256 in {manifest_path} (the folder mixes two exports): "
                          f"{again}")


def _is_export_file(name: str) -> bool:
    return name in (MANIFEST, "timing.cache") or name.startswith(("model.", ".model."))


def _export_files(model: nn.Module, out: Path, cfg: ExportConfig, plan: ExportPlan,
                  batches: Callable[[tuple[int, int], int], list[np.ndarray]],
                  calib_batches: Callable[[tuple[int, int]], list[np.ndarray]] | None,
                  source: dict[str, Any] | None, log: Callable[[str], None]) -> dict[str, Any]:
    """Write and check every precision's ONNX file in ``out``; returns the manifest (without engines)."""
    described = model_info(model, missing_ok=True)
    stride = int(described.get("output_stride") or 16)
    model = model.eval().cpu()
    fp32 = out / onnx_name("fp32")
    log(f"exporting {cfg.input_size[0]}x{cfg.input_size[1]} (dynamic: {','.join(sorted(cfg.dynamic)) or 'none'})")
    export_onnx(model, fp32, cfg, metadata={"source": source or {}})
    # the same images and PyTorch logits check every precision: compute them once per size
    parity_batches = {size: batches(size, cfg.batch_size) for size in _parity_sizes(cfg, stride)}
    references = {size: reference_logits(model, images) for size, images in parity_batches.items()}
    files: dict[str, Any] = {}
    failed: list[str] = []
    reasons: dict[str, str] = {}
    for precision in plan.precisions:
        path = out / onnx_name(precision)
        extra: dict[str, Any] = {}
        if precision == "fp16":
            to_fp16(fp32, path)
        elif precision == "int8":
            log(f"calibrating int8 Q/DQ ({plan.calib_method}, {plan.int8_rest} outside the Q/DQ pairs)")
            extra["int8"] = quantize_int8(fp32, path, calib_batches(cfg.input_size), method=plan.calib_method,
                                          rest=plan.int8_rest)
        threshold = plan.min_agreement.get(precision, MIN_AGREEMENT[precision])
        checks = []
        with OnnxRunner(path) as runner:
            for size, images in parity_batches.items():
                report = check_parity(model, runner, images, precision, threshold, references[size])
                log(f"parity {size[0]}x{size[1]} {report.summary()}")
                checks.append({"input_size": list(size), **report.to_dict()})
        ok = all(c["passed"] for c in checks)
        trt = _tensorrt_check(path, plan, log)
        failure = "parity" if not ok else ("tensorrt" if not trt.get("passed", True) else None)
        if failure:
            failed.append(precision)
            reasons[precision] = failure
        files[precision] = {"file": path.name, "sha256": file_sha256(path), "bytes": path.stat().st_size,
                            "parity": checks, "tensorrt_check": trt, "passed": failure is None, **extra}
    # renamed only now: the other precisions are made from model.fp32.onnx, even when it failed
    for precision, failure in reasons.items():
        bad = out / onnx_name(precision, failed=failure)
        os.replace(out / files[precision]["file"], bad)
        files[precision]["file"] = bad.name
    if "fp32" not in plan.precisions:
        fp32.unlink()  # only the intermediate: the user did not ask for fp32
    return {"input_size": list(cfg.input_size), "batch_size": cfg.batch_size, "dynamic": sorted(cfg.dynamic),
            "opset": cfg.opset, "simplified": cfg.simplify, "source": source or {},
            "model": described.get("config", {}), "family": described.get("family"), "files": files,
            "failed": failed, "failures": reasons, "tensorrt_check": plan.tensorrt_check,
            "int8_rest": plan.int8_rest if "int8" in plan.precisions else None}


def _tensorrt_check(path: Path, plan: ExportPlan, log: Callable[[str], None]) -> dict[str, Any]:
    """Run the TensorRT rule check on one file (unless opted out) and log its one-line verdict."""
    if not plan.tensorrt_check:
        return {"checked": False}
    violations = check_file(path)
    log(summary(violations, path.name))
    return {"checked": True, "passed": not violations, "violations": [v.to_dict() for v in violations]}


def _failure_message(failed: list[str], reasons: dict[str, str], files: dict[str, Any], out: Path) -> str:
    parts = []
    for precision in failed:
        entry = files[precision]
        if reasons[precision] == "tensorrt":
            first = entry["tensorrt_check"]["violations"][0]
            parts.append(f"{precision} breaks TensorRT rule {first['rule']} at node {first['node']!r} "
                         f"({first['op']}): {first['message']}")
        else:
            nonfinite = sum(c.get("nonfinite", 0) for c in entry["parity"])
            parts.append(f"parity failed for {precision}"
                         + (f" ({nonfinite} NaN/Inf logits)" if nonfinite else ""))
    kept = ", ".join(files[p]["file"] for p in failed)
    return (f"{'; '.join(parts)}: kept as {kept} in {out}; see {out / MANIFEST} "
            "(--no-tensorrt-check skips the TensorRT rules)")


def _build_engines(out: Path, files: dict[str, Any], cfg: ExportConfig, plan: ExportPlan,
                   log: Callable[[str], None]) -> None:
    from segprune.export.tensorrt import build_engine

    n, (h, w) = cfg.batch_size, cfg.input_size
    shapes = None
    if cfg.dynamic:
        hi_n = 4 * n if "batch" in cfg.dynamic else n
        lo = (1 if "batch" in cfg.dynamic else n, 3, h // 2 if "hw" in cfg.dynamic else h,
              w // 2 if "hw" in cfg.dynamic else w)
        hi = (hi_n, 3, 2 * h if "hw" in cfg.dynamic else h, 2 * w if "hw" in cfg.dynamic else w)
        shapes = {"min": lo, "opt": (n, 3, h, w), "max": hi}
    for precision, entry in files.items():
        if not entry["passed"]:
            continue
        engine = out / f"model.{precision}.engine"
        log(f"building TensorRT engine {engine}")
        meta = build_engine(out / entry["file"], engine, shapes=shapes, workspace_bytes=plan.workspace_bytes,
                            timing_cache=out / "timing.cache")
        entry["engine"] = {"file": engine.name, **meta.to_dict()}
