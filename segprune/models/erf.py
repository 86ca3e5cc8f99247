"""Effective receptive field (ERF) of a segmentation model, following the OpenERF protocol.

The theoretical receptive field of a DeepLab head covers the whole image, but how much each
input pixel actually moves the prediction is far more concentrated, and ASPP leaves a 3x3
lattice of blobs r*OS pixels apart (RESEARCH.md 3.2-3.3). Measuring it shows whether the
atrous rates cover the image at the crop size the model runs at. Protocol (OpenERF,
``kmbmjn/OpenERF``, applied to the centre pixel of the logits as RESEARCH 3.2 infers): one
image at a time, the centre output position averaged over channels, its gradient w.r.t. the
input averaged over RGB and clamped to positive, accumulated over images, normalised to sum 1.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from segprune.errors import ConfigError


@dataclass
class ERFResult:
    """An accumulated ERF map and its summary numbers.

    ``map`` is (H, W), float64, non-negative and sums to 1. ``centre`` is the (row, col)
    input coordinate of the output position whose gradient was taken (for a feature map at
    stride s, the centre of that cell). ``radius_50``/``radius_90`` are the radii in input
    pixels of the smallest disc around ``centre`` holding 50% / 90% of the mass (a pixel is in
    the disc when its centre is). ``outside_central_half`` is the mass on pixels whose centres
    lie outside the central box [H/4, 3H/4] x [W/4, 3W/4] (half the height and width): near 0
    means the field of view never reaches the outer image.
    """

    map: Tensor
    centre: tuple[float, float]
    radius_50: float
    radius_90: float
    outside_central_half: float
    images: int
    target: str

    @property
    def size(self) -> tuple[int, int]:
        return int(self.map.shape[0]), int(self.map.shape[1])

    def radius(self, fraction: float) -> float:
        """Radius of the smallest disc around :attr:`centre` holding ``fraction`` of the mass."""
        return mass_radius(self.map, self.centre, fraction)

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-safe values (the map itself is left out: it is an image)."""
        return {"target": self.target, "images": self.images, "image_size": list(self.size),
                "centre": [self.centre[0], self.centre[1]], "radius_50": self.radius_50,
                "radius_90": self.radius_90, "outside_central_half": self.outside_central_half}


def effective_receptive_field(model: nn.Module, images: Iterable[Tensor], target: str = "logits",
                              reduce: str | int = "mean", *, device: str | torch.device | None = None,
                              progress: bool = False, total: int | None = None) -> ERFResult:
    """The ERF of ``model``'s centre output pixel over ``images`` (each (3, H, W) or (B, 3, H, W)).

    ``target`` is ``"logits"`` (the model output) or the name of a submodule (e.g. ``"aspp"``)
    whose output is used instead. ``reduce`` is ``"mean"`` over channels (OpenERF) or a
    channel / class index. A batch is split into single images (batch size 1, as OpenERF:
    BatchNorm in eval mode makes that only a memory matter). The model runs in eval mode and
    only the input receives a gradient: parameters are frozen for the call and restored after,
    so no weight gradient is computed or left behind. All images must share one size.
    """
    from tqdm import tqdm

    if not (reduce == "mean" or (isinstance(reduce, int) and not isinstance(reduce, bool))):
        raise ConfigError(f"ERF reduce {reduce!r} is not valid: use 'mean' (over channels) or a channel index")
    if device is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    total_map: Tensor | None = None
    centre: tuple[float, float] = (0.0, 0.0)
    count = 0
    with _input_gradients_only(model), _target_output(model, target) as grab:
        for batch in tqdm(images, desc="erf", unit="img", total=total, disable=not progress, leave=False,
                          file=sys.stderr):
            for image in _singles(batch):
                x = image.to(device=device, dtype=torch.float32).unsqueeze(0).requires_grad_(True)
                if total_map is not None and tuple(x.shape[-2:]) != tuple(total_map.shape):
                    raise ConfigError(f"ERF images differ in size ({tuple(total_map.shape)} and "
                                      f"{tuple(x.shape[-2:])}): resize them to one size (--input-size HxW)")
                out = grab(model(x))
                scalar, centre = _centre_value(out, reduce, tuple(x.shape[-2:]))
                (grad,) = torch.autograd.grad(scalar, x)
                contribution = grad[0].mean(0).clamp(min=0).to("cpu", torch.float64)
                total_map = contribution if total_map is None else total_map + contribution
                count += 1
    if total_map is None:
        raise ConfigError("no images for the ERF: give at least one image (--images N with N >= 1)")
    mass = float(total_map.sum())
    if not mass > 0:
        raise ConfigError(f"the {target} centre has no positive input gradient on any of {count} images "
                          "(dead activations or a constant model?): the ERF is undefined; try another checkpoint")
    erf = total_map / mass
    return ERFResult(map=erf, centre=centre, radius_50=mass_radius(erf, centre, 0.5),
                     radius_90=mass_radius(erf, centre, 0.9), outside_central_half=outside_central_half(erf),
                     images=count, target=target)


