"""segmentation_models_pytorch (SMP): one adapter for all its model classes, and loading users' files.

SMP is an optional dependency (``pip install 'segprune[smp]'``); this module imports it and
is itself imported only when an SMP model or file is met (:mod:`segprune.models.adapters`).

Every SMP model is an ``encoder``, a ``decoder`` and a ``segmentation_head``, so one adapter
serves them all: channel pruning, checkpoints and export work the same for each, and what
differs per class is a row of :data:`FAMILIES`: which decoder modules each pruning scope may
shrink, the decoder's skip projections (the fine path), the feature layers ``analyze`` and
feature distillation read, and whether the decoder can run truncated. DeepLabV3Plus, Unet,
FPN, DeepLabV3, PSPNet and Segformer can (:mod:`segprune.models.smp_decoders`); the others
compress by channels alone, and asking them for a truncated band is refused with the reason.

Saved form (inside a segprune checkpoint): ``{"class": "Unet", "init": <the keyword arguments
SMP recorded>, "keep_freq", "resize", "channel_overrides"}``; the encoder is always rebuilt
with ``encoder_weights=None`` (the weights come from the file, nothing is downloaded).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from segprune.errors import CheckpointError, ConfigError, first_line
from segprune.models.adapters import ModelAdapter, register_adapter
from segprune.models.grid import RESIZE_MODES, check_keep

try:
    import segmentation_models_pytorch as smp
except ModuleNotFoundError as exc:  # optional dependency: segprune[smp]
    raise ConfigError("segmentation_models_pytorch models need the package, which is not installed: "
                      "pip install 'segprune[smp]'") from exc

from segprune.models.smp_decoders import set_decoder_truncation, smp_class, truncatable  # noqa: E402


@dataclass(frozen=True)
class Family:
    """What differs between SMP classes (module docstring). Module names are relative to the model."""

    decoder: tuple[str, ...]
    """Scope ``decoder``: the decoder's fusion."""
    head: tuple[str, ...] = ("decoder",)
    """Scope ``head``: the fusion and the context module (ASPP, pyramid pooling); ``all`` adds the encoder."""
    skips: tuple[str, ...] = ()
    features: tuple[str, ...] = ("decoder",)
    why_not_truncated: str = ""
    """Why ``--keep-freq`` below 1 is refused; empty where the decoder runs truncated."""
    why_not_pruned: str = ""
    """Why channel pruning is refused; empty where torch-pruning can cut the model."""


FAMILIES = {
    "DeepLabV3Plus": Family(("decoder.block1", "decoder.block2"), ("decoder.aspp", "decoder.block1", "decoder.block2"),
                            skips=("decoder.block1",), features=("decoder.block2:in", "decoder.block2")),
    "Unet": Family(("decoder.blocks",)),
    "FPN": Family(("decoder",), skips=("decoder.p2",), features=("decoder.p2", "decoder")),
    "DeepLabV3": Family(("decoder.conv",), features=("decoder.aspp", "decoder")),
    "PSPNet": Family(("decoder.conv",), features=("decoder.psp", "decoder")),
    "Segformer": Family(("decoder",), features=("decoder.fuse_stage:in", "decoder")),
    "UnetPlusPlus": Family(("decoder",), why_not_truncated="its nested dense skips join every stage to every "
                                                            "finer one, so no single grid is set for the decoder; "
                                                            "use Unet or FPN for truncation"),
    "MAnet": Family(("decoder",), why_not_truncated="its attention blocks upsample by fixed factors inside "
                                                     "SMP's blocks; use Unet or FPN for truncation",
                    why_not_pruned="torch-pruning's channel grouping of its multi-scale attention blocks grows "
                                   "without bound (it exhausted 10 GB at 64x64 with torch-pruning 1.6); use Unet "
                                   "or FPN, which segprune prunes"),
    "Linknet": Family(("decoder",), why_not_truncated="its transposed convolutions fix each stage's grid at "
                                                       "twice the previous; use Unet or FPN for truncation"),
    "PAN": Family(("decoder",), why_not_truncated="its feature pyramid attention upsamples by fixed factors "
                                                   "inside SMP's blocks; use FPN for truncation"),
    "UPerNet": Family(("decoder",), why_not_truncated="its fusion sizes are taken from the stride-4 skip inside "
                                                       "SMP's decoder; use FPN for truncation"),
    "DPT": Family(("decoder",), why_not_truncated="its reassemble blocks upsample by fixed factors; use "
                                                   "Segformer or FPN for truncation"),
}
"""Every SMP model class segprune takes, by name."""


