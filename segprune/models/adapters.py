"""Model adapters: what the compression pipeline needs to know about a family of networks.

Truncation, channel pruning, the spectral ranking, MAC counts, checkpoints and export all
work on any ``nn.Module``; what differs between families is a handful of facts, and an
adapter states them (DESIGN.md, key decision 9):

- where the decoder's high-resolution fusion runs (the part truncation shrinks) and how to
  set its grid (:meth:`ModelAdapter.set_truncation`), the stride of its finest grid
  (:meth:`ModelAdapter.decoder_stride`) and its skip projections (:meth:`ModelAdapter.skip_layers`);
- which layers each pruning scope may shrink, and which must never lose channels (the
  classifier: its outputs are the classes);
- how to describe the network as JSON and rebuild it from that description, so a
  compressed model is saved without pickle and reloads as the user's own class.

Adapters are registered by family name with :func:`register_adapter` (a class decorator);
third-party packages add theirs through the ``segprune.adapters`` entry-point group, so a
new architecture edits no module here. :func:`adapter_for` finds the adapter of a model.
"""

from __future__ import annotations

import copy
import importlib
from dataclasses import replace
from importlib.metadata import entry_points
from typing import Any, ClassVar

import torch
from torch import nn

from segprune.choices import SCOPES
from segprune.errors import ConfigError

_REGISTRY: dict[str, type[ModelAdapter]] = {}
# Built-in families whose adapters import an optional package, loaded on first use only:
# family -> (segprune module holding the adapter, the package the family's models come from).
_BUILTIN = {"smp": ("segprune.models.smp", "segmentation_models_pytorch"),
            "torchvision": ("segprune.models.tv", "torchvision")}
ENTRY_POINT_GROUP = "segprune.adapters"


class ModelAdapter:
    """What segprune needs to know about one family of segmentation networks.

    Subclasses set :attr:`family` and :attr:`scopes` and implement the methods that
    raise ``NotImplementedError``. Instances are stateless: every method takes the model.
    ``scopes`` maps each pruning scope to the module-name prefixes it may shrink
    (``decoder`` = the decoder's fusion, ``head`` = + the context module, ``all`` = + the
    encoder). Every layer outside a scope keeps its output channels; no scope holds the
    classifier, whose outputs are the classes.
    """

    family: ClassVar[str] = ""
    scopes: ClassVar[dict[str, tuple[str, ...]]] = {}
    feature_layers: ClassVar[tuple[str, ...]] = ()
    """Decoder layers whose per-channel spectra ``analyze --model`` reports (``:in`` = the module's input).
    The last is the decoder's output, the features the classifier reads: feature distillation
    (``FinetuneConfig.feature_kd``) matches the student's to the teacher's there."""

    def matches(self, model: nn.Module) -> bool:
        raise NotImplementedError

    def check_supported(self, model: nn.Module) -> None:
        """Raise a ConfigError for a model of the family that segprune cannot take as it is (say how to fix it)."""

    def check_prunable(self, model: nn.Module) -> None:
        """Raise a ConfigError, with the reason, for a model whose channels segprune cannot prune."""

    def features_of(self, model: nn.Module) -> tuple[str, ...]:
        """:attr:`feature_layers` of this model (a family whose layer names depend on the model overrides it)."""
        return self.feature_layers

    def decoder_stride(self, model: nn.Module) -> int:
        """The stride of the decoder's finest grid, which ``keep_freq`` is a fraction of (4: DeepLabV3+'s fusion)."""
        return 4

    def probe_size(self, model: nn.Module) -> tuple[int, int]:
        """An input size the model runs at, for shape-only probes that read its strides (256x256, or the
        size a ViT-style patch embedding insists on: timm's ``PatchEmbed`` with ``strict_img_size``)."""
        for module in model.modules():
            size = getattr(module, "img_size", None)
            if getattr(module, "strict_img_size", False) and isinstance(size, (tuple, list)) and len(size) == 2:
                return int(size[0]), int(size[1])
        return 256, 256

    def skip_layers(self, model: nn.Module) -> tuple[str, ...]:
        """The decoder's projections of its finest skip input (DeepLabV3+'s 48-channel 1x1 conv): with the
        encoder's stride-2/4 convs, the path ``--protect fine`` keeps whole (none where the skips are
        concatenated as they are, as in U-Net)."""
        return ()

    def describe(self, model: nn.Module) -> str:
        """A short human name, e.g. ``smp DeepLabV3Plus(resnet34)``."""
        raise NotImplementedError

    def config_of(self, model: nn.Module) -> dict[str, Any]:
        """The JSON description that :meth:`build` turns back into this model (truncation and channels included)."""
        raise NotImplementedError

    def build(self, config: dict[str, Any]) -> nn.Module:
        """A freshly initialised model from :meth:`config_of`'s description (ConfigError if it is invalid)."""
        raise NotImplementedError

    def truncation(self, model: nn.Module) -> tuple[float, str]:
        """``(keep_freq, resize mode)`` the decoder runs with now."""
        raise NotImplementedError

    def set_truncation(self, model: nn.Module, keep: float, mode: str) -> None:
        """Run the decoder's fusion on the grid ``keep`` selects; ``keep = 1`` restores the original path."""
        raise NotImplementedError

    def num_classes(self, model: nn.Module) -> int:
        raise NotImplementedError

    def output_stride(self, model: nn.Module) -> int:
        raise NotImplementedError

    def scope_prefixes(self, model: nn.Module, scope: str) -> tuple[str, ...]:
        """The module-name prefixes ``scope`` may prune in ``model`` (the class's :attr:`scopes` by default)."""
        if scope not in SCOPES:
            raise ConfigError(f"--scope {scope!r} is not valid: use one of {', '.join(SCOPES)} "
                              "(decoder = the decoder's fusion, head = + the context module (ASPP), all = + the encoder)")
        return self.scopes_of(model)[scope]

    def scopes_of(self, model: nn.Module) -> dict[str, tuple[str, ...]]:
        """:attr:`scopes` of this model (a family whose module names depend on the model overrides it)."""
        return self.scopes

    def meta_copy(self, model: nn.Module) -> nn.Module:
        """The same network (channels and truncation included) on the ``meta`` device: free to count and trace.

        A copy of the model object itself, each parameter and buffer replaced by a shape-only
        tensor, rather than a rebuild from :meth:`config_of`: it needs no config, costs no
        initialisation, and works for encoders that cannot be *constructed* on the meta device
        (mit's drop-path schedule calls ``Tensor.item()`` while building).
        """
        return shape_copy(model)

    def skeleton(self, config: dict[str, Any]) -> nn.Module:
        """:meth:`build` on the ``meta`` device: the shapes a config describes, checked before any allocation."""
        with torch.device("meta"):
            return self.build(config)

    def reference(self, model: nn.Module) -> nn.Module:
        """The model as its family builds it before any channel pruning, on the ``meta`` device."""
        raise NotImplementedError

    def record_channels(self, model: nn.Module) -> None:
        """Called after pruning: a family that keeps channel counts in a config attribute updates it here."""


