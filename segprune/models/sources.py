"""Opening the model a user has, whatever library made it: ``load_model(path, arch=...)``.

Three ways in, all without unpickling:

- a segprune checkpoint (``.safetensors`` with a segprune header), any family, pruned or not;
- a folder written by SMP's ``model.save_pretrained(dir)`` (``config.json`` +
  ``model.safetensors``);
- a folder ``segprune prune --out`` or ``train --out`` wrote (:data:`FOLDER_CHECKPOINTS`);
- a plain weights file (``.safetensors``, or ``.pth``/``.pt`` read with
  ``weights_only=True``) plus an architecture description: ``arch="smp:DeepLabV3Plus"``
  with ``encoder`` and ``classes``, ``arch="tv:deeplabv3_resnet50"`` (torchvision's; its
  auxiliary head is dropped) with ``classes``, or a segprune model name such as
  ``"deeplabv3plus_resnet18"`` with ``classes``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from segprune.choices import ARCH_HELP
from segprune.errors import CheckpointError, ConfigError
from segprune.models.files import load_checked, load_state_dict_file, sniff_format

SMP_PREFIX = "smp:"
TV_PREFIX = "tv:"


def is_segprune_checkpoint(path: Path) -> bool:
    """A ``.safetensors`` file whose header carries segprune's key."""
    from safetensors import safe_open

    from segprune.models.checkpoint import HEADER_KEY

    if not path.is_file() or sniff_format(path) != "safetensors":
        return False
    try:
        with safe_open(str(path), framework="pt") as handle:
            return HEADER_KEY in (handle.metadata() or {})
    except Exception:  # a broken file: load_checkpoint says what is wrong with it
        return True


def is_smp_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder written by SMP's ``save_pretrained`` (``config.json`` with ``_model_class``)."""
    config = Path(path) / "config.json"
    if not config.is_file():
        return False
    try:
        return "_model_class" in json.loads(config.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError, TypeError):
        return False


FOLDER_CHECKPOINTS = ("model.safetensors", "last.safetensors")
"""What a folder segprune wrote holds, in the order taken: ``prune --out``'s compressed model, then the last
epoch of ``train --out`` (the end of its schedule; pass ``best.safetensors`` itself for the best epoch)."""


def segprune_checkpoint_in(folder: Path) -> Path | None:
    """The segprune checkpoint a folder written by ``prune --out`` or ``train --out`` holds, or None."""
    return next((folder / n for n in FOLDER_CHECKPOINTS if is_segprune_checkpoint(folder / n)), None)


def is_model_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder that holds a model: SMP's ``save_pretrained`` or one segprune wrote."""
    path = Path(path)
    return path.is_dir() and (is_smp_dir(path) or segprune_checkpoint_in(path) is not None)


def build_arch(arch: str, *, encoder: str | None = None, classes: int | None = None,
               aux: bool = False) -> nn.Module:
    """An untrained model from an architecture description (see the module docstring)."""
    if classes is None or isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
        raise ConfigError(f"--classes {classes!r} is needed with --arch {arch}: the number of classes the weights "
                          "predict, e.g. --classes 11")
    if encoder and not arch.startswith(SMP_PREFIX):
        raise ConfigError(f"--encoder applies to smp: architectures; {arch} names its backbone in the model name")
    if arch.startswith(TV_PREFIX):
        from segprune.models.tv import build_tv

        return build_tv(arch[len(TV_PREFIX):], classes, aux=aux)
    if arch.startswith(SMP_PREFIX):
        from segprune.models.smp import build_smp

        if not encoder:
            raise ConfigError(f"--arch {arch} needs --encoder, the SMP encoder name the weights were trained with "
                              "(e.g. resnet34, mobilenet_v2)")
        return build_smp(arch[len(SMP_PREFIX):], {"encoder_name": encoder, "classes": classes})
    from segprune.models.registry import create_model

    return create_model(arch, num_classes=classes)


def load_model(source: str | os.PathLike, *, arch: str | None = None, encoder: str | None = None,
               classes: int | None = None, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """The model at ``source`` (module docstring) in eval mode on ``map_location``, and what it is.

    The returned info holds ``path``, ``kind`` (``checkpoint``, ``smp-folder`` or
    ``weights``), ``family`` and ``metadata`` (a segprune checkpoint's saved metadata).
    """
    from segprune.models.adapters import adapter_for
    from segprune.models.checkpoint import load_checkpoint

    path = Path(source)
    if not path.exists():
        raise CheckpointError(f"model {path} does not exist: pass a segprune checkpoint, an SMP save_pretrained "
                              "folder, or a weights file with --arch")
    if path.is_dir() and not is_smp_dir(path):
        inside = segprune_checkpoint_in(path)
        if inside is None:
            raise CheckpointError(f"{path} is a folder but neither one written by SMP's save_pretrained (config.json "
                                  f"with _model_class) nor by segprune ({' or '.join(FOLDER_CHECKPOINTS)}): pass the "
                                  "checkpoint file, or save the model with model.save_pretrained(dir)")
        model, info = load_checkpoint(inside, map_location=map_location)
        return model, {**info, "kind": "checkpoint", "folder": str(path)}
    if path.is_dir():
        from segprune.models.smp import load_smp_dir

        model, kind, meta = load_smp_dir(path), "smp-folder", {}
    elif arch is None and is_segprune_checkpoint(path):
        model, info = load_checkpoint(path, map_location=map_location)
        return model, {**info, "kind": "checkpoint"}
    elif arch is None:
        fmt = sniff_format(path)
        what = "a PyTorch pickle" if fmt in ("zip-pickle", "pickle") else f"a {fmt} file"
        raise CheckpointError(f"{path} is {what} without a segprune header: say what network the weights are for "
                              f"with --arch ({ARCH_HELP}); a whole pickled model is never loaded: save "
                              "model.state_dict() with torch.save, or use SMP's model.save_pretrained(dir)")
    else:
        state = load_state_dict_file(path)
        # torchvision's auxiliary head: built when the weights hold it, so they load strictly, then dropped
        aux = arch.startswith(TV_PREFIX) and any(k.startswith("aux_classifier.") for k in state)
        model = build_arch(arch, encoder=encoder, classes=classes, aux=aux)
        load_checked(model, state, f"weights {path} do not match --arch {arch}"
                     + (f" --encoder {encoder}" if encoder else "") + f" --classes {classes}",
                     "check the architecture options against how the model was built")
        if aux:
            from segprune.models.tv import logits_only_

            logits_only_(model, aux="drop")
        kind, meta = "weights", {}
    adapter = adapter_for(model)
    model.to(torch.device(map_location))
    return model.eval(), {"path": str(path), "kind": kind, "family": adapter.family, "metadata": meta,
                          "config": adapter.config_of(model)}


def load_model_for_data(source: str | os.PathLike, num_classes: int | None, *, arch: str | None = None,
                        encoder: str | None = None, classes: int | None = None,
                        map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """:func:`load_model`, refused when the model predicts other than ``num_classes`` classes (None: unchecked).

    A model trained on other classes would be scored, pruned and fine-tuned against labels
    it does not know; the user hears so before any of that work.
    """
    from segprune.models.adapters import model_info

    model, info = load_model(source, arch=arch, encoder=encoder, classes=classes, map_location=map_location)
    predicted = model_info(model)["num_classes"]
    if num_classes is not None and predicted != num_classes:
        raise CheckpointError(f"model {source} predicts {predicted} classes, the data has {num_classes}: "
                              "pass the dataset the model was trained on")
    return model, info