def _family(model: nn.Module) -> Family:
    return FAMILIES[smp_class(model).__name__]


def _init_kwargs(model: nn.Module) -> dict[str, Any]:
    init = getattr(model, "_hub_mixin_config", None)
    if not isinstance(init, dict):
        raise ConfigError(f"{type(model).__name__} carries no SMP construction record (_hub_mixin_config): build it "
                          "with segmentation_models_pytorch's constructor or smp.from_pretrained")
    init = json.loads(json.dumps(init, default=list))  # tuples -> lists: the JSON form
    init["encoder_weights"] = None  # the weights come from the checkpoint; never download
    return init


def build_smp(class_name: str, init: dict[str, Any]) -> nn.Module:
    """``smp.<class_name>(**init)`` with ``encoder_weights=None``; a ConfigError for what SMP refuses.

    SMP's refusal is its own (an encoder that cannot run dilated at that output stride, a timm
    model that takes no ``output_stride``): the message says it is SMP's and quotes it.
    """
    if class_name not in FAMILIES:
        raise ConfigError(f"SMP model {class_name!r} has no segprune adapter: supported are "
                          f"{', '.join(FAMILIES)}; add one with @segprune.models.register_adapter "
                          "(see segprune/models/smp.py)")
    if not isinstance(init, dict):
        raise ConfigError(f"SMP config for {class_name} must be a JSON object of constructor arguments")
    try:
        return getattr(smp, class_name)(**{**init, "encoder_weights": None})
    except (TypeError, ValueError, KeyError, RuntimeError, AssertionError) as exc:
        encoder = init.get("encoder_name", "?")
        raise ConfigError(f"SMP cannot build {class_name}(encoder_name={encoder!r}) with these options "
                          f"({type(exc).__name__}: {first_line(exc)}): this is SMP's refusal, not segprune's; "
                          "check the architecture options (DeepLabV3/DeepLabV3+ need an encoder that runs "
                          "dilated, e.g. resnet34 or efficientnet-b0)") from None


def _on_meta(build: Callable[[], nn.Module]) -> nn.Module:
    """``build()`` on the meta device where the encoder allows it, else for real: mit's constructor reads
    a tensor's value (``Tensor.item()``), which a meta tensor has not (the only encoders of the zoo that
    need it). Any other refusal is raised as it is, before anything is allocated."""
    try:
        with torch.device("meta"):
            return build()
    except ConfigError as exc:
        if "meta tensors" not in str(exc):
            raise
        return build()


@functools.lru_cache(maxsize=32)
def _reference_plan(class_name: str, init_json: str) -> dict[str, dict[str, Any]]:
    """The channel plan of the unpruned model SMP builds from ``init`` (:func:`_on_meta`), once per config."""
    from segprune.models.channels import channel_plan

    init = json.loads(init_json)
    return channel_plan(_on_meta(lambda: build_smp(class_name, init)))


