"""The segprune checkpoint: one safetensors file that rebuilds its model without pickle.

Layout: the model's ``state_dict`` as safetensors tensors; the safetensors header metadata
holds, under the key ``"segprune"``, the JSON of ``{"format": "segprune-checkpoint",
"version": 1, "family": ..., "config": ..., "metadata": {...}}``. ``family`` names the
model adapter (:mod:`segprune.models.adapters`) that wrote ``config`` and rebuilds the
model from it: ``"segprune"`` (a ModelConfig with channel_overrides filled in; the key is
left out for these, so such files read as before) or ``"smp"`` (the SMP constructor
arguments, truncation and channel overrides). Any family's model, pruned or not, is saved
and reloaded the same way, without pickle.
A sidecar ``<path>.json`` repeats that JSON for people and tools that do not read
safetensors. Loading reads the header, builds the model from the config, checks every
tensor name and shape, then loads with ``strict=True``; every failure is one CheckpointError
line saying what is wrong and what to do.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from segprune.errors import CheckpointError, ConfigError, first_line
from segprune.io import atomic_path, json_text, save_json
from segprune.limits import check_memory, model_bytes
from segprune.models.adapters import adapter_for, get_adapter
from segprune.models.config import ModelConfig
from segprune.models.files import check_file, sniff_format, state_dict_mismatch

FORMAT = "segprune-checkpoint"
VERSION = 1
HEADER_KEY = "segprune"
NATIVE = "segprune"  # the family of segprune's own models: their headers carry no "family" key


def save_checkpoint(path: str | os.PathLike, model: nn.Module, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model`` to ``path`` (safetensors) and ``<path>.json``, both atomically; returns ``path``.

    ``metadata`` (epoch, metrics, training options...) must be JSON-serialisable.
    """
    adapter = adapter_for(model)
    header = {"format": FORMAT, "version": VERSION, "config": adapter.config_of(model), "metadata": metadata or {}}
    if adapter.family != NATIVE:
        header["family"] = adapter.family
    try:
        text = json_text(header)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"checkpoint metadata is not JSON-serialisable ({exc}): pass numbers, strings, "
                          "lists and dicts") from None
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(_tensors_for_saving(model.state_dict()), str(tmp), metadata={HEADER_KEY: text})
    save_json(sidecar_path(path), json.loads(text))
    return path


def checkpoint_input_size(info: dict[str, Any]) -> tuple[int, int] | None:
    """The input size a checkpoint was made for: pruning's ``input_size``, else training's eval or crop size.

    ``info`` is what :func:`load_checkpoint` returns next to the model.
    """
    meta = info.get("metadata") or {}
    train = meta.get("train") or {}
    for size in (meta.get("input_size"), train.get("eval_size"), train.get("crop_size")):
        if size:
            return int(size[0]), int(size[1])
    return None


def sidecar_path(path: str | os.PathLike) -> Path:
    """``<path>.json``: the human-readable copy of a checkpoint's header."""
    return Path(f"{os.fspath(path)}.json")


