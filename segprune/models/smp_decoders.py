"""SMP decoders on a truncated grid: one grid for the whole decoder, as DESIGN.md's key decision 9 says.

``keep`` is a fraction of the decoder's *finest* grid (its ``decoder_stride``: 4 for
DeepLabV3+, FPN and Segformer, 1 for U-Net, the encoder's output stride for DeepLabV3 and
PSPNet), so one number means the same band in every family. The truncated grid is
``decoder_grid(finest, keep)``; every stage whose native grid is finer runs on it instead
(its skip input resampled there with the model's ``resize`` mode), coarser stages are
untouched, and the logits are upsampled to the input once, at the end.

Each truncated decoder is a subclass of SMP's own decoder class, never constructed: the
adapter swaps an existing decoder's ``__class__``, so the modules, their names and their
weights stay the user's, and ``keep = 1`` swaps SMP's class back, bit for bit.
DeepLabV3+'s decoder resamples its fusion back to the native stride-4 grid itself (SMP's head
is a 1x1 conv and a fixed x4 upsampling there, and models truncated that way exist); the
other decoders hand their output over on the truncated grid, and the model's class is
swapped to a subclass (:func:`logits_at_input`) whose forward runs the head's conv there and
resizes its logits to the input, skipping the head's fixed upsampling.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from segmentation_models_pytorch.decoders.deeplabv3.decoder import DeepLabV3Decoder, DeepLabV3PlusDecoder
from segmentation_models_pytorch.decoders.fpn.decoder import FPNDecoder
from segmentation_models_pytorch.decoders.pspnet.decoder import PSPDecoder
from segmentation_models_pytorch.decoders.segformer.decoder import SegformerDecoder
from segmentation_models_pytorch.decoders.unet.decoder import UnetDecoder
from torch import nn

from segprune.errors import ConfigError
from segprune.models.grid import decoder_grid, resize_to_grid


def _clamp(size, grid) -> tuple:
    """``size`` where it is no finer than ``grid``, else ``grid`` (per axis; symbolic under torch.export)."""
    return torch.sym_min(size[0], grid[0]), torch.sym_min(size[1], grid[1])


def _to(x: torch.Tensor, size, mode: str, **kwargs) -> torch.Tensor:
    """``x`` interpolated to ``size`` (``x`` itself when it is there already)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode=mode, **kwargs)


def _nearest(x: torch.Tensor, size) -> torch.Tensor:
    """Nearest resampling to ``size`` by integer source indices, ``(dst * in) // out``.

    PyTorch's ``nearest`` multiplies by a float scale, and for ratios that are not whole numbers
    (the truncated grids of a U-Net are rarely twice the coarser one) it picks a neighbouring
    source row now and then; onnxruntime's Resize rounds its own way, so the exported graph
    disagreed with PyTorch at those rows. Integer indices (a Gather in the graph) are exact in both
    and follow the input's shape, so a dynamic-H/W graph computes them per input too.
    """
    h, w = x.shape[-2:]
    rows = torch.div(torch.arange(size[0], device=x.device) * h, size[0], rounding_mode="floor")
    cols = torch.div(torch.arange(size[1], device=x.device) * w, size[1], rounding_mode="floor")
    return x.index_select(-2, rows).index_select(-1, cols)


class _Truncated:
    """What every truncated decoder carries: the kept band and the resampling mode of skip inputs."""

    keep: float = 1.0
    resize: str = "area"

    def grid(self, finest) -> tuple:
        return decoder_grid(finest[0], finest[1], self.keep)


class TruncatedDeepLabV3PlusDecoder(_Truncated, DeepLabV3PlusDecoder):
    """DeepLabV3+: the fusion (``block2``) on the truncated grid, its output resized back to stride 4."""

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        context = self.aspp(features[-1])
        skip = self.block1(features[2])
        native = skip.shape[-2:]
        grid = self.grid(native)
        skip = resize_to_grid(skip, grid, self.resize)
        # SMP upsamples the context with align_corners=True (its nn.Upsample); so does this
        context = F.interpolate(context, size=grid, mode="bilinear", align_corners=True)
        fused = self.block2(torch.cat([context, skip], dim=1))
        return F.interpolate(fused, size=native, mode="bilinear", align_corners=False)


class TruncatedUnetDecoder(_Truncated, UnetDecoder):
    """U-Net: each block whose target grid is finer than the truncated grid runs on it, its skip resampled there.

    The stride-2 and stride-1 blocks are the ones the label spectrum says carry little: at
    176x240 they run on 88x120 and 176x240 grids where CamVid's labels need about 65x86.
    """

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        shapes = [f.shape[2:] for f in features][::-1]
        grid = self.grid(shapes[-1])
        features = features[1:][::-1]
        skips = features[1:]
        x = self.center(features[0])
        for i, block in enumerate(self.blocks):
            height, width = _clamp(shapes[i + 1], grid)
            skip = skips[i] if i < len(skips) else None
            if skip is not None:
                skip = resize_to_grid(skip, (height, width), self.resize)
            if block.interpolation_mode == "nearest":  # then the block's own resampling is to the same size
                x = _nearest(x, (height, width))
            x = block(x, height, width, skip_connection=skip)
        return x


