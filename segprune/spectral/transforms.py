"""Small tensor helpers shared by the spectral measurements."""

from __future__ import annotations

from segprune.data.labels import one_hot  # noqa: F401  (re-exported: spectral code uses it)
from segprune.models.grid import dct_matrix  # noqa: F401  (lives in models: data flows models -> spectral)
