"""Channel pruning: ``prune_(model, PruneConfig(...), example_input, calib_batches)``.

torch-pruning's dependency graph does all the surgery (ASPP branches and their concat, the
image-pooling branch, the skip projection, the decoder convs and every BN); segprune picks
the scope, the importance and the ratio. Pruning is local: every in-scope group loses the
same fraction of channels (``round_to`` rounds what is left down to a multiple), so the
channel counts, and therefore the MACs, depend on the ratio alone. That is what lets
``target_macs`` be solved by bisection on a ``meta``-device copy, at no compute cost.

``keep_freq`` below the model's current decoder keep truncates first (with the model's own
resize mode; call :func:`truncate_` beforehand to choose another), then the importance is
measured on the truncated model: truncate, then prune, then fine-tune. A ``keep_freq``
above the current keep never widens the decoder. After pruning ``model.config`` records
the new channel counts, so ``save_checkpoint``/``load_checkpoint`` round-trip the model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import nn

from segprune.compress.importance import IMPORTANCES, build_importance, require_calibration, tp
from segprune.compress.macs import MacReport, count_macs
from segprune.compress.scope import (
    OUTSIDE,
    WIDER,
    check_ratio,
    check_scope,
    ignored_layers,
    largest_ratio,
    protect_names,
    prunable_convs,
    prunable_widths,
    ratio_caps,
    resolve_protect,
    scope_convs,
)
from segprune.compress.snapshot import restored_on_failure
from segprune.compress.truncation import TruncationConfig, truncate_
from segprune.errors import ConfigError
from segprune.models.adapters import adapter_for
from segprune.models.grid import check_keep

_TOLERANCE = 1e-3  # bisection stops when the ratio bracket is this narrow
_RETRIES = 8  # groups found unprunable during the real surgery, each left whole in turn
# what torch-pruning and a forward at widths that do not meet raise (on the meta device too)
_SHAPE_ERRORS = (RuntimeError, ValueError, IndexError, AssertionError)


@dataclass(frozen=True)
class PruneConfig:
    """Exactly one of ``channel_ratio`` (fraction of each in-scope layer's channels removed, in
    ``[0, 1)``) and ``target_macs`` (fraction of the original total MACs to keep, in ``(0, 1]``).
    ``protect``: module names inside ``scope`` that keep all their channels
    (:mod:`segprune.compress.scope`); the ratio applies to the rest. Unset, it is the scope's
    default (``default_protect``: the stride-2/4 path at ``scope="all"``); ``"none"`` is uniform widths."""

    channel_ratio: float | None = None
    target_macs: float | None = None
    importance: str = "spectral-l1"
    scope: str = "decoder"
    round_to: int = 8
    keep_freq: float = 1.0
    trunc_mode: str | None = None  # None: the resize mode the model's decoder has now
    protect: tuple[str, ...] | None = None
    held: tuple[str, ...] = ()
    """Convs :func:`prune_` found it must leave whole (:func:`unprunable`); set by it, not by users."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "protect", protect_names(self.protect, check_scope(self.scope)))
        if (self.channel_ratio is None) == (self.target_macs is None):
            raise ConfigError("give exactly one of --channel-ratio (fraction of channels removed) and "
                              "--target-macs (fraction of the MACs kept)")
        if self.channel_ratio is not None and not 0.0 <= self.channel_ratio < 1.0:
            raise ConfigError(f"--channel-ratio {self.channel_ratio} is outside [0, 1): it is the fraction of "
                              "each layer's channels removed, e.g. 0.5")
        if self.target_macs is not None and not 0.0 < self.target_macs <= 1.0:
            raise ConfigError(f"--target-macs {self.target_macs} is outside (0, 1]: it is the fraction of the "
                              "original MACs to keep, e.g. 0.5")
        if self.importance not in IMPORTANCES:
            raise ConfigError(f"--importance {self.importance!r} is not valid: use one of {', '.join(IMPORTANCES)}")
        if isinstance(self.round_to, bool) or not isinstance(self.round_to, int) or self.round_to < 1:
            raise ConfigError(f"--round-to {self.round_to!r} is not valid: use a positive int (8 suits tensor cores, "
                              "1 disables rounding)")
        object.__setattr__(self, "keep_freq", check_keep(self.keep_freq, "keep-freq"))
        if self.trunc_mode is not None:
            TruncationConfig(self.keep_freq, self.trunc_mode)  # validates the mode

    @property
    def whole(self) -> tuple[str, ...]:
        """Every module that keeps all its channels: the protected ones and the held ones."""
        return (*self.protect, *self.held)


