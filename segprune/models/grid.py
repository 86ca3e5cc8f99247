"""The decoder grid: where ``--keep-freq`` turns into a feature-map size, and a label cut-off into a keep-freq.

This module owns the keep-freq concept: its validation (:func:`check_keep`), the grid it
selects (:func:`decoder_grid`), the resampling onto that grid (:func:`resize_to_grid`) and
the conversion from a label cut-off frequency to the grid that resolves it and the
keep-freq that yields that grid (:func:`recommend_grid`, inverted by :func:`held_band`).
A grid of ``n`` samples along an axis resolves ``n/2`` cycles per image, i.e. the band
fraction ``n / N`` of the Nyquist of ``N``-pixel label maps, whatever size the image was
resampled to; labels with cut-off ``f_c`` need ``n >= f_c * N_label`` per axis (RESEARCH.md
1.2(e)), and a decoder at output stride 4 on an ``N_in``-pixel input gives that grid at
``keep-freq = n / ceil(N_in / 4)``.

The decoder of DeepLabV3+ and DAN normally runs at output stride 4 (the ``layer1`` grid).
Feature truncation (DESIGN.md, key decision 1) runs it on ``ceil(f*H4) x ceil(f*W4)``
instead, so its 3x3 convolutions cost about ``f**2``. Both the size rule and the resampling
operators live here, so the models only ever call :func:`resize_to_grid`.

``spectral`` mode (key decision 2) is exact band-limiting: keep the low-frequency
``h x w`` block of the orthonormal 2-D DCT-II of each ``H x W`` map and invert at ``h x w``.
That is two small matrix products ``A_h @ X @ A_w^T`` with constant matrices, so it exports
to ONNX as MatMul and runs well in TensorRT, at the price of static spatial shapes. The
DCT matrix is defined here (models must not import :mod:`segprune.spectral`, which builds
on models); :func:`segprune.spectral.transforms.dct_matrix` is this function.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import numpy as np
import torch
import torch.nn.functional as F

from segprune.errors import ConfigError

RESIZE_MODES = ("bilinear", "area", "spectral")


def check_keep(keep: float, name: str = "keep-freq") -> float:
    """``keep`` as a float in ``(0, 1]`` (finite), or a ConfigError naming the valid range.

    The one validation of ``--keep-freq`` (CLI option, ``TruncationConfig``,
    ``CompressConfig``, the model config's ``decoder_keep``): ``name`` is how the caller's
    user spells it.
    """
    try:
        value = float(keep)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(keep, bool) or not 0.0 < value <= 1.0:  # NaN fails the comparison too
        label = name if name.startswith(("model config", "--")) else f"--{name}"
        shown = value if math.isfinite(value) and not isinstance(keep, bool) else repr(keep)
        raise ConfigError(f"{label} {shown} is outside (0, 1]: it is the fraction of the band kept along each axis, "
                          "e.g. 0.25 keeps a quarter of the frequencies per axis (1 keeps all)")
    return value


@functools.lru_cache(maxsize=64)
def _keep_ratio(keep: float) -> tuple[int, int]:
    # keep as p/q: 0.1 is 1/10 here, where 0.1 * 30 in floating point is 3.0000000000000004.
    # a keep below 1/2**17 would round to 0/1, a 0x0 grid: the smallest ratio still gives one sample
    ratio = Fraction(keep).limit_denominator(1 << 16) or Fraction(1, 1 << 16)
    return ratio.numerator, ratio.denominator


def decoder_grid(h4, w4, keep: float) -> tuple:
    """The decoder grid for a native ``h4 x w4`` grid and per-axis keep fraction ``keep``.

    ``keep = 1`` returns the native size itself; otherwise each side is
    ``ceil(keep * side)`` (at least 1 for any side >= 1), so a keep fraction never rounds a
    band away. The ceiling is integer arithmetic on non-negative numbers,
    ``(side * p + q - 1) // q`` with ``keep = p/q``, so that under ``torch.export`` the sides
    stay symbolic (the grid of a model exported with dynamic H and W follows the input instead
    of being frozen at the example's size), and floor division means the same in ONNX, whose
    integer Div truncates, as in Python.
    """
    if keep >= 1.0:
        return h4, w4
    p, q = _keep_ratio(float(keep))
    return (h4 * p + q - 1) // q, (w4 * p + q - 1) // q


@functools.lru_cache(maxsize=64)
def _dct_matrix_np(n: int) -> np.ndarray:
    # numpy, not torch: a matrix first built while torch.onnx traces the model must be a
    # constant of the graph (a MatMul initializer), not a recorded chain of Cos/Mul nodes.
    k = np.arange(n, dtype=np.float64)
    basis = np.cos(math.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n))
    basis[0] *= 1 / math.sqrt(2)
    return basis * math.sqrt(2 / n)


def _constant(array: np.ndarray, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    # Built outside inference mode: an inference tensor cached by an eval pass could not be
    # saved for backward by a later training step.
    with torch.inference_mode(False):
        return torch.from_numpy(np.ascontiguousarray(array)).to(device=device, dtype=dtype)


def _cached(builder, *key) -> torch.Tensor:
    # Under torch.export / torch.compile tensors are fake: one cached there would poison the
    # cache for every later eager call, so traced calls build an uncached constant.
    if torch.compiler.is_compiling():
        return builder.__wrapped__(*key)
    return builder(*key)


@functools.lru_cache(maxsize=128)
def _dct_matrix(n: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return _constant(_dct_matrix_np(n), device, dtype)


def dct_matrix(n: int, device: torch.device | str | None = None, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Orthonormal DCT-II matrix ``C`` (``C @ x`` transforms a column; ``C.T`` inverts).

    Cached per ``(n, device, dtype)``: the result is shared, never modify it in place.
    """
    return _cached(_dct_matrix, int(n), torch.device(device or "cpu"), dtype)


def _truncation_np(out: int, n: int) -> np.ndarray:
    return math.sqrt(out / n) * _dct_matrix_np(out).T @ _dct_matrix_np(n)[:out, :]


@functools.lru_cache(maxsize=128)
def truncation_matrix(out: int, n: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``A = sqrt(out/n) * C_out^T @ C_n[:out, :]`` (``out x n``): band-limit a length-``n`` axis to ``out``.

    It keeps the ``out`` lowest DCT-II coefficients and inverts them at length ``out``; the
    ``sqrt`` factor turns the orthonormal DC coefficient back into the same mean, so constant
    maps stay constant. Cached per ``(out, n, device, dtype)`` (shared: do not modify).
    """
    return _constant(_truncation_np(out, n), device, dtype)


@functools.lru_cache(maxsize=128)
def _truncation_matrix_t(out: int, n: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    # stored transposed, so the ONNX graph holds a plain initializer and no Transpose node
    return _constant(_truncation_np(out, n).T, device, dtype)


def spectral_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Exact low-pass resampling of ``x`` (B, C, H, W) to a smaller or equal ``size`` by DCT truncation.

    Computed as ``A_h @ X @ A_w^T`` in the cheaper association order; an axis that keeps its
    length is left alone (its matrix would be the identity).
    """
    (h, w), (big_h, big_w) = (int(size[0]), int(size[1])), (int(x.shape[-2]), int(x.shape[-1]))
    if h > big_h or w > big_w:
        raise ValueError(f"spectral_resize only shrinks: {tuple(x.shape[-2:])} -> {(h, w)}")
    a_h = _cached(truncation_matrix, h, big_h, x.device, x.dtype) if h != big_h else None
    a_wt = _cached(_truncation_matrix_t, w, big_w, x.device, x.dtype) if w != big_w else None
    if a_h is not None and a_wt is not None and big_h * w * (big_w + h) < h * big_w * (big_h + w):
        return a_h @ (x @ a_wt)  # columns first is cheaper for tall maps
    if a_h is not None:
        x = a_h @ x
    return x @ a_wt if a_wt is not None else x


def resize_to_grid(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """Resample ``x`` (B, C, H, W) to ``size`` with ``mode``; the identity when sizes agree.

    The identity short-cut is what makes ``keep = 1`` bit-exact with the unmodified model.
    ``area`` is an anti-aliasing *down*-sampler (a box filter) and ``spectral`` an exact
    low-pass one; asked to enlarge along either axis they would replicate pixels (area) or
    add nothing above the input's band (spectral), so both fall back to bilinear there.
    ``bilinear`` uses ``align_corners=False`` and no antialiasing, which exports to a plain
    ONNX Resize.
    """
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize mode {mode!r} is not one of {RESIZE_MODES}")
    size = (size[0], size[1])  # not int(): under torch.export the sides may be symbolic
    in_h, in_w = x.shape[-2:]
    if (in_h, in_w) == size:
        return x
    shrinks = size[0] <= in_h and size[1] <= in_w
    if mode == "area" and shrinks:
        return F.interpolate(x, size=size, mode="area")
    if mode == "spectral" and shrinks:
        return spectral_resize(x, size)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


STANDARD_STRIDES = (1, 2, 4, 8, 16, 32)


def recommend_grid(cutoff: float, label_size: tuple[int, int], input_size: tuple[int, int] | None = None,
                   decoder_stride: int = 4, strides: tuple[int, ...] = STANDARD_STRIDES) -> dict:
    """The grid that resolves a label cut-off, and what it asks of a model run at ``input_size``.

    ``cutoff`` is a fraction of the Nyquist of the *label maps* (``label_size``), so the
    labels carry up to ``cutoff * N / 2`` cycles per image along an axis of ``N`` label
    pixels. A grid of ``n`` samples across the image resolves ``n / 2`` cycles per image
    whatever the resolution the image was resampled to, so the grid needs
    ``n >= cutoff * N_label`` samples, set by the labels alone; the input size only sets
    what the decoder has (``ceil(input / decoder_stride)``). ``keep_freq`` is the decoder
    truncation that yields the grid, capped at 1; when the decoder is already too coarse
    (``decoder_resolves_cutoff`` false) ``input_size_needed`` is the smallest input of the
    same aspect, in multiples of 16, whose decoder holds the grid. ``output_stride`` is the
    coarsest standard stride whose grid at ``input_size`` still covers it.
    """
    lh, lw = label_size
    ih, iw = input_size or label_size
    grid = (max(1, math.ceil(cutoff * lh - 1e-9)), max(1, math.ceil(cutoff * lw - 1e-9)))
    fits = [s for s in strides if math.ceil(ih / s) >= grid[0] and math.ceil(iw / s) >= grid[1]]
    stride = max(fits) if fits else min(strides)
    dec = (math.ceil(ih / decoder_stride), math.ceil(iw / decoder_stride))
    need = max(grid[0] / dec[0], grid[1] / dec[1])
    scale = max(need, 1.0)
    return {
        "cutoff": cutoff,
        "label_size": [lh, lw],
        "input_size": [ih, iw],
        "grid": list(grid),
        "output_stride": stride,
        "stride_grid": [math.ceil(ih / stride), math.ceil(iw / stride)],
        "decoder_grid": list(dec),
        "keep_freq": min(1.0, need),
        "decoder_resolves_cutoff": need <= 1.0,
        "input_size_needed": [16 * math.ceil(ih * scale / 16), 16 * math.ceil(iw * scale / 16)],
    }


def held_band(keep: float, label_size: tuple[int, int], input_size: tuple[int, int],
              decoder_stride: int = 4) -> float:
    """The label band (fraction of the labels' Nyquist, square) the truncated decoder resolves.

    The inverse of :func:`recommend_grid`: a decoder grid of ``n`` samples holds
    ``n / N_label`` of the band along each axis; the square band is the smaller of the two.
    """
    check_keep(keep)
    n = decoder_grid(math.ceil(input_size[0] / decoder_stride), math.ceil(input_size[1] / decoder_stride), keep)
    return min(1.0, n[0] / label_size[0], n[1] / label_size[1])