@register_adapter
class SMPAdapter(ModelAdapter):
    """Every segmentation_models_pytorch model class in :data:`FAMILIES`, any encoder SMP builds offline."""

    family = "smp"

    def matches(self, model: nn.Module) -> bool:
        return isinstance(model, smp.base.SegmentationModel)

    def check_supported(self, model: nn.Module) -> None:
        name = smp_class(model).__name__
        if name not in FAMILIES:
            raise ConfigError(f"SMP model {name!r} has no segprune adapter: supported are {', '.join(FAMILIES)}")
        if getattr(model, "classification_head", None) is not None:
            raise ConfigError(f"this SMP {name} has a classification head (aux_params): segprune compresses and "
                              "exports the segmentation output only; set model.classification_head = None "
                              "(segmentation does not use it) or build the model without aux_params")

    def check_prunable(self, model: nn.Module) -> None:
        why = _family(model).why_not_pruned
        if why:
            raise ConfigError(f"SMP {smp_class(model).__name__}'s channels cannot be pruned: {why}")

    def describe(self, model: nn.Module) -> str:
        return f"smp {smp_class(model).__name__}({_init_kwargs(model).get('encoder_name', '?')})"

    def scopes_of(self, model: nn.Module) -> dict[str, tuple[str, ...]]:
        family = _family(model)
        return {"decoder": family.decoder, "head": family.head, "all": ("encoder", *family.head)}

    def features_of(self, model: nn.Module) -> tuple[str, ...]:
        return _family(model).features

    def skip_layers(self, model: nn.Module) -> tuple[str, ...]:
        return _family(model).skips

    def decoder_stride(self, model: nn.Module) -> int:
        name, encoder = smp_class(model).__name__, model.encoder
        depth = len(encoder.out_channels) - 1
        if name == "Unet":
            return 1
        if name == "FPN":
            return 2 ** (depth - 3)  # its finest level is features[-4]
        if name in ("DeepLabV3", "PSPNet"):
            return int(encoder.output_stride)
        return 4

    def config_of(self, model: nn.Module) -> dict[str, Any]:
        from segprune.models.channels import channel_diff

        keep, mode = self.truncation(model)
        return {"class": smp_class(model).__name__, "init": _init_kwargs(model), "keep_freq": keep, "resize": mode,
                "channel_overrides": channel_diff(model, self.reference_plan(model))}

    def build(self, config: dict[str, Any]) -> nn.Module:
        from segprune.models.channels import apply_channel_overrides

        if not isinstance(config, dict) or "init" not in config or "class" not in config:
            raise ConfigError("SMP model config must hold 'class' and 'init' (as written by segprune's save_checkpoint)")
        model = build_smp(config["class"], config["init"])
        overrides = config.get("channel_overrides") or {}
        if overrides:
            apply_channel_overrides(model, overrides)
        keep = check_keep(config.get("keep_freq", 1.0), "keep-freq")
        mode = config.get("resize", "area")
        if mode not in RESIZE_MODES:
            raise ConfigError(f"SMP model config: resize {mode!r} is not one of {', '.join(RESIZE_MODES)}")
        self.set_truncation(model, keep, mode)
        return model

    def skeleton(self, config: dict[str, Any]) -> nn.Module:
        return _on_meta(lambda: self.build(config))

    def reference(self, model: nn.Module) -> nn.Module:
        return self.skeleton({"class": smp_class(model).__name__, "init": _init_kwargs(model)})

    def reference_plan(self, model: nn.Module) -> dict[str, dict[str, Any]]:
        return _reference_plan(smp_class(model).__name__, json.dumps(_init_kwargs(model), sort_keys=True))

    def truncation(self, model: nn.Module) -> tuple[float, str]:
        decoder = model.decoder
        return float(getattr(decoder, "keep", 1.0)), str(getattr(decoder, "resize", "area"))

    def set_truncation(self, model: nn.Module, keep: float, mode: str) -> None:
        if keep < 1.0 and not truncatable(model.decoder):
            name = smp_class(model).__name__
            raise ConfigError(f"SMP {name} cannot run its decoder truncated ({_family(model).why_not_truncated or 'its decoder is not the class SMP builds'}): "
                              "use --keep-freq 1 to compress it by channels alone")
        set_decoder_truncation(model, keep, mode)

    def num_classes(self, model: nn.Module) -> int:
        # the head's last conv: SegmentationHead's first module, DPT's head ends in one after its own 3x3
        return int([m for m in model.segmentation_head.modules() if isinstance(m, nn.Conv2d)][-1].out_channels)

    def output_stride(self, model: nn.Module) -> int:
        # the stride SMP makes the input divisible by (U-Net takes any size: it resizes to each skip)
        return int(model.encoder.output_stride) if model.requires_divisible_input_shape else 1


def load_smp_dir(path: str | os.PathLike) -> nn.Module:
    """The SMP model saved in ``path`` by ``save_pretrained`` (config.json + model.safetensors), weights checked.

    Builds the model from ``config.json`` with ``encoder_weights=None`` and loads
    ``model.safetensors`` strictly (a ``pytorch_model.bin`` is read with
    ``weights_only=True``); no hub access, nothing unpickled.
    """
    from segprune.models.files import load_checked, load_state_dict_file

    folder = Path(path)
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{folder / 'config.json'} is not readable JSON ({exc}): save the model again with "
                              "model.save_pretrained(dir)") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{folder / 'config.json'} is not a JSON object: save the model again with "
                              "model.save_pretrained(dir)")
    init = dict(config)
    class_name = init.pop("_model_class", None)
    weights = next((folder / n for n in ("model.safetensors", "pytorch_model.bin") if (folder / n).is_file()), None)
    if weights is None:
        raise CheckpointError(f"{folder} has no model.safetensors: save the model with model.save_pretrained(dir)")
    model = build_smp(str(class_name), init)
    load_checked(model, load_state_dict_file(weights), f"{weights} do not match {SMPAdapter().describe(model)}",
                 "save the model again with model.save_pretrained(dir)")
    return model.eval()
