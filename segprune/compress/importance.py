"""Channel importance for torch-pruning: ``SpectralImportance`` and the baselines, by name.

A channel's spectral importance is its mean activation energy per image *inside the band
that truncation keeps*, measured with forward hooks on calibration batches at the output of
the conv's block (the ConvBNReLU output: after BN and ReLU, what downstream layers see).
Channels that live in the high bands the truncated decoder throws away score low and go
first; with ``keep = 1`` the score is plain activation energy (the squared L2 norm of the
activations per pixel).

Band per layer: ``keep`` is a fraction of the native decoder grid (its finest: output stride
4, the ``layer1`` grid, in DeepLabV3+; the adapter's ``decoder_stride``). A layer on a coarser grid keeps ``min(1, keep * stride_layer /
stride_decoder)`` of its own band, because a feature upsampled from OS16 to OS4 only
occupies the lowest quarter of the OS4 band: at ``keep = 0.25`` the ASPP (OS16) keeps all of
its band and the decoder a quarter. The stride ratio is read from the measured grids against
the native one (``sqrt(H4*W4 / (H*W))``, ``H4 = ceil(H_in / decoder_stride)``), so fuse convs that already run on a truncated grid keep their
whole band, and finer layers (the stem, OS2) keep less than ``keep``.

``spectral-l1`` keeps only the spectral *shape* of that measurement: the fraction of a
channel's energy inside the kept band, times torch-pruning's L1 group magnitude. Absolute
activation energy turned out to rank channels worse than random order on CamVid (a
channel active on few pixels, a small class's detector, has little energy and a large
effect), while the in-band fraction ranks better than magnitude alone there before any
fine-tuning (``benchmarks/importance_ranking.py``). After fine-tuning (CE + distillation,
``benchmarks/finetune_budget.py``; figures in docs/results.md) it was ahead of L1 at half the MACs
on the first baseline after 20 epochs (+0.72 paired, 2 seeds), and behind it on every paired seed
of the retrained baseline after 8 epochs at scope all (means -0.33, -1.51, -1.34, -2.25 at 0.5, 0.4,
0.33 and 0.25 of the MACs; -0.54 at 0.33 on the first), and 1.5 behind with the decoder only and one
epoch of CE (``benchmarks/compression.py``). At keep 0.75 every layer coarser than the decoder grid keeps
its whole band, so the in-band fraction is 1 there and the ranking differs from L1 only on the
stride-2/4 path (stem, first stage, skip projection): that path, whose finer channels feed the
untruncated encoder as well as the decoder, is where it gains or loses, and ``--protect fine``
(:mod:`segprune.compress.scope`), the default at ``--scope all``, keeps it whole, so there the two
rankings give one model. ``spectral-l1`` is the default ranking; plain ``spectral`` stays selectable.

Blocks: the enclosing ``Sequential`` that starts with the conv and holds no other conv
(ConvBNReLU, the ASPP pooling branch, torchvision's Conv2dNormActivation/downsample);
otherwise the BatchNorm right after the conv (ResNet blocks, whose ReLU module is shared);
otherwise the conv's own output.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from segprune.compress.scope import IMPORTANCES, scope_convs
from segprune.errors import ConfigError
from segprune.models.adapters import adapter_for
from segprune.spectral.bands import NBINS, check_keep
from segprune.spectral.features import feature_spectra

try:
    import torch_pruning as tp
except ModuleNotFoundError as exc:  # optional dependency: segprune[prune]
    raise ConfigError("channel pruning needs torch-pruning, which is not installed: "
                      "pip install 'segprune[prune]' (torch-pruning>=1.5)") from exc

_OUT_CONV = (tp.prune_conv_out_channels, tp.prune_depthwise_conv_out_channels)


def block_of(model: nn.Module, conv_name: str) -> str:
    """The module whose output carries ``conv_name``'s channels as downstream layers see them."""
    parent_name, _, child = conv_name.rpartition(".")
    parent = model.get_submodule(parent_name)
    children = list(parent.named_children())
    names = [n for n, _ in children]
    if (isinstance(parent, nn.Sequential) and names[0] == child
            and sum(isinstance(m, nn.Conv2d) for m in parent.modules()) == 1):
        return parent_name
    i = names.index(child)
    if i + 1 < len(children) and isinstance(children[i + 1][1], nn.modules.batchnorm._BatchNorm):
        return f"{parent_name}.{names[i + 1]}" if parent_name else names[i + 1]
    return _enclosing_block(model, conv_name)