def _tensors_for_saving(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU tensors; tensors sharing storage are copied (safetensors refuses aliases)."""
    out, seen = {}, set()
    for name, tensor in state.items():
        t = tensor.detach().to("cpu").contiguous()
        ptr = t.untyped_storage().data_ptr()
        if ptr in seen and t.numel() > 0:
            t = t.clone()
        seen.add(ptr)
        out[name] = t
    return out


def read_checkpoint_header(path: str | os.PathLike) -> dict[str, Any]:
    """The parsed ``"segprune"`` header of a checkpoint, without reading its tensors."""
    path = check_file(path, "checkpoint")
    kind = sniff_format(path)
    if kind in ("zip-pickle", "pickle"):
        raise CheckpointError(f"checkpoint {path} looks like a PyTorch pickle (torch.save), not a segprune "
                              "safetensors checkpoint: pass it as a plain weights file with --arch NAME (read "
                              "weights-only, never unpickled)")
    if kind != "safetensors":
        raise CheckpointError(f"checkpoint {path} is not a safetensors file (corrupted, truncated or another "
                              "format): pass a .safetensors checkpoint written by segprune train or prune")
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
    except Exception as exc:  # safetensors raises SafetensorError, OSError... for broken files
        raise CheckpointError(f"checkpoint {path} is an unreadable safetensors file ({exc}): it is corrupted or "
                              "truncated; write it again with segprune train or prune") from None
    if HEADER_KEY not in meta:
        raise CheckpointError(f"checkpoint {path} is a safetensors file without a segprune header: it was not "
                              "written by segprune; pass it as a plain weights file with --arch NAME")
    try:
        header = json.loads(meta[HEADER_KEY])
    except json.JSONDecodeError:
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT or not isinstance(header.get("config"), dict):
        raise CheckpointError(f"checkpoint {path} has a corrupted segprune header: write it again with "
                              "segprune train or prune")
    if not isinstance(header.get("metadata", {}), dict):
        raise CheckpointError(f"checkpoint {path} has a corrupted segprune header (its metadata is a "
                              f"{type(header['metadata']).__name__}, not an object): write it again with segprune train or prune")
    version = header.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise CheckpointError(f"checkpoint {path} has format version {version!r}, this segprune reads up to "
                              f"{VERSION}: upgrade segprune")
    return header


def load_checkpoint(path: str | os.PathLike, *, num_classes: int | None = None, arch: str | None = None,
                    map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model saved at ``path`` and load its weights strictly; returns ``(model, info)``.

    ``num_classes`` and ``arch``, when given, must match the checkpoint. The model is
    returned in eval mode on ``map_location``; ``info`` holds the path, format version,
    config dict and the metadata given to :func:`save_checkpoint`.
    """
    header = read_checkpoint_header(path)
    family = header.get("family", NATIVE)
    adapter = get_adapter(family)
    if family == NATIVE:  # checked before anything is built, so the errors name the option
        try:
            config = ModelConfig.from_dict(header["config"])
        except ConfigError as exc:
            raise CheckpointError(f"checkpoint {path} holds an invalid model config ({exc}); write it again "
                                  "with segprune train or prune") from None
        if arch is not None and arch != config.arch:
            raise CheckpointError(f"checkpoint {path} is a {config.arch} model, you asked for {arch}: "
                                  f"pass a {arch} checkpoint or arch={config.arch!r}")
    try:  # on the meta device first: shapes and size are checked before a byte is allocated
        skeleton = adapter.skeleton(header["config"])
    except ConfigError as exc:
        raise CheckpointError(f"checkpoint {path} holds an invalid {family} model config ({exc}); write it again "
                              "with segprune train or prune") from None
    except RuntimeError as exc:  # sizes past what any tensor can hold ("Storage size calculation overflowed")
        raise CheckpointError(f"checkpoint {path} describes a model too large to build ({first_line(exc)}): its "
                              "header was edited or is corrupted; write it again with segprune train or prune") from None
    classes = adapter.num_classes(skeleton)
    if num_classes is not None and num_classes != classes:
        raise CheckpointError(f"checkpoint {path} has {classes} classes, the data has {num_classes}: "
                              f"use data with {classes} classes, or train a fresh model on this data")
    expected = {k: v.shape for k, v in skeleton.state_dict().items()}
    check_memory(f"checkpoint {path}'s {adapter.describe(skeleton)} model",
                 model_bytes(skeleton),
                 "its header describes an absurdly large model; write it again with segprune train or prune")
    device = str(torch.device(map_location))
    with safe_open(str(path), framework="pt", device=device) as handle:
        found = {k: torch.Size(handle.get_slice(k).get_shape()) for k in handle.keys()}
        problem = state_dict_mismatch(expected, found)
        if problem:
            raise CheckpointError(f"checkpoint {path} does not match the {adapter.describe(skeleton)} model its "
                                  f"config describes: {problem}; the file was edited or made by another "
                                  "version: write it again with segprune train or prune")
        model = adapter.build(header["config"])
        state = {k: handle.get_tensor(k) for k in found}
    model.to(device)
    model.load_state_dict(state, strict=True)
    info = {"path": str(path), "format": header["format"], "version": header["version"], "family": family,
            "config": header["config"], "metadata": header.get("metadata") or {}}
    return model.eval(), info
