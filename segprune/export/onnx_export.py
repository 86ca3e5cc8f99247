"""PyTorch -> ONNX: one exporter, checked, simplified, with the model's config inside the file.

Exporter choice: ``torch.onnx.export(..., dynamo=True)``, the ``torch.export``-based path
that is the default and the maintained one since PyTorch 2.9 (the TorchScript exporter is
deprecated). Two properties matter here:

* Dynamic H and W are *symbolic* through the whole forward, so the decoder grid of a
  truncated model (``ceil(keep * H/4)``, see :func:`segprune.models.decoder_grid`) is
  computed in the graph from the input's shape. The TorchScript tracer would freeze it
  at the example's size and give silently wrong logits at every other size.
* It writes weights to a side file by default; ``external_data=False`` keeps one
  self-contained ``.onnx`` file (our models are far below protobuf's 2 GB limit).

The model is put in eval mode before tracing (both exporters otherwise record BatchNorm in
training mode). The graph is checked with ``onnx.checker`` (full check, with shape
inference), simplified with onnxslim, and written atomically.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from segprune.errors import ConfigError, ExportError, first_line
from segprune.io import atomic_path
from segprune.models.adapters import model_info

INPUT_NAME = "image"
OUTPUT_NAME = "logits"
DYNAMIC_AXES = ("batch", "hw")
MIN_OPSET = 17
META_PREFIX = "segprune."


@dataclass(frozen=True)
class ExportConfig:
    """What the ONNX graph accepts: example input size, dynamic axes, opset, simplification.

    ``dynamic`` holds ``"batch"`` and/or ``"hw"``. The class dimension is always static,
    and so is the channel count of the input.
    """

    input_size: tuple[int, int]
    batch_size: int = 1
    dynamic: frozenset[str] = field(default_factory=frozenset)
    opset: int = 18
    simplify: bool = True
    allow_unaligned: bool = False

    def validate(self, model: nn.Module) -> ExportConfig:
        """Raise a one-line :class:`ConfigError` for a graph that could not be exported correctly."""
        unknown = set(self.dynamic) - set(DYNAMIC_AXES)
        if unknown:
            raise ConfigError(f"--dynamic {','.join(sorted(unknown))} is not an axis: choose from "
                              f"{','.join(DYNAMIC_AXES)}")
        if self.opset < MIN_OPSET:
            raise ConfigError(f"--opset {self.opset} is too old: use {MIN_OPSET} or newer")
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be at least 1, got {self.batch_size}")
        info = model_info(model, missing_ok=True)
        stride, keep, resize = info.get("output_stride"), info.get("keep_freq", 1.0), info.get("resize", "bilinear")
        if stride and not self.allow_unaligned:
            check_divisible(self.input_size, stride)
        if "hw" in self.dynamic and keep < 1.0 and resize != "bilinear":
            raise ConfigError(f"a model truncated with {resize} decoder resizing (keep-freq {keep:g}) exports at a "
                              "fixed size only: drop hw from --dynamic (its resampling matrices or pooling "
                              "windows depend on H and W), or prune with --decoder-resize bilinear")
        return self


def check_divisible(size: tuple[int, int], stride: int) -> None:
    """Refuse an input size the output stride does not divide, naming the nearest sizes that work.

    Such a size still runs (the last feature cell overhangs the image and every upsampling
    lands on fractional positions), but a graph fixed at it is usually a typo for an aligned
    size; a model trained at the size (CamVid's 360x480 at output stride 16) opts in with
    ``allow_unaligned``.
    """
    bad = [s for s in size if s % stride]
    if not bad:
        return

    def near(s: int) -> list[int]:
        down, up = (s // stride) * stride, -(-s // stride) * stride
        return sorted({v for v in (down, up) if v > 0})

    # nearest first: 63x97 at stride 16 suggests 64x96, then 48x96
    options = sorted(((h, w) for h in near(size[0]) for w in near(size[1])),
                     key=lambda hw: (abs(hw[0] - size[0]) + abs(hw[1] - size[1]), hw))
    shown = [f"{h}x{w}" for h, w in options[:2]]
    raise ConfigError(f"input size {size[0]}x{size[1]} is not divisible by the model's output stride {stride}: "
                      f"use {' or '.join(shown)} (nearest first), or pass --allow-unaligned if the model was trained "
                      "at this size")


def _dynamic_shapes(cfg: ExportConfig) -> tuple[dict[int, Any]] | None:
    from torch.export import Dim

    axes: dict[int, Any] = {}
    if "batch" in cfg.dynamic:
        axes[0] = Dim.DYNAMIC
    if "hw" in cfg.dynamic:
        axes[2] = axes[3] = Dim.DYNAMIC
    return (axes,) if axes else None


def export_onnx(model: nn.Module, path: str | Path, cfg: ExportConfig,
                metadata: dict[str, Any] | None = None) -> Path:
    """Export ``model`` to ``path`` (fp32), checked and simplified; returns ``path``.

    ``metadata`` goes into the file's ``metadata_props`` under ``segprune.*`` keys (values
    JSON-encoded), next to the model config, input size and dynamic axes, so a runner or
    benchmark can rebuild what it needs from the ONNX file alone.
    """
    import onnx

    cfg = cfg.validate(model)
    model = model.eval().cpu()
    example = torch.randn(cfg.batch_size, 3, *cfg.input_size)
    chatter = io.StringIO()
    try:
        with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(chatter):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(model, (example,), None, dynamo=True, external_data=False,
                                        opset_version=cfg.opset, input_names=[INPUT_NAME],
                                        output_names=[OUTPUT_NAME], dynamic_shapes=_dynamic_shapes(cfg),
                                        verbose=False)
    except Exception as exc:  # torch.export raises many types; each is a model it cannot trace
        raise ExportError(f"torch.onnx.export failed: {first_line(exc)} "
                          "(rerun with a fixed --input-size and no --dynamic to narrow it down)") from exc
    proto = program.model_proto
    if cfg.simplify:
        import onnxslim

        proto = onnxslim.slim(proto)
    described = model_info(model, missing_ok=True)
    info = {"config": described.get("config", {}), "family": described.get("family"),
            "num_classes": described.get("num_classes"), "input_size": list(cfg.input_size), "batch_size": cfg.batch_size,
            "dynamic": sorted(cfg.dynamic), "precision": "fp32", **(metadata or {})}
    set_metadata(proto, info)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"the exported graph fails onnx.checker: {first_line(exc)}") from exc
    save_onnx(proto, path)
    return Path(path)


def save_onnx(proto, path: str | Path) -> None:
    """Write an ONNX model atomically, as one file."""
    import onnx

    with atomic_path(path) as tmp:
        onnx.save_model(proto, str(tmp), save_as_external_data=False)


def set_metadata(proto, info: dict[str, Any]) -> None:
    """Store ``info`` as ``segprune.<key>`` metadata properties (JSON values), replacing old ones."""
    keep = [p for p in proto.metadata_props if not (p.key[len(META_PREFIX):] in info and p.key.startswith(META_PREFIX))]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    for key, value in info.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = META_PREFIX + key, json.dumps(value)


def read_metadata(proto) -> dict[str, Any]:
    """The ``segprune.*`` metadata of an ONNX model as a dictionary (empty for foreign files)."""
    out = {}
    for prop in proto.metadata_props:
        if prop.key.startswith(META_PREFIX):
            try:
                out[prop.key[len(META_PREFIX):]] = json.loads(prop.value)
            except json.JSONDecodeError:
                out[prop.key[len(META_PREFIX):]] = prop.value
    return out


def load_onnx(path: str | Path):
    """Load an ONNX file, turning a missing, truncated or corrupt file into one clear line."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ExportError(f"ONNX file {path} does not exist: export one with `segprune export CKPT --out DIR`")
    if path.stat().st_size == 0:
        raise ExportError(f"{path} is empty (0 bytes), not an ONNX model: re-export it with `segprune export`")
    try:
        proto = onnx.load_model(str(path))
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ExportError(f"{path} is not a readable ONNX file (truncated or corrupt?): re-export it with "
                          f"`segprune export` ({type(exc).__name__})") from exc
    if not proto.graph.node or not proto.opset_import:  # protobuf parses many non-ONNX bytes as an empty model
        raise ExportError(f"{path} is not an ONNX model (no graph or opset): re-export it with `segprune export`")
    return proto
