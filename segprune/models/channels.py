"""Per-layer channel counts, so a pruned model rebuilds from its config alone.

torch-pruning edits modules in place; the result can no longer be built by its constructor
call. Instead of pickling the whole model (as torch-pruning does), a checkpoint records the
shape of each module that differs from the default build (:func:`channel_diff`), and
:func:`apply_channel_overrides` gives those modules the recorded shape before the weights
are loaded.

Two kinds of entry. ``Conv2d``, ``BatchNorm2d`` and ``Linear`` (and their subclasses: timm's
``Conv2dSame``, EfficientNet's static-padding convs, timm's ``BatchNormAct2d``...) record their
channel fields, ``{"type": "Conv2d", "in_channels", "out_channels", "groups"}``, from which
the tensor shapes follow. Every other module with tensors of its own (``LayerNorm``,
``GroupNorm``, a layer-scale ``gamma``, attention's packed projections) records
``{"type": "tensors", "tensors": {name: shape}, "attrs": {name: int or list of ints}}``: the
shapes of its own parameters and buffers and its integer attributes (``normalized_shape``,
``num_channels``...). A module is resized in place of being constructed again: a copy
keeps its class and every other attribute (kernel, stride, padding and its mode, dilation,
bias presence), so subclasses whose constructors take other arguments rebuild alike.
"""

from __future__ import annotations

import math
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
TENSORS = "tensors"  # the entry type of every other module with tensors of its own


def _kind(module: nn.Module) -> str | None:
    if isinstance(module, nn.Conv2d):
        return "Conv2d"
    if isinstance(module, nn.BatchNorm2d):
        return "BatchNorm2d"
    if isinstance(module, nn.Linear):
        return "Linear"
    if module._parameters or module._buffers:
        return TENSORS
    return None


def _int_attrs(module: nn.Module) -> dict[str, Any]:
    """The integer (or tuple-of-integers) attributes of a module: the widths its forward may read."""
    attrs = {}
    for key, value in vars(module).items():
        if key.startswith("_") or isinstance(value, bool):
            continue
        if isinstance(value, int):
            attrs[key] = value
        elif isinstance(value, (tuple, list)) and value and all(isinstance(v, int) and not isinstance(v, bool)
                                                                for v in value):
            attrs[key] = list(value)
    return attrs


def _entry(module: nn.Module, kind: str) -> dict[str, Any]:
    if kind != TENSORS:
        return {"type": kind, **{f: int(getattr(module, f)) for f in _FIELDS[kind]}}
    tensors = {**module._parameters, **module._buffers}
    return {"type": TENSORS, "tensors": {n: list(t.shape) for n, t in tensors.items() if t is not None},
            "attrs": _int_attrs(module)}


def channel_plan(model: nn.Module) -> dict[str, dict[str, Any]]:
    """``{module name: entry}`` (module docstring) for every module that holds tensors of its own."""
    plan = {}
    for name, module in model.named_modules():
        kind = _kind(module)
        if kind is not None:
            plan[name] = _entry(module, kind)
    return plan


def apply_channel_overrides(model: nn.Module, overrides: dict[str, dict[str, Any]]) -> nn.Module:
    """Give each named module the recorded shape (module docstring); returns ``model``.

    The resized tensors are zeros: load weights afterwards.
    """
    for name, spec in overrides.items():
        try:
            old = model.get_submodule(name) if name else None
        except AttributeError:
            old = None
        kind = _kind(old) if old is not None else None
        if kind is None:
            raise ConfigError(f"channel_overrides names {name!r}, which is not a Conv2d/BatchNorm2d/Linear or a module "
                              "with tensors of this model: the overrides were made for another arch or backbone; "
                              "check the config")
        if not isinstance(spec, dict) or spec.get("type") != kind:
            raise ConfigError(f"channel_overrides[{name!r}] = {spec} does not describe a {kind}: regenerate the "
                              "overrides with channel_diff(model, reference)")
        try:
            new = _resized(old, kind, spec)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"channel_overrides[{name!r}] = {spec} cannot be built ({exc}): "
                              "regenerate the overrides with channel_diff(model, reference)") from None
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, new)
    return model