@dataclass
class PruneResult:
    """What :func:`prune_` did: the ratio used, MACs/params before and after, channels per conv."""

    config: PruneConfig
    channel_ratio: float
    keep_freq: float
    macs_before: MacReport
    macs_after: MacReport
    channels: dict[str, tuple[int, int]]
    held: tuple[str, ...] = ()
    """Root convs whose channel groups were left whole because torch-pruning maps them wrongly."""

    @property
    def macs_fraction(self) -> float:
        """Total MACs after / before (truncation included)."""
        return self.macs_after.total_macs / max(self.macs_before.total_macs, 1)

    def to_dict(self) -> dict[str, Any]:
        return {"config": asdict(self.config), "channel_ratio": self.channel_ratio, "keep_freq": self.keep_freq,
                "macs_fraction": self.macs_fraction, "macs_before": self.macs_before.to_dict(),
                "macs_after": self.macs_after.to_dict(), "channels": {k: list(v) for k, v in self.channels.items()},
                "held": list(self.held)}


class _OrderImportance(tp.importance.Importance):
    """A fixed pseudo-random ranking, for the meta-device trials where only the channel counts matter.

    Random rather than ``arange``: a real ranking removes channels from all over a layer, and
    torch-pruning maps such index sets through concatenations and splits differently from a
    block of the first channels (a mapping it gets wrong shows only for scattered indices).
    ``bn_only`` mirrors ``BNScaleImportance``, which skips groups without an affine BN
    (e.g. squeeze-excitation convs), so the trial prunes exactly the groups the real run does.
    """

    def __init__(self, bn_only: bool = False) -> None:
        self.bn_only = bn_only

    def __call__(self, group) -> torch.Tensor | None:
        if self.bn_only and not any(item.dep.handler == tp.prune_batchnorm_out_channels
                                    and getattr(item.dep.target.module, "affine", False) for item in group):
            return None
        n = len(group[0].idxs)
        return torch.randperm(n, generator=torch.Generator().manual_seed(n)).float()


@contextmanager
def _traceable(model: nn.Module) -> Iterator[None]:
    """``model`` with ``spectral`` truncation swapped for ``area`` while torch-pruning traces it.

    torch-pruning follows the channel axis through the reshapes inside a batched MatMul
    wrongly (it maps the skip projection onto the ASPP half of the concat), while area
    pooling, like the spectral operator, maps each channel to itself, so both give the same
    channel graph.
    """
    adapter = adapter_for(model)
    keep, mode = adapter.truncation(model)
    if mode == "spectral":
        adapter.set_truncation(model, keep, "area")
    try:
        yield
    finally:
        adapter.set_truncation(model, keep, mode)


def _prune_at(model: nn.Module, ratio: float, importance: tp.importance.Importance, example: torch.Tensor,
              config: PruneConfig) -> None:
    """Trace, rank and cut with torch-pruning (local pruning at ``ratio``; a layer too narrow for it keeps
    ``round_to`` channels, or all of them: :func:`~segprune.compress.scope.ratio_caps`)."""
    convs = prunable_convs(model, config.scope, config.whole)
    caps = ratio_caps(convs, ratio, config.round_to)
    held = [convs[name] for name, cap in caps.items() if cap <= 0]
    names = {m: n for n, m in model.named_modules()}
    with _traceable(model):
        pruner = tp.pruner.BasePruner(model, example, importance=_Guarded(importance, names), pruning_ratio=ratio,
                                      pruning_ratio_dict={convs[n]: cap for n, cap in caps.items() if cap > 0},
                                      global_pruning=False,
                                      ignored_layers=ignored_layers(model, config.scope, config.whole) + held,
                                      round_to=config.round_to if config.round_to > 1 else None)
        for group in pruner.step(interactive=True):
            try:
                group.prune()
            except (RuntimeError, IndexError, ValueError) as exc:
                raise _GroupFailed(names[group[0].dep.target.module], exc) from exc


class _GroupFailed(Exception):
    """torch-pruning could not rank or cut the channel group rooted at ``root`` (its index mapping is wrong there)."""

    def __init__(self, root: str, error: BaseException) -> None:
        super().__init__(f"torch-pruning failed on the channel group of {root}: {type(error).__name__}: {error}")
        self.root, self.error = root, error