def mass_radius(erf: Tensor, centre: tuple[float, float], fraction: float) -> float:
    """Radius of the smallest disc around ``centre`` whose pixels hold ``fraction`` of ``erf``'s mass."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"mass fraction {fraction} is outside (0, 1]: use e.g. 0.5 or 0.9")
    dist = _distances(erf.shape, centre).flatten()
    order = torch.argsort(dist)
    cumulative = erf.flatten().to(torch.float64)[order].cumsum(0)
    cumulative = cumulative / cumulative[-1]
    index = int(torch.searchsorted(cumulative, torch.tensor(fraction - 1e-12, dtype=torch.float64)))
    return float(dist[order][min(index, dist.numel() - 1)])


def outside_central_half(erf: Tensor) -> float:
    """Mass on pixels whose centres lie outside [H/4, 3H/4] x [W/4, 3W/4]."""
    h, w = erf.shape

    def inside(n: int) -> Tensor:
        c = torch.arange(n, dtype=torch.float64) + 0.5
        return (c >= n / 4) & (c <= 3 * n / 4)

    box = inside(h)[:, None] & inside(w)[None, :]
    return float(erf[~box].sum() / erf.sum())


def _distances(shape: torch.Size, centre: tuple[float, float]) -> Tensor:
    rows = torch.arange(shape[0], dtype=torch.float64)[:, None] - centre[0]
    cols = torch.arange(shape[1], dtype=torch.float64)[None, :] - centre[1]
    return torch.sqrt(rows**2 + cols**2)


def _centre_value(out: Tensor, reduce: str | int, input_hw: tuple[int, int]) -> tuple[Tensor, tuple[float, float]]:
    """The scalar to differentiate and the input coordinate of the output position it sits at."""
    if not isinstance(out, Tensor) or out.dim() != 4:
        raise ConfigError(f"the ERF target must be a (1, C, h, w) tensor, got "
                          f"{tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__}: "
                          "pick a convolutional module as target")
    h, w = out.shape[-2:]
    i, j = h // 2, w // 2
    if reduce == "mean":
        value = out[0, :, i, j].mean()
    elif -out.shape[1] <= int(reduce) < out.shape[1]:
        value = out[0, int(reduce), i, j]
    else:
        raise ConfigError(f"ERF channel {reduce} does not exist: the target has {out.shape[1]} channels")
    # Cell centre of output position (i, j) in input pixels; exactly (i, j) when h, w match the input.
    centre = ((i + 0.5) * input_hw[0] / h - 0.5, (j + 0.5) * input_hw[1] / w - 0.5)
    return value, centre


def _singles(batch: Tensor) -> Iterator[Tensor]:
    if isinstance(batch, (tuple, list)):  # (images, labels) from a segprune loader
        batch = batch[0]
    if not isinstance(batch, Tensor) or batch.dim() not in (3, 4) or batch.shape[-3] != 3:
        shape = tuple(batch.shape) if isinstance(batch, Tensor) else type(batch).__name__
        raise ConfigError(f"ERF images must be (3, H, W) or (B, 3, H, W) tensors, got {shape}")
    yield from (batch.unsqueeze(0) if batch.dim() == 3 else batch)


@contextlib.contextmanager
def _input_gradients_only(model: nn.Module) -> Iterator[None]:
    """Eval mode (frozen BN, no dropout) and frozen parameters for the block; both restored after."""
    training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        with torch.enable_grad():
            yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(training)


@contextlib.contextmanager
def _target_output(model: nn.Module, target: str) -> Iterator[Any]:
    """A function mapping the model output to the target tensor (a hooked module's output, or itself)."""
    if target == "logits":
        yield lambda out: out
        return
    modules = dict(model.named_modules())
    if target not in modules or target == "":
        examples = ", ".join(n for n in ("aspp", "decoder.fuse", "backbone.layer4") if n in modules)
        raise ConfigError(f"ERF target {target!r} is not a module of this model: use 'logits' or a name from "
                          f"model.named_modules(){', e.g. ' + examples if examples else ''}")
    captured: list[Tensor] = []
    handle = modules[target].register_forward_hook(lambda _m, _i, out: captured.append(out))

    def grab(_out: Tensor) -> Tensor:
        value = captured.pop()
        captured.clear()
        return value

    try:
        yield grab
    finally:
        handle.remove()