def _shapes(old: nn.Module, kind: str, spec: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[int]]]:
    """The attributes to set and the shape of every own tensor, checked (ValueError/TypeError when impossible)."""
    if kind == TENSORS:
        attrs, tensors = spec.get("attrs", {}), spec.get("tensors", {})
        if not isinstance(attrs, dict) or not isinstance(tensors, dict):
            raise TypeError("'attrs' and 'tensors' must be objects")
        own = {**old._parameters, **old._buffers}
        if set(tensors) != {n for n, t in own.items() if t is not None}:
            raise ValueError(f"the module holds tensors {sorted(own)}, the entry names {sorted(tensors)}")
        for key, value in attrs.items():
            if not (isinstance(value, int) or (isinstance(value, list) and all(isinstance(v, int) for v in value))):
                raise TypeError(f"attribute {key} must be an int or a list of ints")
        return ({k: tuple(v) if isinstance(v, list) else v for k, v in attrs.items()},
                {n: _checked_shape(n, shape) for n, shape in tensors.items()})
    fields = _FIELDS[kind]
    if not all(isinstance(spec.get(f), int) and not isinstance(spec.get(f), bool) and spec[f] > 0 for f in fields):
        raise ValueError(f"it needs positive ints for {list(fields)}")
    if kind == "Conv2d":
        cin, cout, groups = spec["in_channels"], spec["out_channels"], spec["groups"]
        if cin % groups or cout % groups:
            raise ValueError(f"in_channels {cin} and out_channels {cout} must be divisible by groups {groups}")
        shapes = {"weight": [cout, cin // groups, *old.kernel_size], "bias": [cout]}
    elif kind == "BatchNorm2d":
        c = spec["num_features"]
        shapes = {"weight": [c], "bias": [c], "running_mean": [c], "running_var": [c]}
    else:
        shapes = {"weight": [spec["out_features"], spec["in_features"]], "bias": [spec["out_features"]]}
    return {f: spec[f] for f in fields}, shapes


def _checked_shape(name: str, shape: Any) -> list[int]:
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ValueError(f"the shape of {name} must be a list of non-negative ints, got {shape!r}")
    return shape


def _resized(old: nn.Module, kind: str, spec: dict[str, Any]) -> nn.Module:
    """A copy of ``old`` (same class, same other attributes) with the recorded widths and zero tensors of their shapes."""
    attrs, shapes = _shapes(old, kind, spec)
    new = old.__class__.__new__(old.__class__)
    new.__dict__.update(old.__dict__)
    for key in ("_parameters", "_buffers", "_modules"):
        new.__dict__[key] = old.__dict__[key].copy()
    for key, value in attrs.items():
        setattr(new, key, value)
    for container in (new._parameters, new._buffers):
        for tensor_name, tensor in container.items():
            if tensor is None or tensor_name not in shapes:
                continue
            if math.prod(shapes[tensor_name]) > (1 << 40):
                raise ValueError(f"{tensor_name} of shape {shapes[tensor_name]} is absurdly large")
            fresh = torch.zeros(shapes[tensor_name], device=tensor.device, dtype=tensor.dtype)
            container[tensor_name] = (nn.Parameter(fresh, requires_grad=tensor.requires_grad)
                                      if isinstance(tensor, nn.Parameter) else fresh)
    return new


def channel_overrides_of(model: nn.Module) -> dict[str, dict[str, Any]]:
    """The entries of ``channel_plan(model)`` that differ from a fresh build of ``model.config``.

    The reference model is built on the ``meta`` device, so this costs no memory or
    initialisation time.
    """
    from segprune.models.registry import build_model

    config = replace(model.config, channel_overrides={}, backbone_weights=None)
    with torch.device("meta"):
        return channel_diff(model, build_model(config))


def channel_diff(model: nn.Module, reference: nn.Module | dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The entries of ``channel_plan(model)`` that differ from ``reference`` (the same architecture unpruned, or
    its :func:`channel_plan`).

    Only channel edits are representable: a model whose module set differs from the
    reference raises ConfigError.
    """
    expected = reference if isinstance(reference, dict) else channel_plan(reference)
    plan = channel_plan(model)
    missing = [n for n in expected if n not in plan]
    extra = [n for n in plan if n not in expected]
    if missing or extra:
        raise ConfigError(f"the model's layers differ from what its config builds (missing {missing[:3]}, "
                          f"extra {extra[:3]}): only channel pruning can be saved; keep the module structure")
    return {name: spec for name, spec in plan.items() if spec != expected[name]}
