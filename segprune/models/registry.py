"""Model names, in the style of torchvision's small registry (``torchvision/models/_api.py``).

A name is ``<arch>_<backbone>``, e.g. ``deeplabv3plus_resnet50`` or ``dan_mobilenet_v2``;
``create_model`` turns it and keyword overrides into a validated :class:`ModelConfig` and
builds it. Every wrong name or option is a one-line ConfigError listing what is valid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from torch import nn

from segprune.errors import ConfigError
from segprune.models.atrous import resolve_atrous_rates
from segprune.models.base import SegmentationModel
from segprune.models.config import ARCHS, BACKBONES, REQUIRED, ModelConfig
from segprune.models.dan import DAN
from segprune.models.deeplabv3plus import DeepLabV3Plus

_ARCH_CLASSES: dict[str, type[SegmentationModel]] = {"deeplabv3plus": DeepLabV3Plus, "dan": DAN}
assert tuple(_ARCH_CLASSES) == ARCHS


def list_models() -> list[str]:
    """Every name ``create_model`` accepts, arch-major, in a stable order."""
    return [f"{arch}_{backbone}" for arch in ARCHS for backbone in BACKBONES]


def override_keys() -> list[str]:
    """The config fields ``create_model`` accepts as keywords besides the name and ``num_classes``.

    ``atrous_rule`` is not one: it records what ``atrous_rates="auto"`` resolved from.
    """
    return [f.name for f in fields(ModelConfig) if f.name not in (*REQUIRED, "atrous_rule")]


def build_model(config: ModelConfig) -> nn.Module:
    """The model a config describes (channel overrides applied), freshly initialised."""
    if not isinstance(config, ModelConfig):
        raise ConfigError(f"build_model needs a ModelConfig, got {type(config).__name__}: "
                          "use ModelConfig.from_dict(...) for a dict")
    config.validate()
    return _ARCH_CLASSES[config.arch](config)


def create_model(name: str, num_classes: int, *, input_size: Sequence[int] | None = None,
                 **overrides: Any) -> nn.Module:
    """Build ``name`` (see :func:`list_models`) with ``num_classes`` outputs and config overrides.

    ``overrides`` are :class:`ModelConfig` fields, e.g. ``output_stride=8``,
    ``atrous_rates=(4, 8, 12)``, ``decoder_keep=0.5``, ``backbone_weights="resnet50.pth"``.
    ``atrous_rates="auto"`` derives the rates from ``input_size=(H, W)``, the training crop
    (:func:`segprune.models.atrous.suggest_atrous_rates`), here, at creation: the config
    keeps the resolved ints (and ``atrous_rule``), so a checkpoint never depends on the rule
    or the crop again. ``input_size`` is used for nothing else.
    """
    names = list_models()
    if name not in names:
        raise ConfigError(f"unknown model {name!r}: use one of {', '.join(names)}")
    unknown = sorted(set(overrides) - set(override_keys()))
    if unknown:
        raise ConfigError(f"unknown model options {unknown} for {name}: valid ones are {', '.join(override_keys())}")
    arch = next(a for a in ARCHS if name.startswith(a + "_"))
    stride = overrides.get("output_stride", _default("output_stride"))
    rates, rule = resolve_atrous_rates(overrides.get("atrous_rates"), input_size, stride)
    if rule is not None:
        overrides = {**overrides, "atrous_rates": rates, "atrous_rule": rule}
    config = ModelConfig.from_dict(
        {"arch": arch, "backbone": name[len(arch) + 1:], "num_classes": num_classes, **overrides})
    return build_model(config)


def _default(name: str) -> Any:
    return next(f.default for f in fields(ModelConfig) if f.name == name)
