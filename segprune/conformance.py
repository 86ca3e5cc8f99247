"""One model through the whole pipeline, as a user would take it: ``run_case(model_spec, CaseConfig(...))``.

The conformance suite (``tests/models/test_zoo.py``, a fast subset) and
``benchmarks/model_zoo.py`` (every encoder SMP names, SMP's decoders, torchvision's models) both
call :func:`run_case`, in the spirit of segmentation_models.pytorch's ``tests/models/base.py``:
build the model at a tiny size, compress it (truncation where its family allows it, and channel
pruning at ``--scope all``), save the checkpoint, reload it in a fresh Python process and compare
its logits, export fp32 ONNX with parity against PyTorch, and run the TensorRT rule check.

Each case ends in one of three outcomes:

- ``ok``: every stage passed;
- ``refused``: a :class:`~segprune.errors.SegpruneError` (one line, exit status 2 or 1) at
  some stage: its message and stage are recorded, and :data:`OUTSIDE_SEGPRUNE` tells whether
  the cause lies outside segprune (SMP cannot build that encoder at that output stride);
- ``internal-error``: anything else, a bug in segprune (exit status 3), with its traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from segprune.errors import SegpruneError

STAGES = ("build", "compress", "save", "reload", "export")
OUTSIDE_SEGPRUNE = ("SMP cannot build",)
"""Refusal messages whose cause lies outside segprune: the model's library cannot build it as asked."""


@dataclass(frozen=True)
class CaseConfig:
    """How each case is run: its input size, classes, band and channel ratio, whether to reload in a fresh process."""

    size: tuple[int, int] = (64, 64)
    classes: int = 5
    keep_freq: float = 0.5
    channel_ratio: float = 0.5
    importance: str = "l1"
    fresh_process: bool = True
    seed: int = 0


def smp_builder(arch: str, encoder: str, **kwargs) -> Callable[[int], Any]:
    """A builder of ``smp.<arch>(encoder_name=encoder, encoder_weights=None, classes=K, **kwargs)``, through
    segprune's SMP loader (so SMP's own refusals arrive as one line)."""
    def build(classes: int):
        from segprune.models.smp import build_smp

        return build_smp(arch, {"encoder_name": encoder, "classes": classes, **kwargs})
    return build


def run_case(build: Callable[[int], Any], config: CaseConfig = CaseConfig(), *,
             workdir: str | Path | None = None) -> dict[str, Any]:
    """Take the model ``build(classes)`` makes through every stage (module docstring); returns the outcome.

    The model is built with the seed of ``config``; a model whose family cannot run truncated
    is compressed by channels alone (the outcome says so), since that is the user's path too.
    """
    import torch

    started = time.perf_counter()
    result: dict[str, Any] = {"status": "ok", "stage": None, "reason": None, "truncated": False}
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        stage = "build"
        try:
            torch.manual_seed(config.seed)
            model = build(config.classes).eval()
            stage = "compress"
            _compress(model, config, result)
            stage = "save"
            x = torch.randn(2, 3, *config.size, generator=torch.Generator().manual_seed(config.seed))
            with torch.no_grad():
                expected = model(x)
            from segprune.models import save_checkpoint

            ckpt = Path(tmp) / "model.safetensors"
            save_checkpoint(ckpt, model)
            stage = "reload"
            result["reload_max_abs_diff"] = _reload(ckpt, x, expected, Path(tmp), config.fresh_process)
            stage = "export"
            result["export"] = _export(model, Path(tmp) / "export", config)
        except SegpruneError as exc:
            result.update(status="refused", stage=stage, reason=str(exc), exit_code=exc.exit_code,
                          outside_segprune=str(exc).startswith(OUTSIDE_SEGPRUNE))
        except Exception as exc:  # a bug in segprune: the CLI would exit 3
            result.update(status="internal-error", stage=stage, reason=f"{type(exc).__name__}: {exc}",
                          traceback=traceback.format_exc(limit=12))
    result["seconds"] = time.perf_counter() - started
    return result


