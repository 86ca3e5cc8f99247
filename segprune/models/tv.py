"""torchvision's segmentation models: ``deeplabv3_*``, ``fcn_*`` and ``lraspp_mobilenet_v3_large``.

torchvision's models return ``{"out": logits, "aux": ...}``; every segprune stage (evaluation,
fine-tuning, parity, ONNX export with one ``logits`` output) runs a model for its logits tensor.
:func:`logits_only_` makes a torchvision model segprune's, once, in place and explicitly: its
class becomes a subclass of its own (still a ``torchvision.models.segmentation.DeepLabV3``)
whose forward returns the upsampled ``out`` logits, computed exactly as torchvision does, and
never computes the auxiliary head. ``aux="drop"`` (the default) deletes that head; ``"keep"``
keeps its weights in the model and its checkpoints, for the user's own training, but then the
channels cannot be pruned (the head reads a backbone stage whose width pruning would change).
Files go through :func:`segprune.load_model` with ``arch="tv:deeplabv3_resnet50"``, which does
this itself (dropping the head).

Truncation: these decoders run at the backbone's output stride (8; 16 for DeepLabV3 on
MobileNetV3), on one grid, so a truncated model resamples the backbone's output (LR-ASPP: its
stride-8 branch, and the stride-16 branch is upsampled to the same grid) to
``decoder_grid(..., keep)`` before the classifier, which then runs there; the logits are
upsampled to the input once, as torchvision already does.

Saved form: ``{"builder": "deeplabv3_resnet50", "num_classes", "aux", "keep_freq", "resize",
"channel_overrides"}``; rebuilt with ``weights=None, weights_backbone=None`` (nothing is downloaded).
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import segmentation as tvseg

from segprune.errors import ConfigError, first_line
from segprune.models.adapters import ModelAdapter, register_adapter
from segprune.models.grid import RESIZE_MODES, check_keep, decoder_grid, resize_to_grid

BUILDERS = ("deeplabv3_resnet50", "deeplabv3_resnet101", "deeplabv3_mobilenet_v3_large", "fcn_resnet50",
            "fcn_resnet101", "lraspp_mobilenet_v3_large")
"""The torchvision builders segprune takes (``--arch tv:NAME``)."""
_CLASSES = (tvseg.DeepLabV3, tvseg.FCN, tvseg.LRASPP)
_NAME_ATTR = "_segprune_builder"


def build_tv(builder: str, num_classes: int, aux: bool = False) -> nn.Module:
    """``torchvision.models.segmentation.<builder>(weights=None, weights_backbone=None, ...)``, logits only."""
    if builder not in BUILDERS:
        raise ConfigError(f"torchvision model {builder!r} is not one segprune takes: use one of {', '.join(BUILDERS)}")
    kwargs: dict[str, Any] = {"weights": None, "weights_backbone": None, "num_classes": num_classes}
    if not builder.startswith("lraspp"):
        kwargs["aux_loss"] = aux
    try:
        model = getattr(tvseg, builder)(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"torchvision cannot build {builder} ({first_line(exc)}): check --classes") from None
    setattr(model, _NAME_ATTR, builder)
    return logits_only_(model, aux="keep" if aux else "drop")


def _builder_of(model: nn.Module) -> str:
    """The builder a torchvision model came from: recorded, else the one whose unpruned build has its tensors."""
    name = getattr(model, _NAME_ATTR, None)
    if name:
        return name
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.startswith("aux_classifier.")}
    classes = _head(model).out_channels
    for builder in BUILDERS:
        if type(model).__name__.lower() not in builder.replace("_", ""):
            continue
        with torch.device("meta"):
            candidate = getattr(tvseg, builder)(weights=None, weights_backbone=None, num_classes=classes)
        if {k: tuple(v.shape) for k, v in candidate.state_dict().items() if not k.startswith("aux_classifier.")} == shapes:
            return builder
    raise ConfigError(f"this torchvision {type(model).__name__} matches none of {', '.join(BUILDERS)} (was it "
                      "pruned already, or built with other options?): call segprune.models.logits_only_ on the "
                      "model as torchvision built it")


def _head(model: nn.Module) -> nn.Conv2d:
    return model.classifier.low_classifier if isinstance(model, tvseg.LRASPP) else model.classifier[-1]


class _Logits:
    """Mixin before a torchvision segmentation class: the forward returns the ``out`` logits tensor (module docstring)."""

    keep: float = 1.0
    resize: str = "area"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone(x)
        if isinstance(self, tvseg.LRASPP):
            low, high, head = features["low"], features["high"], self.classifier
            grid = decoder_grid(low.shape[-2], low.shape[-1], self.keep)
            y = F.interpolate(head.cbr(high) * head.scale(high), size=grid, mode="bilinear", align_corners=False)
            out = head.low_classifier(resize_to_grid(low, grid, self.resize)) + head.high_classifier(y)
        else:
            f = features["out"]
            out = self.classifier(resize_to_grid(f, decoder_grid(f.shape[-2], f.shape[-1], self.keep), self.resize))
        return F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)


@functools.cache
def _logits_class(cls: type) -> type:
    return type(cls.__name__, (_Logits, cls), {"__module__": __name__, "__qualname__": cls.__qualname__})


def logits_only_(model: nn.Module, aux: str = "drop") -> nn.Module:
    """Make a torchvision segmentation model return its ``out`` logits tensor (module docstring); returns it.

    ``aux``: ``"drop"`` deletes the auxiliary head, ``"keep"`` keeps it (not run; channels then
    cannot be pruned). Calling it again is harmless.
    """
    if aux not in ("drop", "keep"):
        raise ConfigError(f"aux={aux!r} is not valid: use 'drop' (delete the auxiliary head) or 'keep'")
    if not isinstance(model, _CLASSES):
        raise ConfigError(f"logits_only_ takes torchvision's DeepLabV3, FCN or LRASPP, got {type(model).__name__}")
    setattr(model, _NAME_ATTR, _builder_of(model))
    if aux == "drop" and getattr(model, "aux_classifier", None) is not None:
        model.aux_classifier = None
    if not isinstance(model, _Logits):
        model.__class__ = _logits_class(type(model))
    return model


@register_adapter
class TorchvisionAdapter(ModelAdapter):
    """torchvision's DeepLabV3, FCN and LR-ASPP, made to return logits by :func:`logits_only_`."""

    family = "torchvision"

    def matches(self, model: nn.Module) -> bool:
        return isinstance(model, _CLASSES)

    def check_supported(self, model: nn.Module) -> None:
        if not isinstance(model, _Logits):
            raise ConfigError(f"this torchvision {type(model).__name__} returns a dict ({{'out': ..., 'aux': ...}}); "
                              "segprune runs models for their logits: call segprune.models.logits_only_(model) first "
                              "(aux='drop' deletes the auxiliary head, 'keep' keeps it)")

    def check_prunable(self, model: nn.Module) -> None:
        if getattr(model, "aux_classifier", None) is not None:
            raise ConfigError("the auxiliary head reads a backbone stage whose channels pruning changes: drop it "
                              "first with segprune.models.logits_only_(model, aux='drop')")

    def scopes_of(self, model: nn.Module) -> dict[str, tuple[str, ...]]:
        if isinstance(model, tvseg.LRASPP):
            decoder = head = ("classifier.cbr", "classifier.scale")
        elif isinstance(model, tvseg.DeepLabV3):
            decoder, head = ("classifier.1",), ("classifier.0", "classifier.1")
        else:
            decoder = head = ("classifier.0",)
        return {"decoder": decoder, "head": head, "all": ("backbone", *head)}

    def features_of(self, model: nn.Module) -> tuple[str, ...]:
        if isinstance(model, tvseg.LRASPP):
            return ("classifier.cbr",)
        return ("classifier.3",) if isinstance(model, tvseg.DeepLabV3) else ("classifier.2",)

    def decoder_stride(self, model: nn.Module) -> int:
        key = "low" if isinstance(model, tvseg.LRASPP) else "out"
        with torch.no_grad():
            side = self.meta_copy(model).backbone(torch.zeros(1, 3, 256, 256, device="meta"))[key].shape[-1]
        return 256 // int(side)

    def describe(self, model: nn.Module) -> str:
        return f"torchvision {_builder_of(model)}"

    def config_of(self, model: nn.Module) -> dict[str, Any]:
        from segprune.models.channels import channel_diff

        keep, mode = self.truncation(model)
        aux = getattr(model, "aux_classifier", None) is not None
        builder, classes = _builder_of(model), self.num_classes(model)
        return {"builder": builder, "num_classes": classes, "aux": aux, "keep_freq": keep, "resize": mode,
                "channel_overrides": channel_diff(model, _reference_plan(builder, classes, aux))}

    def build(self, config: dict[str, Any]) -> nn.Module:
        from segprune.models.channels import apply_channel_overrides

        if not isinstance(config, dict) or not isinstance(config.get("num_classes"), int):
            raise ConfigError("torchvision model config must hold 'builder' and 'num_classes' (as written by "
                              "segprune's save_checkpoint)")
        model = build_tv(str(config.get("builder")), config["num_classes"], bool(config.get("aux", False)))
        if config.get("channel_overrides"):
            apply_channel_overrides(model, config["channel_overrides"])
        mode = config.get("resize", "area")
        if mode not in RESIZE_MODES:
            raise ConfigError(f"torchvision model config: resize {mode!r} is not one of {', '.join(RESIZE_MODES)}")
        self.set_truncation(model, check_keep(config.get("keep_freq", 1.0), "keep-freq"), mode)
        return model

    def reference(self, model: nn.Module) -> nn.Module:
        with torch.device("meta"):
            return build_tv(_builder_of(model), self.num_classes(model), getattr(model, "aux_classifier", None) is not None)

    def truncation(self, model: nn.Module) -> tuple[float, str]:
        return float(model.keep), str(model.resize)

    def set_truncation(self, model: nn.Module, keep: float, mode: str) -> None:
        if keep >= 1.0:
            model.__dict__.pop("keep", None)
            model.__dict__.pop("resize", None)
        else:
            model.keep, model.resize = keep, mode

    def num_classes(self, model: nn.Module) -> int:
        return int(_head(model).out_channels)

    def output_stride(self, model: nn.Module) -> int:
        return 1  # torchvision's models take any input size: they upsample to it


@functools.lru_cache(maxsize=16)
def _reference_plan(builder: str, num_classes: int, aux: bool) -> dict[str, dict[str, Any]]:
    from segprune.models.channels import channel_plan

    with torch.device("meta"):
        return channel_plan(build_tv(builder, num_classes, aux))
