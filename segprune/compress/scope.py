"""Pruning scopes: which convolutions channel pruning may shrink.

``decoder`` is the decoder's fusion (its skip projections and fuse convs, where truncation
makes channels cheap and spectral scores are meaningful), ``head`` adds the context module
(the ASPP: its branches, their concatenation, the image-pooling branch and its
projection), ``all`` adds the encoder. Which modules those are is the model family's
adapter's business (:mod:`segprune.models.adapters`); the classifier is in no scope: its
outputs are the classes.

``protect`` chooses widths per stage inside a scope: modules named there keep all their
channels (torch-pruning's ``ignored_layers``), the rest share the pruning. Uniform local
pruning cuts every layer by the same fraction, the cheap ones too (the decoder's skip
projection costs 0.1% of DeepLabV3+'s MACs and carries the stride-4 detail), so
protecting them costs few MACs and the solved ratio of the rest rises a little. torch-pruning
never prunes a channel group with a protected member, so protecting one conv of a residual
stage protects the stage's shared channels (e.g. ``backbone.conv1`` keeps ``layer1``'s
block outputs too). The keyword ``fine`` names the encoder's convs at stride 4 or finer, and the
decoder's skip projection (DeepLabV3+ R18: the stem, ``layer1``
and ``decoder.project``, 7.5% of the MACs): the path that carries the stride-2/4 detail,
which uniform pruning at a third of the MACs cuts from 64 to 40 channels (docs/results.md, "Widths per
stage"). It is found from the model's shapes, so it names the same path in an SMP model.

Left unset (``protect=None``), the widths follow :func:`default_protect`: the stride-2/4 path at
``--scope all`` (docs/results.md, "Widths per stage") and nothing in the narrower scopes, which hold none of
the encoder. ``none`` asks for uniform widths by name.

The ratio helpers mirror torch-pruning's local pruning (``BasePruner._prune``): a layer of
``C`` channels keeps ``int(C * (1 - ratio))``, rounded *down* to a multiple of ``round_to``,
which is zero, an emptied layer, once fewer than ``round_to`` would be left; such layers are
given their own smaller ratio instead (:func:`ratio_caps`).
"""

from __future__ import annotations

import torch
from torch import nn

from segprune.choices import IMPORTANCES, SCOPES
from segprune.errors import ConfigError
from segprune.models.adapters import adapter_for

__all__ = ["FINE_PATH", "IMPORTANCES", "SCOPES", "UNIFORM", "attention_blocks", "check_protect", "check_scope", "default_protect",
           "fine_path", "ignored_layers", "in_scope", "prunable_convs", "protect_names", "resolve_protect",
           "ratio_caps", "scope_convs"]
FINE_PATH = "fine"  # --protect keyword: the stride-2/4 path (fine_path)
UNIFORM = "none"  # --protect keyword: nothing protected, every layer cut by the same fraction
# What a scope leaves out, in words, and the next wider scope to suggest.
OUTSIDE = {"decoder": "backbone, ASPP and classifier", "head": "backbone and classifier", "all": "classifier"}
WIDER = {"decoder": "--scope head or --scope all", "head": "--scope all", "all": None}


def check_scope(scope: str) -> str:
    if scope not in SCOPES:
        raise ConfigError(f"--scope {scope!r} is not valid: use one of {', '.join(SCOPES)} "
                          "(decoder = skip projections + fuse convs, head = + ASPP, all = + backbone)")
    return scope