def _compress(model, config: CaseConfig, result: dict[str, Any]) -> None:
    from segprune.compress import CompressConfig, compress_
    from segprune.errors import ConfigError
    from segprune.models import adapter_for

    adapter = adapter_for(model)
    keep = config.keep_freq
    try:
        adapter.set_truncation(model, keep, "area")
        adapter.set_truncation(model, 1.0, "area")
        result["truncated"] = keep < 1.0
    except ConfigError as exc:  # this family compresses by channels alone
        keep, result["truncation_refused"] = 1.0, str(exc)
    done = compress_(model, CompressConfig(keep_freq=keep, channel_ratio=config.channel_ratio, scope="all",
                                           importance=config.importance), example=config.size)
    result.update(family=done.family, name=adapter.describe(model), keep_freq=done.keep_freq,
                  macs_fraction=done.macs_fraction, gmacs_before=done.macs_before.total_macs / 1e9,
                  gmacs_after=done.macs_after.total_macs / 1e9,
                  mparams_before=done.macs_before.total_params / 1e6, mparams_after=done.macs_after.total_params / 1e6,
                  held=list(done.pruning.held) if done.pruning is not None else [])


_RELOAD = """
import json, sys, torch
torch.set_num_threads(int(sys.argv[4]))  # the saving process's threads: the same reduction order, the same bits
from segprune.models import load_checkpoint
model, _ = load_checkpoint(sys.argv[1])
x = torch.load(sys.argv[2], weights_only=True)
expected = torch.load(sys.argv[3], weights_only=True)
with torch.no_grad():
    got = model(x)
print(json.dumps({"class": type(model).__name__, "diff": (got - expected).abs().max().item()}))
"""


def _reload(ckpt: Path, x, expected, tmp: Path, fresh_process: bool) -> float:
    """Max |logit difference| of the checkpoint reloaded (in a fresh process) against the model that saved it."""
    import torch

    from segprune.errors import CheckpointError

    if not fresh_process:
        from segprune.models import load_checkpoint

        again, _ = load_checkpoint(ckpt)
        with torch.no_grad():
            diff = (again(x) - expected).abs().max().item()
    else:
        torch.save(x, tmp / "x.pt")
        torch.save(expected, tmp / "expected.pt")
        done = subprocess.run([sys.executable, "-c", _RELOAD, str(ckpt), str(tmp / "x.pt"), str(tmp / "expected.pt"),
                               str(torch.get_num_threads())],
                              capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"reloading in a fresh process failed: {done.stderr.strip().splitlines()[-1:]}")
        diff = json.loads(done.stdout.strip().splitlines()[-1])["diff"]
    if diff != 0.0:
        raise CheckpointError(f"the reloaded checkpoint's logits differ from the saved model's by {diff:.3g}")
    return diff


def _export(model, out: Path, config: CaseConfig) -> dict[str, Any]:
    import numpy as np

    from segprune.export import ExportConfig, ExportPlan, export_model

    rng = np.random.default_rng(config.seed)
    manifest = export_model(model, out, ExportConfig(config.size), ExportPlan(("fp32",)),
                            batches=lambda size, n: [rng.standard_normal((n, 3, *size)).astype(np.float32)],
                            log=lambda message: None)
    entry = manifest["files"]["fp32"]
    parity = entry["parity"][0]
    return {"parity_agreement": parity.get("agreement"), "max_abs_diff": parity.get("max_abs_diff"),
            "tensorrt_rules_passed": entry["tensorrt_check"].get("passed"), "onnx_bytes": entry["bytes"]}


def summarize(results: list[dict[str, Any]]) -> dict[str, int]:
    """Counts per outcome, refusals split by whether their cause lies outside segprune."""
    counts = {"ok": 0, "refused_outside_segprune": 0, "refused_by_segprune": 0, "internal_error": 0}
    for r in results:
        if r["status"] == "ok":
            counts["ok"] += 1
        elif r["status"] == "refused":
            counts["refused_outside_segprune" if r.get("outside_segprune") else "refused_by_segprune"] += 1
        else:
            counts["internal_error"] += 1
    return counts


def config_dict(config: CaseConfig) -> dict[str, Any]:
    return {**asdict(config), "size": list(config.size)}
