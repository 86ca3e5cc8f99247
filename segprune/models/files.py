"""Reading weight files safely, and explaining why they do not fit a model.

Nothing here unpickles arbitrary objects: PyTorch files are read with
``torch.load(weights_only=True)`` and safetensors files with ``safetensors``. The mismatch
report is shared by backbone-weight loading and checkpoint loading, so both name the same
things: the first few missing, unexpected and wrongly shaped tensors.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch

from segprune.errors import CheckpointError

_SHOWN = 3


def sniff_format(path: Path) -> str:
    """``"zip-pickle"`` (torch.save), ``"pickle"`` (legacy torch.save), ``"safetensors"`` or ``"unknown"``."""
    with open(path, "rb") as handle:
        head = handle.read(9)
    # safetensors first: its 8-byte little-endian header length may well start with 0x80.
    if len(head) == 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") <= os.path.getsize(path) - 8:
        return "safetensors"
    if head.startswith(b"PK\x03\x04"):
        return "zip-pickle"
    if head[:1] == b"\x80":
        return "pickle"
    return "unknown"


def check_file(path: str | os.PathLike, what: str = "file") -> Path:
    """``path`` as a Path, or a CheckpointError when it is missing or a folder."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{what} {path} does not exist: check the path")
    if path.is_dir():
        raise CheckpointError(f"{what} {path} is a folder: pass the weight file inside it")
    return path


def _is_whole_pickle(path: Path) -> bool:
    """Whether ``path`` is one well-formed pickle stream: its opcodes are walked, never executed."""
    import pickletools

    try:
        with open(path, "rb") as handle:
            for _ in pickletools.genops(handle):
                pass
    except Exception:  # ValueError for an unknown opcode, EOFError for a truncated stream...
        return False
    return True


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a plain state dict file (``.pth``/``.pt`` or ``.safetensors``), on the CPU.

    Pickles are read with ``weights_only=True``, so a file holding a whole pickled model is
    refused rather than executed. Common wrappers are unpacked: ``{"state_dict": ...}``,
    ``{"model": ...}`` and DistributedDataParallel's ``module.`` prefix.
    """
    path = check_file(path, "weight file")
    if sniff_format(path) == "safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only met a class it will not construct, or a pickle opcode it will not run: either
        # way the file holds Python objects (perhaps code), and it was refused, not loaded
        if "Unsupported global" in str(exc) or "GLOBAL" in str(exc) or _is_whole_pickle(path):
            raise CheckpointError(f"{path} is a pickle that holds Python objects besides tensors (a pickled model, "
                                  "or code), and it was not loaded, since unpickling can run code: re-save it where "
                                  "it was made with torch.save(model.state_dict(), path), or for an SMP model with "
                                  "model.save_pretrained(dir)") from None
        raise CheckpointError(f"{path} is not a readable PyTorch weight file (corrupted or not a torch.save "
                              "file): check the file") from None
    except Exception as exc:  # torch raises RuntimeError, EOFError, zipfile errors... for broken files
        raise CheckpointError(f"{path} is not a readable PyTorch weight file ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}): check the file") from None
    for key in ("state_dict", "model", "model_state"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} is not a state dict of tensors: save one with "
                              "torch.save(model.state_dict(), path)")
    state = dict(obj)
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def state_dict_mismatch(expected: Mapping[str, torch.Size], found: Mapping[str, torch.Size]) -> str | None:
    """A one-line description of how ``found`` tensor shapes differ from ``expected``, or None."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    shapes = [k for k in expected if k in found and tuple(expected[k]) != tuple(found[k])]
    parts = []
    if shapes:
        parts.append(f"{len(shapes)} shape mismatches (" + "; ".join(
            f"{k}: file {list(found[k])} vs model {list(expected[k])}" for k in shapes[:_SHOWN]) + _more(shapes) + ")")
    if missing:
        parts.append(f"{len(missing)} missing tensors ({', '.join(missing[:_SHOWN])}{_more(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected tensors ({', '.join(unexpected[:_SHOWN])}{_more(unexpected)})")
    return ", ".join(parts) if parts else None


def load_checked(model: torch.nn.Module, state: Mapping[str, torch.Tensor], what: str, fix: str) -> None:
    """Load ``state`` into ``model`` strictly, after naming every tensor or shape that differs.

    The message reads ``"<what>: <mismatch>; <fix>"``, one line, as a CheckpointError.
    """
    expected = {k: v.shape for k, v in model.state_dict().items()}
    problem = state_dict_mismatch(expected, {k: v.shape for k, v in state.items()})
    if problem:
        raise CheckpointError(f"{what}: {problem}; {fix}")
    model.load_state_dict(dict(state), strict=True)


def _more(items: list) -> str:
    return f", ... {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