def in_scope(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def scope_convs(model: nn.Module, scope: str) -> dict[str, nn.Conv2d]:
    """``{name: conv}`` for every Conv2d of ``model`` that ``scope`` may prune (ConfigError if the parts are missing)."""
    prefixes = adapter_for(model).scope_prefixes(model, check_scope(scope))
    modules = dict(model.named_modules())
    missing = [p for p in prefixes if p not in modules]
    if missing:
        raise ConfigError(f"{type(model).__name__} has no {', '.join(missing)} for --scope {scope}: its adapter "
                          "does not describe this model; check the model family")
    return {name: m for name, m in modules.items() if isinstance(m, nn.Conv2d) and in_scope(name, prefixes)}


def protect_names(protect, scope: str | None = None) -> tuple[str, ...]:
    """``protect`` as a tuple of module names: a comma-separated string or a sequence of names.

    ``None`` is the default for ``scope`` (:func:`default_protect`; no scope: nothing) and the
    keyword ``none`` is nothing protected, so a config always holds what it will do.
    """
    if protect is None:
        return default_protect(scope) if scope is not None else ()
    names = protect.split(",") if isinstance(protect, str) else list(protect)
    if not all(isinstance(n, str) for n in names):
        raise ConfigError(f"--protect {protect!r} is not valid: give module names, e.g. decoder.project,backbone.layer1")
    names = tuple(dict.fromkeys(n.strip() for n in names if n.strip()))
    if UNIFORM in names:
        if len(names) > 1:
            raise ConfigError(f"--protect {','.join(names)} is not valid: '{UNIFORM}' (uniform widths) "
                              "cannot be combined with module names")
        return ()
    return names


def default_protect(scope: str) -> tuple[str, ...]:
    """What an unset ``protect`` means with ``scope``: the stride-2/4 path (:func:`fine_path`) at ``all``.

    At ``--scope all`` uniform widths cut the stem, the first stage and the skip projection as hard
    as the rest. On CamVid (DeepLabV3+ R18, keep 0.75, 8 epochs) keeping them whole was ahead of
    uniform spectral-l1 widths on 8 of 9 paired seeds from a quarter to half of the MACs (mean +1.46;
    the ninth level) and level with uniform L1 (mean +0.10); with them whole the two rankings give
    one model (docs/results.md, "Widths per stage"). The narrower scopes hold none of the encoder, so there
    nothing is protected.
    """
    return (FINE_PATH,) if check_scope(scope) == "all" else ()


FINE_STRIDE = 4
"""The ``fine`` path is the encoder's convs at this output stride or finer (the stem and the first stage)."""


def fine_path(model: nn.Module, scope: str = "all") -> tuple[str, ...]:
    """The convs of ``scope`` on the path that carries the finest detail to the decoder: the
    encoder's convs whose output is at stride 4 or finer, and the decoder's projections of that
    skip (the adapter's :meth:`~segprune.models.ModelAdapter.skip_layers`).

    The strides are read from one forward pass of a shape-only (``meta``) copy, so the answer
    holds for any family, whatever its layers are called.
    """
    adapter = adapter_for(model)
    trial = adapter.meta_copy(model)
    skips = adapter.skip_layers(trial)
    encoder = [n for n in scope_convs(trial, "all") if not in_scope(n, adapter.scope_prefixes(trial, "head"))]
    shapes: dict[str, tuple[int, int]] = {}

    def record(name: str):
        def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
            shapes.setdefault(name, tuple(out.shape[-2:]))
        return hook

    height, width = adapter.probe_size(trial)
    hooks = [trial.get_submodule(name).register_forward_hook(record(name)) for name in encoder]
    try:
        with torch.no_grad():
            trial(torch.zeros(1, 3, height, width, device="meta"))
    finally:
        for hook in hooks:
            hook.remove()
    least = (height // FINE_STRIDE) * (width // FINE_STRIDE)
    finer = [n for n in encoder if n in shapes and shapes[n][0] * shapes[n][1] >= least]
    return tuple(n for n in scope_convs(model, scope) if n in finer or in_scope(n, skips))


def resolve_protect(model: nn.Module, scope: str, protect: tuple[str, ...]) -> tuple[str, ...]:
    """``protect`` with the keyword ``fine`` replaced by :func:`fine_path`'s convs, checked against the
    model (:func:`check_protect`)."""
    if FINE_PATH in protect:
        path = fine_path(model, scope)
        # at --scope all an empty path is the model's own shape (a ViT's patch embedding starts at
        # stride 16): nothing to protect; a narrower scope just leaves the path outside
        if not path and scope != "all":
            raise ConfigError(f"--protect {FINE_PATH} names no convolution that --scope {scope} prunes in "
                              f"{type(model).__name__}: the stride-2/4 path lies outside it; use --scope all")
        protect = tuple(dict.fromkeys(n for p in protect for n in (path if p == FINE_PATH else (p,))))
        if not protect:
            return ()
    check_protect(model, scope, protect)
    return protect


def check_protect(model: nn.Module, scope: str, protect: tuple[str, ...]) -> None:
    """A ConfigError naming the first of ``protect`` that holds no conv of ``model`` in ``scope``, and what
    could be named instead (the keyword ``fine`` aside: :func:`resolve_protect`)."""
    convs = scope_convs(model, scope)
    for prefix in protect:
        if prefix != FINE_PATH and not any(in_scope(name, (prefix,)) for name in convs):
            stages = sorted({name.rsplit(".", 2)[0] if name.count(".") >= 2 else name for name in convs})
            raise ConfigError(f"--protect {prefix!r} names no convolution that --scope {scope} prunes in "
                              f"{type(model).__name__}; name modules such as {', '.join(stages[:8])}, or "
                              f"{FINE_PATH} (the stride-2/4 path)")


def prunable_convs(model: nn.Module, scope: str, protect: tuple[str, ...] = ()) -> dict[str, nn.Conv2d]:
    """:func:`scope_convs` less the protected modules: the convs whose width the channel ratio sets."""
    return {name: c for name, c in scope_convs(model, scope).items() if not in_scope(name, protect)}


SPLIT_ATTRS = ("num_heads", "num_paths", "radix")
"""Integer attributes of modules that reshape their channels into heads or paths (attention's heads,
timm's selective-kernel paths, ResNeSt's radix splits)."""


def attention_blocks(model: nn.Module) -> tuple[str, ...]:
    """Modules that split their channels into heads or paths (:data:`SPLIT_ATTRS`: timm's and mit's
    ``Attention``, ``nn.MultiheadAttention``, timm's ``SelectiveKernel``): their forward reshapes by
    ``C // heads``, which torch-pruning does not follow (it prunes the stacked paths of a selective
    kernel at the wrong offsets), so their layers keep their widths, and so does every channel coupled
    to them."""
    def splits(m: nn.Module) -> bool:  # one head still packs q, k and v into one projection
        values = [getattr(m, a, None) for a in SPLIT_ATTRS]
        return any(isinstance(v, int) and not isinstance(v, bool) and v >= (1 if a == "num_heads" else 2)
                   for a, v in zip(SPLIT_ATTRS, values, strict=True))
    return tuple(name for name, m in model.named_modules() if name and splits(m))


def ignored_layers(model: nn.Module, scope: str, protect: tuple[str, ...] = ()) -> list[nn.Module]:
    """Every Conv2d/Linear outside ``scope``, under a ``protect`` prefix or inside an attention block
    (:func:`attention_blocks`): torch-pruning never uses them as pruning roots, and never prunes a
    group that holds one of them."""
    prefixes = adapter_for(model).scope_prefixes(model, check_scope(scope))
    whole = (*protect, *attention_blocks(model))
    return [m for name, m in model.named_modules()
            if isinstance(m, (nn.Conv2d, nn.Linear)) and (not in_scope(name, prefixes) or in_scope(name, whole))]


def remaining_channels(channels: int, ratio: float, round_to: int) -> int:
    """Channels torch-pruning's local pruning leaves (``BasePruner._prune`` with ``round_to``)."""
    pruned = channels - int(channels * (1 - ratio))
    if pruned <= 0:
        return channels
    left = channels - pruned
    return left - left % round_to if round_to > 1 else left


def largest_ratio(channels: int, round_to: int) -> float:
    """The largest ratio that leaves ``channels`` at least one multiple of ``round_to`` (0 if none does)."""
    if channels < round_to:
        return 0.0
    ratio = (channels - round_to) / channels
    while ratio > 0 and remaining_channels(channels, ratio, round_to) == 0:
        ratio -= 1e-9
    return max(ratio, 0.0)


def prunable_widths(convs: dict[str, nn.Conv2d]) -> dict[str, int]:
    # depthwise convs follow their producer's channels and are never pruning roots
    return {n: c.out_channels for n, c in convs.items() if not (c.groups == c.out_channels and c.groups > 1)}


def ratio_caps(convs: dict[str, nn.Conv2d], ratio: float, round_to: int) -> dict[str, float]:
    """``{name: largest ratio}`` for the convs too narrow to lose ``ratio`` of their channels.

    torch-pruning would round what such a layer keeps down to zero channels and empty it
    (EfficientNet's squeeze-excitation convs have 4 to 48 channels). Instead each keeps the
    smallest multiple of ``round_to`` it can (its cap, the largest ratio that leaves one), and
    a layer narrower than ``round_to`` (cap 0) keeps all its channels; the others take ``ratio``.
    So one narrow layer never limits how far the rest of the network can be pruned.
    """
    caps = {}
    for name, channels in prunable_widths(convs).items():
        if remaining_channels(channels, ratio, round_to) == 0:
            caps[name] = largest_ratio(channels, round_to)
    return caps


def check_ratio(convs: dict[str, nn.Conv2d], ratio: float, round_to: int) -> None:
    """ConfigError when ``ratio`` removes nothing at all: every layer is too narrow for it (:func:`ratio_caps`)."""
    widths = prunable_widths(convs)
    if ratio > 0 and widths and all(largest_ratio(c, round_to) == 0 for c in widths.values()):
        raise ConfigError(f"--channel-ratio {ratio:g} removes no channel: every prunable layer has fewer than "
                          f"2 x --round-to {round_to} channels; use a smaller --round-to")