class _Guarded(tp.importance.Importance):
    """An importance whose failure on a group names that group (:class:`_GroupFailed`)."""

    def __init__(self, inner: tp.importance.Importance, names: dict[nn.Module, str]) -> None:
        self.inner, self.names = inner, names

    def __call__(self, group) -> torch.Tensor | None:
        try:
            return self.inner(group)
        except (RuntimeError, IndexError, ValueError) as exc:
            raise _GroupFailed(self.names[group[0].dep.target.module], exc) from exc


def _held_whole(model: nn.Module, names: Iterable[str], config: PruneConfig, example: torch.Tensor) -> set[str]:
    """The convs of ``model`` among ``names`` whose output channels are coupled to a layer torch-pruning must leave
    whole (under ``--protect`` or outside the scope): a residual add ties the stem's channels to
    every ``layer1`` block's last conv, so protecting the stem keeps those widths too, and their
    MACs belong to the floor. A conv the forward never calls is outside the traced graph, so
    torch-pruning leaves it too."""
    ignored = {id(m) for m in ignored_layers(model, config.scope, config.whole)}
    with _traceable(model):
        graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
    held = set()
    for name in names:
        conv = model.get_submodule(name)
        if conv not in graph.module2node:  # never called by the forward (EfficientNet's unused conv head): no
            held.add(name)                 # MACs, and torch-pruning, which sees only the traced graph, leaves it
            continue
        group = graph.get_pruning_group(conv, graph.get_pruner_of_module(conv).prune_out_channels, idxs=[0])
        if any(id(item.dep.target.module) in ignored for item in group):
            held.add(name)
    return held


def _meta_copy(model: nn.Module) -> nn.Module:
    return adapter_for(model).meta_copy(model)


def unprunable(model: nn.Module, config: PruneConfig, size: tuple[int, int], ratio: float | None = None) -> tuple[str, ...]:
    """Root convs of the channel groups torch-pruning maps wrongly, to be left whole.

    torch-pruning follows channels through the ops it knows; a forward that routes channels in
    ways it does not see (DPN's dual-path slices at fixed offsets, timm's selective-kernel
    paths stacked with ``view``, Res2Net's ``split`` by a stored width) yields groups whose
    indices run past a layer's width or cut a grouped convolution on one side only
    (:func:`_mapped_wrongly`), or a pruned network whose widths no longer meet. Both are checked
    on a shape-only copy: every group's indices against the widths of its layers, then a trial
    prune of the whole scope at ``ratio`` (default: the largest any layer allows; with a
    scattered ranking, as a real one is), and only if that trial's forward fails, each group
    alone. Nothing is computed: every trial runs on the ``meta`` device.
    """
    example = torch.zeros(1, 3, *size, device="meta")
    trial = _meta_copy(model)
    ignored = ignored_layers(trial, config.scope, config.whole)
    with _traceable(trial):
        graph = tp.DependencyGraph().build_dependency(trial, example_inputs=example)
    names = {m: n for n, m in trial.named_modules()}
    whole = {id(m) for layer in ignored for m in layer.modules()}
    roots, broken = [], []
    for group in graph.get_all_groups(ignored_layers=ignored, root_module_types=[nn.Conv2d, nn.Linear]):
        root = names[group[0].dep.target.module]
        (broken if _mapped_wrongly(graph, group, whole) else roots).append(root)
    config = replace(config, held=(*config.held, *broken))
    if ratio is None:
        widths = prunable_widths(prunable_convs(model, config.scope, config.whole))
        ratio = max((largest_ratio(c, config.round_to) for c in widths.values()), default=0.0)
    if ratio <= 0 or _runs_pruned(model, config, example, ratio):
        return tuple(broken)
    for root in roots:
        alone = replace(config, held=(*config.held, *(r for r in roots if r != root)))
        if not _runs_pruned(model, alone, example, ratio):
            broken.append(root)
    return tuple(broken)


