"""segmentation_models_pytorch (SMP) DeepLabV3+: the adapter, truncation, and loading users' files.

SMP is an optional dependency (``pip install 'segprune[smp]'``); this module imports it and
is itself imported only when an SMP model or file is met (:mod:`segprune.models.adapters`).

Truncation. SMP's decoder upsamples the ASPP output to the ``block1`` grid (output stride
4), concatenates it with ``block1`` (the 48-channel skip projection) and runs ``block2``,
a separable 3x3 conv at 256 channels, there. A truncated model swaps the decoder's class
for :class:`TruncatedDeepLabV3PlusDecoder`, a subclass with the same modules and weights
whose ``forward`` resamples the skip features to ``decoder_grid(H/4, W/4, keep)``, runs
``block2`` on that grid and resizes its output back to the native grid, so SMP's
segmentation head (a 1x1 conv and a fixed x4 upsampling) is unchanged. The model stays an
``smp.DeepLabV3Plus``; ``keep = 1`` restores the original class, bit for bit.

Saved form (inside a segprune checkpoint): ``{"class": "DeepLabV3Plus", "init": <the
keyword arguments SMP recorded>, "keep_freq", "resize", "channel_overrides"}``; the
encoder is always rebuilt with ``encoder_weights=None`` (the weights come from the file,
nothing is downloaded).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from segprune.errors import CheckpointError, ConfigError
from segprune.models.adapters import ModelAdapter, register_adapter
from segprune.models.grid import RESIZE_MODES, check_keep, decoder_grid, resize_to_grid

try:
    import segmentation_models_pytorch as smp
    from segmentation_models_pytorch.decoders.deeplabv3.decoder import DeepLabV3PlusDecoder
except ModuleNotFoundError as exc:  # optional dependency: segprune[smp]
    raise ConfigError("segmentation_models_pytorch models need the package, which is not installed: "
                      "pip install 'segprune[smp]'") from exc

SUPPORTED = ("DeepLabV3Plus",)
"""SMP model classes with an adapter. Others (Unet, FPN, ...) have a different decoder to truncate."""


class TruncatedDeepLabV3PlusDecoder(DeepLabV3PlusDecoder):
    """SMP's DeepLabV3+ decoder with its fusion (``block2``) on a truncated grid (module docstring).

    Never constructed: :func:`set_decoder_truncation` swaps an existing decoder's class, so
    the modules, their names and their weights stay exactly the user's.
    """

    keep: float = 1.0
    resize: str = "area"

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        context = self.aspp(features[-1])
        skip = self.block1(features[2])
        native = skip.shape[-2:]
        grid = decoder_grid(native[0], native[1], self.keep)
        skip = resize_to_grid(skip, grid, self.resize)
        # SMP upsamples the context with align_corners=True (its nn.Upsample); so does this
        context = F.interpolate(context, size=grid, mode="bilinear", align_corners=True)
        fused = self.block2(torch.cat([context, skip], dim=1))
        return F.interpolate(fused, size=native, mode="bilinear", align_corners=False)


def set_decoder_truncation(decoder: nn.Module, keep: float, mode: str) -> None:
    """Run ``decoder`` (an SMP DeepLabV3PlusDecoder) at ``keep``; ``keep = 1`` restores SMP's own class."""
    if keep >= 1.0:
        decoder.__class__ = DeepLabV3PlusDecoder
        decoder.__dict__.pop("keep", None)
        decoder.__dict__.pop("resize", None)
        return
    decoder.__class__ = TruncatedDeepLabV3PlusDecoder
    decoder.keep = keep
    decoder.resize = mode


def _init_kwargs(model: nn.Module) -> dict[str, Any]:
    init = getattr(model, "_hub_mixin_config", None)
    if not isinstance(init, dict):
        raise ConfigError(f"{type(model).__name__} carries no SMP construction record (_hub_mixin_config): build it "
                          "with segmentation_models_pytorch's constructor or smp.from_pretrained")
    init = json.loads(json.dumps(init, default=list))  # tuples -> lists: the JSON form
    init["encoder_weights"] = None  # the weights come from the checkpoint; never download
    return init


def build_smp(class_name: str, init: dict[str, Any]) -> nn.Module:
    """``smp.<class_name>(**init)`` with ``encoder_weights=None``; a ConfigError for what SMP refuses."""
    if class_name not in SUPPORTED:
        raise ConfigError(f"SMP model {class_name!r} has no segprune adapter: supported are {', '.join(SUPPORTED)}; "
                          "add one with @segprune.models.register_adapter (see segprune/models/smp.py)")
    if not isinstance(init, dict):
        raise ConfigError(f"SMP config for {class_name} must be a JSON object of constructor arguments")
    try:
        return getattr(smp, class_name)(**{**init, "encoder_weights": None})
    except (TypeError, ValueError, KeyError, RuntimeError) as exc:
        raise ConfigError(f"SMP cannot build {class_name} from {init} ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''}): check the architecture options") from None


@register_adapter
class SMPAdapter(ModelAdapter):
    """segmentation_models_pytorch ``DeepLabV3Plus``, any encoder SMP builds offline."""

    family = "smp"
    scopes = {
        "decoder": ("decoder.block1", "decoder.block2"),
        "head": ("decoder.aspp", "decoder.block1", "decoder.block2"),
        "all": ("encoder", "decoder.aspp", "decoder.block1", "decoder.block2"),
    }
    feature_layers = ("decoder.block2:in", "decoder.block2")

    def matches(self, model: nn.Module) -> bool:
        return isinstance(model, smp.DeepLabV3Plus)

    def describe(self, model: nn.Module) -> str:
        return f"smp DeepLabV3Plus({_init_kwargs(model).get('encoder_name', '?')})"

    def config_of(self, model: nn.Module) -> dict[str, Any]:
        from segprune.models.channels import channel_diff

        keep, mode = self.truncation(model)
        return {"class": type(model).__name__, "init": _init_kwargs(model), "keep_freq": keep, "resize": mode,
                "channel_overrides": channel_diff(model, self.reference(model))}

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

    def reference(self, model: nn.Module) -> nn.Module:
        with torch.device("meta"):
            return build_smp(type(model).__name__, _init_kwargs(model))

    def truncation(self, model: nn.Module) -> tuple[float, str]:
        decoder = model.decoder
        return float(getattr(decoder, "keep", 1.0)), str(getattr(decoder, "resize", "area"))

    def set_truncation(self, model: nn.Module, keep: float, mode: str) -> None:
        set_decoder_truncation(model.decoder, keep, mode)

    def num_classes(self, model: nn.Module) -> int:
        return int(model.segmentation_head[0].out_channels)

    def output_stride(self, model: nn.Module) -> int:
        return int(model.encoder.output_stride)

    def grid_layer(self, model: nn.Module) -> str:
        return "decoder.block1"


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
