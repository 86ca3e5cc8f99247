"""Per-channel spectra of decoder features, measured with forward hooks on calibration batches.

For each hooked layer and channel this records the activation energy per square band (on
the layer's own grid, bin 0 = DC; see :mod:`segprune.spectral.bands`). The fraction of a
channel's energy inside band ``keep`` is how much of it survives truncation to
``--keep-freq keep``; the compression stage ranks channels by the energy they keep.

Default layers are the decoder's: the input of ``decoder.fuse.0`` (the concatenated ASPP
context and projected skip features, on the decoder grid: one channel per ASPP-projection
and skip-projection output channel) and the outputs of ``decoder.fuse.0``/``decoder.fuse.1``.
A layer name ending in ``:in`` records the module's input instead of its output.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm import tqdm

from segprune.errors import ConfigError
from segprune.spectral.bands import NBINS, band_index, band_radius, check_keep
from segprune.spectral.spectrum import power_spectrum

DEFAULT_LAYERS = ("decoder.fuse.0:in", "decoder.fuse.0", "decoder.fuse.1")


@dataclass
class FeatureSpectra:
    """``energy[layer]``: ``(C, nbins + 1)`` float64 energy per channel and band, summed over images."""

    nbins: int = NBINS
    energy: dict[str, torch.Tensor] = field(default_factory=dict)
    grids: dict[str, tuple[int, int]] = field(default_factory=dict)
    images: int = 0

    def add(self, layer: str, feature: torch.Tensor) -> None:
        h, w = feature.shape[-2:]
        power = power_spectrum(feature.detach().float(), "dft").sum(0)  # (C, h, w')
        idx = band_index(band_radius(h, w, "dft", onesided=True, device=power.device), self.nbins).reshape(-1)
        hist = torch.zeros(power.shape[0], self.nbins + 1, dtype=torch.float64, device=power.device)
        hist.index_add_(1, idx, power.reshape(power.shape[0], -1))
        if layer in self.energy:
            self.energy[layer] += hist.cpu()
        else:
            self.energy[layer] = hist.cpu()
        self.grids[layer] = (h, w)

    def kept_fraction(self, keep: float, exclude_dc: bool = False) -> dict[str, torch.Tensor]:
        """Per layer, each channel's share of its energy inside band ``keep`` (``(C,)``, in [0, 1])."""
        keep = check_keep(keep)
        cut = int(round(keep * self.nbins))
        out = {}
        for layer, e in self.energy.items():
            e = e.clone()
            if exclude_dc:
                e[:, 0] = 0.0
            total = e.sum(1)
            out[layer] = torch.where(total > 0, e[:, : cut + 1].sum(1) / total.clamp(min=1e-300),
                                     torch.ones_like(total))
        return out

    def kept_energy(self, keep: float) -> dict[str, torch.Tensor]:
        """Per layer, each channel's mean energy per image inside band ``keep`` (``(C,)``)."""
        cut = int(round(check_keep(keep) * self.nbins))
        return {layer: e[:, : cut + 1].sum(1) / max(self.images, 1) for layer, e in self.energy.items()}


def default_layers(model: nn.Module) -> list[str]:
    """The decoder layers the model's family adapter names (segprune's: ``DEFAULT_LAYERS``)."""
    from segprune.models.adapters import find_adapter

    adapter = find_adapter(model)
    return list(adapter.features_of(model)) if adapter is not None else list(DEFAULT_LAYERS)


def resolve_layers(model: nn.Module, layers: Iterable[str] | None = None) -> list[str]:
    """The hook targets, checked against the model's module names."""
    modules = dict(model.named_modules())
    wanted = list(layers) if layers else default_layers(model)
    missing = [name for name in wanted if name.removesuffix(":in") not in modules]
    if missing:
        containers = sorted({n for n, m in modules.items() if n and n.count(".") <= 1 and len(list(m.children()))})
        hint = ("this model has no DeepLabV3+/DAN decoder; " if not layers else "")
        raise ConfigError(f"{hint}no module named {', '.join(missing)}; modules include {', '.join(containers[:12])}"
                          " - name the decoder layers to measure with --layers NAME[,NAME...] (':in' for a "
                          "module's input)")
    return wanted


@contextlib.contextmanager
def recording(model: nn.Module, layers: Iterable[str] | None = None, nbins: int = NBINS) -> Iterator[FeatureSpectra]:
    """Attach the spectrum hooks for the duration of the block; every forward adds to the result."""
    names = resolve_layers(model, layers)
    modules = dict(model.named_modules())
    result = FeatureSpectra(nbins=nbins)
    handles = []
    for name in names:
        module = modules[name.removesuffix(":in")]
        if name.endswith(":in"):
            handles.append(module.register_forward_pre_hook(lambda m, args, n=name: result.add(n, args[0])))
        else:
            handles.append(module.register_forward_hook(lambda m, args, out, n=name: result.add(n, out)))
    try:
        yield result
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def feature_spectra(model: nn.Module, batches: Iterable, layers: Iterable[str] | None = None, *,
                    nbins: int = NBINS, device: torch.device | str = "cpu", max_batches: int | None = None,
                    progress: bool = True) -> FeatureSpectra:
    """Run ``model`` in eval mode over ``batches`` and accumulate per-channel spectra.

    ``batches`` yields image tensors ``(B, 3, H, W)`` or ``(images, labels)`` pairs.
    """
    was_training = model.training
    model.eval()
    try:
        with recording(model, layers, nbins) as result:
            for i, batch in enumerate(tqdm(batches, desc="feature spectra", unit="batch", disable=not progress,
                                           total=max_batches, leave=False)):
                if max_batches is not None and i >= max_batches:
                    break
                images = batch[0] if isinstance(batch, (tuple, list)) else batch
                model(images.to(device))
                result.images += images.shape[0]
    finally:
        model.train(was_training)
    return result
