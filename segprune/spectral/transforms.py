"""Small tensor helpers shared by the spectral measurements."""

from __future__ import annotations

import functools
import math

import torch

from segprune.data.labels import one_hot  # noqa: F401  (re-exported: spectral code uses it)


@functools.lru_cache(maxsize=32)
def _dct_matrix_cpu(n: int) -> torch.Tensor:
    k = torch.arange(n, dtype=torch.float64)
    basis = torch.cos(math.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n))
    basis[0] *= 1 / math.sqrt(2)
    return basis * math.sqrt(2 / n)


def dct_matrix(n: int, device: torch.device | str | None = None, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Orthonormal DCT-II matrix ``C`` (``C @ x`` transforms a column; ``C.T`` inverts)."""
    return _dct_matrix_cpu(n).to(device=device, dtype=dtype)