def _enclosing_block(model: nn.Module, conv_name: str) -> str:
    """The outermost ``Sequential`` whose last conv is ``conv_name`` and that ends in a norm or activation.

    A separable conv (SMP's ``Sequential(depthwise, pointwise)``) inside ``Sequential(sep,
    BN, ReLU)`` is such a case: the pointwise conv's channels reach the next layer after
    that BN and ReLU. Falls back to the conv's own output.
    """
    best, name = conv_name, conv_name
    while "." in name:
        name = name.rpartition(".")[0]
        block = model.get_submodule(name)
        if not isinstance(block, nn.Sequential):
            break
        convs = [n for n, m in block.named_modules() if isinstance(m, nn.Conv2d)]
        if not convs or f"{name}.{convs[-1]}" != conv_name:
            break
        if not isinstance(block[-1], nn.Conv2d) and not isinstance(block[-1], nn.Sequential):
            best = name
    return best


def _device(model: nn.Module) -> torch.device:
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def measure_channel_energy(model: nn.Module, batches: Iterable, keep: float = 1.0, scope: str = "decoder", *,
                           max_batches: int | None = None, nbins: int = NBINS,
                           fraction: bool = False) -> dict[str, torch.Tensor]:
    """``{conv name: (C,) float64}``: each in-scope conv's channel energy per image inside its kept band.

    With ``fraction``, the share of each channel's energy that lies inside that band instead.
    """
    keep = check_keep(keep)
    blocks = {name: block_of(model, name) for name in scope_convs(model, scope)}
    modules = dict(model.named_modules())
    inputs: list[tuple[int, int]] = []  # the native decoder grid follows from the input size and the decoder stride
    handle = model.register_forward_pre_hook(lambda m, args: inputs.append(tuple(args[0].shape[-2:])))
    try:
        spectra = feature_spectra(model, batches, sorted(set(blocks.values())), nbins=nbins, device=_device(model),
                                  max_batches=max_batches, progress=False)
    finally:
        handle.remove()
    if spectra.images == 0:
        raise ConfigError("spectral importance got no calibration images: pass at least one batch "
                          "(e.g. --calib-images 8)")
    stride = adapter_for(model).decoder_stride(model)
    h4, w4 = (math.ceil(side / stride) for side in inputs[0])
    energy = {}
    for conv, block in blocks.items():
        if block not in spectra.grids:  # never ran (an SMP encoder stage past encoder_depth): no energy, no MACs
            energy[conv] = torch.zeros(modules[conv].out_channels, dtype=torch.float64)
            continue
        h, w = spectra.grids[block]
        band = min(1.0, keep * math.sqrt(h4 * w4 / (h * w)))
        hist = spectra.energy[block]
        energy[conv] = hist[:, : int(round(band * nbins)) + 1].sum(1) / spectra.images
        if fraction:
            energy[conv] = energy[conv] / (hist.sum(1) / spectra.images).clamp(min=1e-30)
    return energy


class SpectralImportance(tp.importance.Importance):
    """torch-pruning importance: a channel's in-band activation energy (see the module docstring).

    Build it with :meth:`measure` or from ``measure_channel_energy``'s result. A group's score
    is the sum over its output-pruned convs that were measured (coupled residual convs add
    up), returned over the root's indices as torch-pruning expects.
    """

    def __init__(self, model: nn.Module, energy: Mapping[str, torch.Tensor]) -> None:
        modules = dict(model.named_modules())
        unknown = [n for n in energy if n not in modules]
        if unknown:
            raise ConfigError(f"channel energies name {unknown[:3]}, which are not modules of this model: "
                              "measure them on the model you prune")
        self._energy = {modules[n]: e for n, e in energy.items()}
        self._names = {modules[n]: n for n in energy}

    @classmethod
    def measure(cls, model: nn.Module, batches: Iterable, keep: float = 1.0, scope: str = "decoder",
                **kwargs) -> SpectralImportance:
        return cls(model, measure_channel_energy(model, batches, keep, scope, **kwargs))

    @torch.no_grad()
    def __call__(self, group) -> torch.Tensor:
        return self._over_producers(group)[0].float()

    def _over_producers(self, group) -> tuple[torch.Tensor, torch.Tensor]:
        """Per root channel: the sum of the measured values of its producing convs, and their count."""
        scores = torch.zeros(len(group[0].idxs), dtype=torch.float64)
        count = torch.zeros_like(scores)
        for item in group:
            energy = self._energy.get(item.dep.target.module)
            root_idxs = item.root_idxs
            if energy is None or item.dep.handler not in _OUT_CONV or root_idxs is None or None in root_idxs:
                continue
            root = torch.as_tensor(root_idxs)
            scores.index_add_(0, root, energy[torch.as_tensor(item.idxs)].double())
            count.index_add_(0, root, torch.ones(len(root), dtype=torch.float64))
        if not count.any():
            root = group[0].dep.target.module
            raise ConfigError(f"spectral importance has no measurement for {self._names.get(root, type(root).__name__)}:"
                              " measure the channel energies with the same --scope you prune")
        return scores, count