def shape_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` in eval mode whose parameters and buffers are ``meta`` tensors of the same shapes.

    Modules, classes and attributes are copied as they are (a truncated decoder stays
    truncated, a pruned conv keeps its width); no tensor memory is allocated and no weight is read.
    """
    memo: dict[int, Any] = {}
    for param in model.parameters():
        memo[id(param)] = nn.Parameter(torch.empty_like(param, device="meta"), requires_grad=param.requires_grad)
    for buffer in model.buffers():
        memo[id(buffer)] = torch.empty_like(buffer, device="meta")
    return copy.deepcopy(model, memo).eval()


def register_adapter(cls: type[ModelAdapter]) -> type[ModelAdapter]:
    """Class decorator: make ``cls`` the adapter of ``cls.family``."""
    if not cls.family:
        raise ConfigError(f"adapter {cls.__name__} has no family name: set the class attribute `family`")
    _REGISTRY[cls.family] = cls
    return cls


def _load_plugins() -> None:
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name not in _REGISTRY:
            entry.load()  # the module registers its adapter with @register_adapter


def families() -> list[str]:
    """Every family with an adapter: built in, registered, or installed through the entry-point group."""
    _load_plugins()
    return sorted(set(_REGISTRY) | set(_BUILTIN))


def get_adapter(family: str) -> ModelAdapter:
    """The adapter registered for ``family`` (ConfigError naming the known families)."""
    if family not in _REGISTRY and family in _BUILTIN:
        importlib.import_module(_BUILTIN[family][0])
    if family not in _REGISTRY:
        _load_plugins()
    if family not in _REGISTRY:
        raise ConfigError(f"no model adapter for family {family!r}: known families are {', '.join(families())}; "
                          "add one with @segprune.models.register_adapter (see segprune/models/adapters.py)")
    return _REGISTRY[family]()


def adapter_for(model: nn.Module) -> ModelAdapter:
    """The adapter whose family ``model`` belongs to, or a ConfigError that says how to add one."""
    root = type(model).__module__.split(".")[0]
    for family, (path, package) in _BUILTIN.items():
        if family not in _REGISTRY and root == package:
            importlib.import_module(path)
    for attempt in range(2):
        if attempt:
            _load_plugins()
        for cls in list(_REGISTRY.values()):
            adapter = cls()
            if adapter.matches(model):
                adapter.check_supported(model)
                return adapter
    raise ConfigError(f"{type(model).__module__}.{type(model).__name__} has no segprune adapter: supported are "
                      f"segprune's DeepLabV3+/DAN, segmentation_models_pytorch's models and torchvision's segmentation "
                      "models; add an adapter with @segprune.models.register_adapter (see segprune/models/adapters.py)")


@register_adapter
class SegpruneAdapter(ModelAdapter):
    """segprune's own DeepLabV3+ and DAN (:mod:`segprune.models.registry`): the config is :class:`ModelConfig`."""

    family = "segprune"
    scopes = {
        "decoder": ("decoder.project", "decoder.fuse"),
        "head": ("aspp", "decoder.project", "decoder.fuse"),
        "all": ("backbone", "aspp", "decoder.project", "decoder.fuse"),
    }
    feature_layers = ("decoder.fuse.0:in", "decoder.fuse.0", "decoder.fuse.1")

    def matches(self, model: nn.Module) -> bool:
        from segprune.models.base import SegmentationModel
        from segprune.models.config import ModelConfig

        return isinstance(model, SegmentationModel) and isinstance(getattr(model, "config", None), ModelConfig)

    def describe(self, model: nn.Module) -> str:
        return f"{model.config.arch}_{model.config.backbone}"

    def config_of(self, model: nn.Module) -> dict[str, Any]:
        from segprune.models.channels import channel_overrides_of

        return replace(model.config, channel_overrides=channel_overrides_of(model)).to_dict()

    def build(self, config: dict[str, Any]) -> nn.Module:
        from segprune.models.config import ModelConfig
        from segprune.models.registry import build_model

        cfg = ModelConfig.from_dict(config)
        model = build_model(replace(cfg, backbone_weights=None))
        model.config = cfg.resolved()
        return model

    def reference(self, model: nn.Module) -> nn.Module:
        from segprune.models.registry import build_model

        with torch.device("meta"):
            return build_model(replace(model.config, channel_overrides={}, backbone_weights=None))

    def skip_layers(self, model: nn.Module) -> tuple[str, ...]:
        # DAN projects three stages; only layer1's is on the stride-4 grid
        return ("decoder.project.layer1",) if model.config.arch == "dan" else ("decoder.project",)

    def record_channels(self, model: nn.Module) -> None:
        from segprune.models.channels import channel_overrides_of

        model.config = replace(model.config, channel_overrides=channel_overrides_of(model))

    def truncation(self, model: nn.Module) -> tuple[float, str]:
        return float(model.decoder.keep), str(model.decoder.resize)

    def set_truncation(self, model: nn.Module, keep: float, mode: str) -> None:
        model.decoder.keep = keep
        model.decoder.resize = mode
        model.config = replace(model.config, decoder_keep=keep, decoder_resize=mode)

    def num_classes(self, model: nn.Module) -> int:
        return int(model.config.num_classes)

    def output_stride(self, model: nn.Module) -> int:
        return int(model.config.output_stride)



def find_adapter(model: nn.Module) -> ModelAdapter | None:
    """:func:`adapter_for`, or ``None`` for a module no adapter knows."""
    try:
        return adapter_for(model)
    except ConfigError:
        return None


def model_info(model: nn.Module, *, missing_ok: bool = False) -> dict[str, Any]:
    """What tools downstream of compression need to know of any supported model, as JSON.

    ``family``, ``name``, ``num_classes``, ``output_stride``, ``keep_freq``, ``resize`` and
    the family's ``config`` (what :meth:`ModelAdapter.build` rebuilds it from). With
    ``missing_ok``, a module no adapter knows gives ``{}`` (export takes any module as it is).
    """
    adapter = find_adapter(model) if missing_ok else adapter_for(model)
    if adapter is None:
        return {}
    keep, mode = adapter.truncation(model)
    return {"family": adapter.family, "name": adapter.describe(model), "num_classes": adapter.num_classes(model),
            "output_stride": adapter.output_stride(model), "keep_freq": keep, "resize": mode,
            "config": adapter.config_of(model)}