class _Unrunnable(Exception):
    """The network torch-pruning returned does not run: its widths no longer meet somewhere."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(f"the pruned network does not run: {type(error).__name__}: {error}")
        self.error = error


def _mapped_wrongly(graph, group, whole: set[int]) -> bool:
    """Whether torch-pruning's index mapping for the group cannot be right: an index set runs past the
    width of the layer it would cut, or a grouped convolution whose outputs are left whole (ids in
    ``whole``) would lose input channels (torch-pruning cuts a grouped conv's inputs per group,
    counting on its outputs being cut alike)."""
    for item in group:
        idxs, fn, module = item.idxs, item.dep.handler, item.dep.target.module
        if graph.is_out_channel_pruning_fn(fn):
            width = graph.get_out_channels(module)
        elif graph.is_in_channel_pruning_fn(fn):
            width = graph.get_in_channels(module)
            if isinstance(module, nn.Conv2d) and 1 < module.groups < module.in_channels and id(module) in whole:
                return True
        else:
            continue
        if width is not None and idxs and max(idxs) >= width:
            return True
    return False


def _runs_pruned(model: nn.Module, config: PruneConfig, example: torch.Tensor, ratio: float) -> bool:
    """Whether a shape-only copy of ``model`` pruned at ``ratio`` under ``config`` still runs its forward."""
    trial = _meta_copy(model)
    try:
        _prune_at(trial, ratio, _OrderImportance(), example, config)
        with torch.no_grad():
            trial(example)
    except _SHAPE_ERRORS:
        return False
    return True


def _solve_ratio(model: nn.Module, config: PruneConfig, size: tuple[int, int], original: int) -> float:
    """The smallest channel ratio whose MACs are at most ``target_macs`` of ``original`` (bisection)."""
    target, scope = config.target_macs, config.scope
    now = count_macs(_meta_copy(model), size)
    convs = prunable_convs(model, scope, config.whole)
    example = torch.zeros(1, 3, *size, device="meta")
    held = _held_whole(_meta_copy(model), convs, config, example)  # traced on a shape-only copy
    convs = {name: conv for name, conv in convs.items() if name not in held}
    floor = (now.total_macs - sum(now.layers.get(n, 0) for n in convs)) / original
    if target < floor:
        wider = f"{WIDER[scope]} or " if WIDER[scope] else ""
        spared = (f" and the --protect layers ({','.join(config.protect)}, with the layers that share their "
                  "channels)") if config.protect else ""
        spared += (f" and the layers torch-pruning cannot cut ({','.join(config.held)})") if config.held else ""
        raise ConfigError(f"--target-macs {target:.2f} of the MACs is below the {floor:.2f} that the {OUTSIDE[scope]}"
                          f"{spared} cost with --scope {scope}; use {wider}{'fewer --protect layers or ' if spared else ''}"
                          f"a target >= {math.ceil(floor * 100 - 1e-9) / 100:.2f}")
    if now.total_macs / original <= target:
        return 0.0

    def fraction(ratio: float) -> float:
        trial = _meta_copy(model)
        _prune_at(trial, ratio, _OrderImportance(config.importance == "bn"), example, config)
        return count_macs(trial, size).total_macs / original

    hi = max((largest_ratio(c, config.round_to) for c in prunable_widths(convs).values()), default=0.0)
    reachable = fraction(hi) if hi > 0 else now.total_macs / original
    if reachable > target:
        wider = f"{WIDER[scope]}, " if WIDER[scope] else ""
        raise ConfigError(f"--target-macs {target:.2f} is below the {reachable:.3f} reachable with --scope {scope} "
                          f"(largest channel ratio {hi:.3f} at --round-to {config.round_to}); use {wider}a smaller "
                          f"--round-to or a target >= {math.ceil(reachable * 100 - 1e-9) / 100:.2f}")
    lo = 0.0
    while hi - lo > _TOLERANCE:
        mid = (lo + hi) / 2
        if fraction(mid) <= target:
            hi = mid
        else:
            lo = mid
    return hi


def _truncate_for(model: nn.Module, config: PruneConfig, keep: float, mode: str) -> None:
    """Truncate ``model`` (now at ``keep`` with ``mode``) to the band ``config`` prunes in: never
    wider than it is, and a new resampling mode only where the decoder is truncated at all."""
    if config.keep_freq < keep or (config.trunc_mode not in (None, mode) and keep < 1.0):
        truncate_(model, TruncationConfig(min(config.keep_freq, keep), config.trunc_mode or mode))


def check_reachable(model: nn.Module, config: PruneConfig, size: tuple[int, int]) -> float:
    """The channel ratio :func:`prune_` would use for ``config`` on ``model`` at ``size``, solved on a
    shape-only (meta) copy: the model is untouched and nothing is computed. Raises the
    ConfigError ``prune_`` would (ratio out of range, MACs target below the floor or unreachable)."""
    trial = _meta_copy(model)
    adapter = adapter_for(trial)
    adapter.check_prunable(trial)
    keep, mode = adapter.truncation(trial)
    before = count_macs(trial, size).total_macs
    _truncate_for(trial, config, keep, mode)
    config = replace(config, protect=resolve_protect(trial, config.scope, config.protect))
    config = replace(config, held=unprunable(trial, config, size))
    if config.channel_ratio is not None:
        check_ratio(prunable_convs(trial, config.scope, config.whole), config.channel_ratio, config.round_to)
        return config.channel_ratio
    return _solve_ratio(trial, config, size, before)


def prune_(model: nn.Module, config: PruneConfig, example_input: torch.Tensor,
           calib_batches: Iterable | None = None,
           importance: Callable[[nn.Module], tp.importance.Importance] | None = None) -> PruneResult:
    """Prune ``model``'s in-scope channels in place (after truncating to ``config.keep_freq``).

    ``example_input`` (``(1, 3, H, W)``) sets the traced graph and the size MACs are counted
    at. ``calib_batches`` (image tensors or ``(images, labels)`` pairs; a list, since
    ``taylor`` and ``spectral`` may need it once each) feed the data-driven importances.
    ``importance``, a factory called with the truncated model, replaces ``config.importance``
    with any torch-pruning importance (controls such as random ranking, or experiments).
    """
    if not isinstance(config, PruneConfig):
        raise ConfigError(f"prune_ needs a PruneConfig, got {type(config).__name__}: use PruneConfig(channel_ratio=0.5)")
    adapter = adapter_for(model)
    adapter.check_prunable(model)
    convs = scope_convs(model, config.scope)
    asked, config = config, replace(config, protect=resolve_protect(model, config.scope, config.protect))
    if importance is None:
        require_calibration(config.importance, calib_batches)
    example = example_input.to(next(model.parameters()).device)
    size = (int(example.shape[-2]), int(example.shape[-1]))
    widths = {n: c.out_channels for n, c in convs.items()}
    keep, mode = adapter.truncation(model)
    was_training = model.training
    # any failure, in the checks or half-way through the surgery, hands the model back as it was
    with restored_on_failure(model):
        model.eval()
        try:
            before = count_macs(_meta_copy(model), size)  # same shapes as the model, nothing computed
            _truncate_for(model, config, keep, mode)
            config = replace(config, held=unprunable(model, config, size))
            ranking, after = None, None
            for _attempt in range(_RETRIES + 1):
                if config.channel_ratio is not None:
                    check_ratio(prunable_convs(model, config.scope, config.whole), config.channel_ratio,
                                config.round_to)
                    ratio = config.channel_ratio
                else:
                    ratio = _solve_ratio(model, config, size, before.total_macs)
                if ratio <= 0:
                    break
                if ranking is None:
                    ranking = importance(model) if importance is not None else build_importance(
                        config.importance, model, calib_batches, keep=adapter.truncation(model)[0],
                        scope=config.scope)
                try:
                    with restored_on_failure(model):  # a half-cut network is put back before the retry
                        _prune_at(model, ratio, ranking, example, config)
                        try:
                            after = count_macs(_meta_copy(model), size)  # the pruned widths meet (shapes only)
                        except _SHAPE_ERRORS as exc:
                            raise _Unrunnable(exc) from exc
                    break
                except _GroupFailed as failed:
                    # a mapping the shape-only trials could not see (their ranking differs): leave that
                    # group whole and solve again, so the MACs target still holds
                    if _attempt == _RETRIES:
                        raise failed.error from failed
                    config = replace(config, held=(*config.held, failed.root))
                except _Unrunnable as bad:
                    # widths that meet at the trial's ratio but not at this one (a split by a stored
                    # width): find the groups at this ratio, leave them whole, solve again
                    found = [r for r in unprunable(model, config, size, ratio) if r not in config.held]
                    if not found or _attempt == _RETRIES:
                        raise bad.error from bad
                    config = replace(config, held=(*config.held, *found))
            if ranking is not None:
                model.zero_grad(set_to_none=True)
            adapter.record_channels(model)
            if after is None:  # nothing pruned: the truncation alone
                after = count_macs(_meta_copy(model), size)
        finally:
            model.train(was_training)
    channels = {n: (widths[n], c.out_channels) for n, c in convs.items()}
    return PruneResult(asked, ratio, adapter.truncation(model)[0], before, after, channels,
                       tuple(h for h in config.held if h not in asked.held))