class SpectralMagnitudeImportance(SpectralImportance):
    """``spectral-l1``: in-band energy fraction times the L1 group magnitude (module docstring).

    Build it with :meth:`measure`. Coupled convs' fractions are averaged (a group's channel is
    as band-limited as its producers are on average), then scale torch-pruning's
    ``GroupMagnitudeImportance(p=1)`` of the same group.
    """

    def __init__(self, model: nn.Module, fraction: Mapping[str, torch.Tensor]) -> None:
        super().__init__(model, fraction)
        self._magnitude = tp.importance.GroupMagnitudeImportance(p=1)

    @classmethod
    def measure(cls, model: nn.Module, batches: Iterable, keep: float = 1.0, scope: str = "decoder",
                **kwargs) -> SpectralMagnitudeImportance:
        return cls(model, measure_channel_energy(model, batches, keep, scope, fraction=True, **kwargs))

    @torch.no_grad()
    def __call__(self, group) -> torch.Tensor:
        total, producers = self._over_producers(group)
        return (total / producers.clamp(min=1.0) * self._magnitude(group).double()).float()


def accumulate_gradients(model: nn.Module, batches: Iterable, *, ignore_index: int = 255,
                         max_batches: int | None = None) -> int:
    """Backward passes of cross-entropy on calibration batches, leaving gradients in ``.grad`` (Taylor).

    Batches of ``(images, labels)`` use the labels; bare image batches use the model's own
    predictions as targets. Runs in eval mode (running BN statistics, no dropout).
    Returns the number of batches used.
    """
    was_training, device, used = model.training, _device(model), 0
    model.eval()
    model.zero_grad(set_to_none=True)
    try:
        with torch.enable_grad():
            for batch in batches:
                if max_batches is not None and used >= max_batches:
                    break
                pair = isinstance(batch, (tuple, list))
                images = batch[0] if pair else batch
                logits = model(images.to(device))
                labels = batch[1].to(device).long() if pair and len(batch) > 1 else logits.detach().argmax(1)
                F.cross_entropy(logits, labels, ignore_index=ignore_index).backward()
                used += 1
    finally:
        model.train(was_training)
    if used == 0:
        raise ConfigError("taylor importance got no calibration batches: pass at least one (e.g. --calib-images 8)")
    return used


WEIGHT_ONLY = ("l1", "l2", "bn")
"""Rankings that read weights only; every other one measures channels on calibration batches."""


def require_calibration(name: str, batches: Iterable | None) -> None:
    """Refuse a data-driven ranking without calibration batches, before any work is done."""
    if name not in WEIGHT_ONLY and batches is None:
        raise ConfigError(f"--importance {name} needs calibration batches (images or image, label pairs): "
                          "pass calib_batches (CLI: --calib-images N), or use l1, l2 or bn")


def build_importance(name: str, model: nn.Module | None = None, batches: Iterable | None = None, *,
                     keep: float = 1.0, scope: str = "decoder", **kwargs) -> tp.importance.Importance:
    """The importance called ``name`` (one of ``IMPORTANCES``), ready for a torch-pruning pruner.

    ``l1``/``l2`` are filter-norm magnitudes and ``bn`` the BN scale (network slimming): they
    read weights only. ``taylor`` runs backward passes on ``batches`` now (gradients stay in
    ``.grad`` until pruning) and ``spectral`` measures channel energies on ``batches``.
    """
    if name not in IMPORTANCES:
        raise ConfigError(f"--importance {name!r} is not valid: use one of {', '.join(IMPORTANCES)}")
    if name == "l1":
        return tp.importance.GroupMagnitudeImportance(p=1)
    if name == "l2":
        return tp.importance.GroupMagnitudeImportance(p=2)
    if name == "bn":
        return tp.importance.BNScaleImportance()
    require_calibration(name, None if model is None else batches)
    if name == "taylor":
        accumulate_gradients(model, batches, **kwargs)
        return tp.importance.GroupTaylorImportance()
    if name == "spectral-l1":
        return SpectralMagnitudeImportance.measure(model, batches, keep, scope, **kwargs)
    return SpectralImportance.measure(model, batches, keep, scope, **kwargs)