class TruncatedFPNDecoder(_Truncated, FPNDecoder):
    """FPN: the pyramid levels and segmentation branches finer than the truncated grid run on it; they merge there."""

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        c2, c3, c4, c5 = features[-4:]
        grid = self.grid(c2.shape[-2:])
        p5 = self.p5(c5)
        p4 = self._level(self.p4, p5, c4, grid)
        p3 = self._level(self.p3, p4, c3, grid)
        p2 = self._level(self.p2, p3, c2, grid)
        pyramid = [self._branch(block, p, grid) for block, p in zip(self.seg_blocks, (p5, p4, p3, p2), strict=True)]
        return self.dropout(self.merge(pyramid))

    def _level(self, block: nn.Module, x: torch.Tensor, skip: torch.Tensor, grid) -> torch.Tensor:
        size = _clamp(skip.shape[-2:], grid)
        # the 1x1 skip conv commutes with a linear resampling: resample first, on fewer channels' worth of work
        up = _to(x, size, block.interpolation_mode)
        return up + block.skip_conv(resize_to_grid(skip, size, self.resize))

    def _branch(self, block: nn.Module, x: torch.Tensor, grid) -> torch.Tensor:
        for step in block.block:  # Conv3x3GNReLU: conv, then (maybe) x2 bilinear with align_corners
            x = step.block(x)
            if step.upsample:
                x = _to(x, _clamp((2 * x.shape[-2], 2 * x.shape[-1]), grid), "bilinear", align_corners=True)
        return x


class TruncatedDeepLabV3Decoder(_Truncated, DeepLabV3Decoder):
    """DeepLabV3: the ASPP and its conv on the truncated grid (the decoder runs at the encoder's output stride)."""

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        x = resize_to_grid(x, self.grid(x.shape[-2:]), self.resize)
        return self.relu(self.bn(self.conv(self.aspp(x))))


class TruncatedPSPDecoder(_Truncated, PSPDecoder):
    """PSPNet: the pyramid pooling module and its conv on the truncated grid."""

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        x = resize_to_grid(x, self.grid(x.shape[-2:]), self.resize)
        return self.dropout(self.conv(self.psp(x)))


class TruncatedSegformerDecoder(_Truncated, SegformerDecoder):
    """Segformer: every stage's projection resized to the truncated grid instead of stride 4, fused there."""

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        target = self.grid([dim // 4 for dim in features[0].shape[2:]])
        features = features[2:] if features[1].size(1) == 0 else features[1:]
        features = features[::-1]
        resized = [F.interpolate(mlp(f), size=target, mode="bilinear", align_corners=False)
                   for mlp, f in zip(self.mlp_stage, features, strict=False)]  # as SMP pairs them
        return self.fuse_stage(torch.cat(resized, dim=1))


TRUNCATED = {DeepLabV3PlusDecoder: TruncatedDeepLabV3PlusDecoder, UnetDecoder: TruncatedUnetDecoder,
             FPNDecoder: TruncatedFPNDecoder, DeepLabV3Decoder: TruncatedDeepLabV3Decoder,
             PSPDecoder: TruncatedPSPDecoder, SegformerDecoder: TruncatedSegformerDecoder}
"""SMP decoder class -> its truncated subclass."""
RESIZES_ITSELF = (TruncatedDeepLabV3PlusDecoder,)
"""Truncated decoders that return their output on the native grid (the model's class is left alone)."""


class _LogitsAtInput:
    """Mixin before an SMP model class: the head's conv on the decoder's (truncated) grid, then one resize to the input.

    SMP's heads upsample by a fixed factor (x4 for FPN, x8 for DeepLabV3), which a truncated
    grid no longer matches; this forward skips that step and resizes the logits to the input
    size instead, once. Otherwise it is :meth:`SegmentationModel.forward`.
    """

    def forward(self, x: torch.Tensor):
        if not (torch.jit.is_scripting() or torch.jit.is_tracing() or torch.compiler.is_compiling()):
            self.check_input_shape(x)
        features = self.encoder(x)
        decoded = self.decoder(features)
        conv, _fixed_upsampling, activation = self.segmentation_head
        masks = activation(F.interpolate(conv(decoded), size=x.shape[-2:], mode="bilinear", align_corners=False))
        if self.classification_head is not None:
            return masks, self.classification_head(features[-1])
        return masks

    def save_pretrained(self, *args, **kwargs):
        raise ConfigError(f"this {smp_class(self).__name__} runs its decoder truncated, which SMP's save_pretrained "
                          "does not record (it would reload untruncated): save it with segprune.save_checkpoint")


@functools.cache
def logits_at_input(cls: type) -> type:
    """The subclass of SMP model class ``cls`` whose forward upsamples the logits once (:class:`_LogitsAtInput`)."""
    return type(cls.__name__, (_LogitsAtInput, cls), {"__module__": __name__, "__qualname__": cls.__qualname__})


def smp_class(model: nn.Module) -> type:
    """The SMP class a model is, beneath a truncation subclass."""
    return next(c for c in type(model).__mro__ if c.__module__.startswith("segmentation_models_pytorch"))


def truncatable(decoder: nn.Module) -> bool:
    return _base(decoder) in TRUNCATED


def _base(decoder: nn.Module) -> type:
    cls = type(decoder)
    return next((c for c in cls.__mro__ if c in TRUNCATED), cls)


def set_decoder_truncation(model: nn.Module, keep: float, mode: str) -> None:
    """Run ``model``'s decoder at ``keep`` (module docstring); ``keep = 1`` restores SMP's own classes."""
    decoder, base = model.decoder, _base(model.decoder)
    if keep >= 1.0:
        decoder.__class__ = base
        decoder.__dict__.pop("keep", None)
        decoder.__dict__.pop("resize", None)
        model.__class__ = smp_class(model)
        return
    truncated = TRUNCATED[base]
    decoder.__class__ = truncated
    decoder.keep, decoder.resize = keep, mode
    if truncated not in RESIZES_ITSELF:
        model.__class__ = logits_at_input(smp_class(model))
