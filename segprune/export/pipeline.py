"""The whole export: fp32 ONNX, then each requested precision, each followed by its parity check.

Outputs in ``out_dir``: ``model.<precision>.onnx`` per precision and ``export.json``, the
manifest (files, hashes, parity figures, settings). A file whose parity check fails is
renamed ``model.<precision>.PARITY-FAILED.onnx``, so nothing downstream picks it up by its
usual name, yet it is kept for inspection; the manifest records the failure and
:class:`~segprune.errors.RegressionFound` (exit 1) is raised after everything is written.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from segprune.errors import ConfigError, RegressionFound
from segprune.export.onnx_export import ExportConfig, export_onnx
from segprune.export.onnx_runner import OnnxRunner
from segprune.export.parity import MIN_AGREEMENT, check_parity, reference_logits
from segprune.export.precision import PRECISIONS, quantize_int8, to_fp16
from segprune.io import file_sha256, save_json
from segprune.models.adapters import model_info

MANIFEST = "export.json"


@dataclass
class ExportPlan:
    """What to write: precisions, calibration method, parity thresholds, optional TensorRT engines."""

    precisions: Sequence[str] = ("fp32",)
    calib_method: str = "percentile"
    min_agreement: dict[str, float] = field(default_factory=dict)
    tensorrt: bool = False
    workspace_bytes: int = 4 << 30

    def validate(self) -> ExportPlan:
        bad = [p for p in self.precisions if p not in PRECISIONS]
        if bad:
            raise ConfigError(f"--precision {','.join(bad)} is not one of {','.join(PRECISIONS)}")
        for precision, value in self.min_agreement.items():
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"parity threshold for {precision} must be a share in [0, 1], got {value}")
        return self


def onnx_name(precision: str, failed: bool = False) -> str:
    return f"model.{precision}.PARITY-FAILED.onnx" if failed else f"model.{precision}.onnx"


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
    out.mkdir(parents=True, exist_ok=True)
    if "int8" in plan.precisions and calib_batches is None:
        raise ConfigError("int8 needs calibration images: pass --calib N with --data")
    described = model_info(model, missing_ok=True)
    stride = int(described.get("output_stride") or 16)
    model = model.eval().cpu()
    fp32 = out / onnx_name("fp32")
    log(f"exporting {cfg.input_size[0]}x{cfg.input_size[1]} (dynamic: {','.join(sorted(cfg.dynamic)) or 'none'}) "
        f"to {fp32}")
    export_onnx(model, fp32, cfg, metadata={"source": source or {}})
    # the same images and PyTorch logits check every precision: compute them once per size
    parity_batches = {size: batches(size, cfg.batch_size) for size in _parity_sizes(cfg, stride)}
    references = {size: reference_logits(model, images) for size, images in parity_batches.items()}
    files: dict[str, Any] = {}
    failed: list[str] = []
    for precision in plan.precisions:
        path = out / onnx_name(precision)
        extra: dict[str, Any] = {}
        if precision == "fp16":
            to_fp16(fp32, path)
        elif precision == "int8":
            log(f"calibrating int8 Q/DQ ({plan.calib_method})")
            extra["int8"] = quantize_int8(fp32, path, calib_batches(cfg.input_size), method=plan.calib_method)
        threshold = plan.min_agreement.get(precision, MIN_AGREEMENT[precision])
        checks = []
        with OnnxRunner(path) as runner:
            for size, images in parity_batches.items():
                report = check_parity(model, runner, images, precision, threshold, references[size])
                log(f"parity {size[0]}x{size[1]} {report.summary()}")
                checks.append({"input_size": list(size), **report.to_dict()})
        ok = all(c["passed"] for c in checks)
        if not ok:
            failed.append(precision)
            bad = out / onnx_name(precision, failed=True)
            os.replace(path, bad)
            path = bad
        files[precision] = {"file": path.name, "sha256": file_sha256(path), "bytes": path.stat().st_size,
                            "parity": checks, "passed": ok, **extra}
    if "fp32" not in plan.precisions:
        fp32.unlink()  # only the intermediate: the user did not ask for fp32
    if plan.tensorrt:
        _build_engines(out, files, cfg, plan, log)
    manifest = {"input_size": list(cfg.input_size), "batch_size": cfg.batch_size, "dynamic": sorted(cfg.dynamic),
                "opset": cfg.opset, "simplified": cfg.simplify, "source": source or {},
                "model": described.get("config", {}), "family": described.get("family"), "files": files,
                "failed": failed}
    save_json(out / MANIFEST, manifest)
    if failed:
        raise RegressionFound(f"parity failed for {', '.join(failed)}: kept as "
                              f"{', '.join(onnx_name(p, True) for p in failed)} in {out}; see {out / MANIFEST}")
    return manifest


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
