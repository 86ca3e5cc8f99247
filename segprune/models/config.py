"""``ModelConfig``: everything needed to rebuild a model without pickle.

A checkpoint stores this config as JSON next to its safetensors weights; the model is
rebuilt from it (channel counts after pruning included) and the weights are loaded with
strict checking. So every field must be JSON-safe, every value checked once, and every
error must name the key, the value and what would be valid.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from segprune.errors import ConfigError
from segprune.models.grid import RESIZE_MODES, check_keep

ARCHS = ("deeplabv3plus", "dan")
BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "mobilenet_v2", "mobilenet_v3_large")
OUTPUT_STRIDES = (8, 16)
# DeepLab's hand-tuned rates for 513 crops; RESEARCH.md section 3 derives r ~ min(H, W) / (6 * OS).
DEFAULT_ATROUS_RATES = {16: (6, 12, 18), 8: (12, 24, 36)}
# The backbone stages DAN's decoder aggregates, finest first, and their default projection widths.
DAN_STAGES = ("layer1", "layer2")
DEFAULT_LOW_LEVEL = {"deeplabv3plus": 48, "dan": (48, 96)}
REQUIRED = ("arch", "backbone", "num_classes")


@dataclass
class ModelConfig:
    """The architecture of one segmentation model.

    ``atrous_rates`` and ``low_level_channels`` default to ``None``, meaning "the usual value
    for this arch and output stride"; :meth:`resolved` fills them in, and models keep the
    resolved copy so a checkpoint never depends on a default that may change later.
    ``low_level_channels`` is one int for DeepLabV3+ (the layer1 projection) and one int per
    stage in ``DAN_STAGES`` for DAN (an int is used for every stage).
    ``decoder_keep`` is the per-axis fraction of the decoder grid kept (``--keep-freq``).
    ``channel_overrides`` maps module names to the shapes recorded by ``channel_plan`` for the
    modules that pruning changed; it is empty for a model as built.
    ``atrous_rule`` records where derived rates came from (``"auto:min:HxW"``, see
    ``segprune.models.atrous``) and is ``None`` for rates given by hand or by default; it is
    left out of :meth:`to_dict` when ``None``, so such configs read exactly as before.
    """

    arch: str
    backbone: str
    num_classes: int
    output_stride: int = 16
    atrous_rates: tuple[int, int, int] | None = None
    aspp_channels: int = 256
    low_level_channels: int | tuple[int, ...] | None = None
    decoder_channels: int = 256
    decoder_keep: float = 1.0
    decoder_resize: str = "bilinear"
    channel_overrides: dict[str, dict] = field(default_factory=dict)
    backbone_weights: str | None = None
    atrous_rule: str | None = None

    def validate(self) -> ModelConfig:
        """Check every field; raise ConfigError naming the key and the valid values."""
        _choice("arch", self.arch, ARCHS)
        _choice("backbone", self.backbone, BACKBONES)
        _positive_int("num_classes", self.num_classes)
        _choice("output_stride", self.output_stride, OUTPUT_STRIDES)
        if isinstance(self.atrous_rates, str) and self.atrous_rates.lower() == "auto":
            raise ConfigError("model config: atrous_rates 'auto' must be resolved before building: use "
                              "create_model(..., atrous_rates='auto', input_size=(H, W)) with the training crop")
        if self.atrous_rates is not None:
            rates = self.atrous_rates
            if not isinstance(rates, (tuple, list)) or len(rates) != 3 or not all(_is_pos_int(r) for r in rates):
                raise ConfigError(f"model config: atrous_rates {rates!r} is not valid: give 3 positive ints, "
                                  f"e.g. {list(DEFAULT_ATROUS_RATES[16])}")
        _positive_int("aspp_channels", self.aspp_channels)
        _positive_int("decoder_channels", self.decoder_channels)
        self._validate_low_level()
        if not isinstance(self.decoder_keep, (int, float)):
            raise ConfigError(f"model config: decoder_keep {self.decoder_keep!r} is not valid: use a number in (0, 1], "
                              "1 keeps the full decoder grid")
        check_keep(self.decoder_keep, "model config: decoder_keep")
        _choice("decoder_resize", self.decoder_resize, RESIZE_MODES)
        if not isinstance(self.channel_overrides, dict) or not all(
                isinstance(k, str) and isinstance(v, dict) for k, v in self.channel_overrides.items()):
            raise ConfigError("model config: channel_overrides must map module names to dicts "
                              "(as written by segprune.models.channel_overrides_of)")
        if self.backbone_weights is not None and not isinstance(self.backbone_weights, str):
            raise ConfigError(f"model config: backbone_weights {self.backbone_weights!r} is not valid: "
                              "give a file path or null")
        if self.atrous_rule is not None and not isinstance(self.atrous_rule, str):
            raise ConfigError(f"model config: atrous_rule {self.atrous_rule!r} is not valid: give a string such "
                              "as 'auto:min:360x480' or null")
        return self

    def _validate_low_level(self) -> None:
        value = self.low_level_channels
        if value is None or _is_pos_int(value):
            return
        n = len(DAN_STAGES) if self.arch == "dan" else 1
        if isinstance(value, (tuple, list)) and len(value) == n and all(_is_pos_int(v) for v in value):
            return
        example = list(DEFAULT_LOW_LEVEL["dan"]) if self.arch == "dan" else DEFAULT_LOW_LEVEL["deeplabv3plus"]
        raise ConfigError(f"model config: low_level_channels {value!r} is not valid for {self.arch}: give one "
                          f"positive int or {n} (one per stage {', '.join(DAN_STAGES[:n])}), e.g. {example}")

    def resolved(self) -> ModelConfig:
        """A validated copy with the arch- and stride-dependent defaults filled in."""
        self.validate()
        rates = tuple(self.atrous_rates or DEFAULT_ATROUS_RATES[self.output_stride])
        low = self.low_level_channels
        if low is None:
            low = DEFAULT_LOW_LEVEL[self.arch]
        if self.arch == "dan":
            low = (low,) * len(DAN_STAGES) if isinstance(low, int) else tuple(low)
        elif not isinstance(low, int):
            low = int(low[0])
        return replace(self, atrous_rates=rates, low_level_channels=low, decoder_keep=float(self.decoder_keep),
                       channel_overrides=copy.deepcopy(self.channel_overrides))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (tuples become lists) that :meth:`from_dict` reads back."""
        data = asdict(self)
        for key in ("atrous_rates", "low_level_channels"):
            if isinstance(data[key], tuple):
                data[key] = list(data[key])
        if data["atrous_rule"] is None:
            del data["atrous_rule"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build and validate a config; unknown or missing keys raise ConfigError."""
        if not isinstance(data, dict):
            raise ConfigError(f"model config must be a JSON object, got {type(data).__name__}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"model config: unknown keys {unknown}; valid keys are {known}")
        missing = [k for k in REQUIRED if k not in data]
        if missing:
            raise ConfigError(f"model config: missing keys {missing}; every config needs {list(REQUIRED)}")
        data = dict(data)
        for key in ("atrous_rates", "low_level_channels"):
            if isinstance(data.get(key), list):
                data[key] = tuple(data[key])
        if data.get("channel_overrides") is None:
            data["channel_overrides"] = {}
        return cls(**data).validate()


def _is_pos_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _positive_int(key: str, value: Any) -> None:
    if not _is_pos_int(value):
        raise ConfigError(f"model config: {key} {value!r} is not valid: use a positive int")


def _choice(key: str, value: Any, valid: tuple) -> None:
    if type(value) is not type(valid[0]) or value not in valid:
        raise ConfigError(f"model config: {key} {value!r} is not valid: use one of "
                          f"{', '.join(str(v) for v in valid)}")
