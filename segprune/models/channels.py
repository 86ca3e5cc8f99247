"""Per-layer channel counts, so a pruned model rebuilds from its config alone.

torch-pruning edits Conv2d/BatchNorm2d/Linear modules in place; the result can no longer be
built by ``build_model(config)``. Instead of pickling the whole model (as torch-pruning
does), a checkpoint records the constructor-relevant shape of each module that differs from
the default build (``channel_overrides_of``), and ``apply_channel_overrides`` replaces those
modules with new ones of the recorded shape before the weights are loaded. Kernel size,
stride, padding, dilation and bias presence always come from the default build.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import nn

from segprune.errors import ConfigError

_FIELDS = {
    "Conv2d": ("in_channels", "out_channels", "groups"),
    "BatchNorm2d": ("num_features",),
    "Linear": ("in_features", "out_features"),
}


def _kind(module: nn.Module) -> str | None:
    if isinstance(module, nn.Conv2d):
        return "Conv2d"
    if isinstance(module, nn.BatchNorm2d):
        return "BatchNorm2d"
    if isinstance(module, nn.Linear):
        return "Linear"
    return None


def channel_plan(model: nn.Module) -> dict[str, dict[str, Any]]:
    """``{module name: {"type": ..., channel fields...}}`` for every Conv2d, BatchNorm2d and Linear."""
    plan = {}
    for name, module in model.named_modules():
        kind = _kind(module)
        if kind is not None:
            plan[name] = {"type": kind, **{f: int(getattr(module, f)) for f in _FIELDS[kind]}}
    return plan


def apply_channel_overrides(model: nn.Module, overrides: dict[str, dict[str, Any]]) -> nn.Module:
    """Replace each named module by a fresh one with the recorded channels; returns ``model``.

    The new modules are freshly initialised: load weights afterwards.
    """
    for name, spec in overrides.items():
        try:
            old = model.get_submodule(name) if name else None
        except AttributeError:
            old = None
        kind = _kind(old) if old is not None else None
        if kind is None:
            raise ConfigError(f"channel_overrides names {name!r}, which is not a Conv2d/BatchNorm2d/Linear of this "
                              "model: the overrides were made for another arch or backbone; check the config")
        wanted = [f for f in _FIELDS[kind]]
        if spec.get("type") != kind or not all(isinstance(spec.get(f), int) and spec[f] > 0 for f in wanted):
            raise ConfigError(f"channel_overrides[{name!r}] = {spec} does not describe a {kind}: it needs "
                              f"'type': {kind!r} and positive ints for {wanted}")
        try:
            new = _rebuild(old, kind, spec)
        except ValueError as exc:
            raise ConfigError(f"channel_overrides[{name!r}] = {spec} cannot be built ({exc}): "
                              "regenerate the overrides with channel_overrides_of(model)") from None
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, new)
    return model


def _rebuild(old: nn.Module, kind: str, spec: dict[str, Any]) -> nn.Module:
    like = {"device": old.weight.device if getattr(old, "weight", None) is not None else None,
            "dtype": old.weight.dtype if getattr(old, "weight", None) is not None else None}
    if kind == "Conv2d":
        return type(old)(spec["in_channels"], spec["out_channels"], old.kernel_size, stride=old.stride,
                         padding=old.padding, dilation=old.dilation, groups=spec["groups"],
                         bias=old.bias is not None, padding_mode=old.padding_mode, **like)
    if kind == "BatchNorm2d":
        return type(old)(spec["num_features"], eps=old.eps, momentum=old.momentum, affine=old.affine,
                         track_running_stats=old.track_running_stats, **like)
    return type(old)(spec["in_features"], spec["out_features"], bias=old.bias is not None, **like)


def channel_overrides_of(model: nn.Module) -> dict[str, dict[str, Any]]:
    """The entries of ``channel_plan(model)`` that differ from a fresh build of ``model.config``.

    The reference model is built on the ``meta`` device, so this costs no memory or
    initialisation time.
    """
    from segprune.models.registry import build_model

    config = replace(model.config, channel_overrides={}, backbone_weights=None)
    with torch.device("meta"):
        return channel_diff(model, build_model(config))


def channel_diff(model: nn.Module, reference: nn.Module) -> dict[str, dict[str, Any]]:
    """The entries of ``channel_plan(model)`` that differ from ``reference`` (the same architecture, unpruned).

    Only channel edits are representable: a model whose module set differs from the
    reference raises ConfigError.
    """
    expected = channel_plan(reference)
    plan = channel_plan(model)
    missing = [n for n in expected if n not in plan]
    extra = [n for n in plan if n not in expected]
    if missing or extra:
        raise ConfigError(f"the model's layers differ from what its config builds (missing {missing[:3]}, "
                          f"extra {extra[:3]}): only channel pruning can be saved; keep the module structure")
    return {name: spec for name, spec in plan.items() if spec != expected[name]}
