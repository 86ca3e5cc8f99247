"""Upper bounds on sizes, from a memory estimate checked before anything is allocated.

Why: a typo such as ``100000x100000``, or a checkpoint header claiming a billion channels,
would otherwise grow until the kernel kills the process, on a shared machine perhaps
someone else's first. Every size a user can give (image sizes, generated data, a model
rebuilt from a header) is turned into an estimate of the bytes it needs and refused with one
line naming the limit when that is over :func:`memory_limit`: 16 GiB by default, or
``SEGPRUNE_MEMORY_LIMIT_GIB`` for machines and jobs that need more. The estimates are lower
bounds, so nothing a machine could run is refused by them.
"""

from __future__ import annotations

import math
import os

from segprune.errors import ConfigError

DEFAULT_LIMIT_GIB = 16.0
ENV = "SEGPRUNE_MEMORY_LIMIT_GIB"

# A forward pass keeps at least the float32 input (3 channels) and a 64-channel float32 feature map per pixel.
INPUT_BYTES_PER_PIXEL = 4 * (3 + 64)


def memory_limit() -> int:
    """The most bytes one size may ask for (``SEGPRUNE_MEMORY_LIMIT_GIB``, default 16 GiB)."""
    text = os.environ.get(ENV)
    try:
        gib = float(text) if text else DEFAULT_LIMIT_GIB
    except ValueError:
        gib = math.nan
    if not (math.isfinite(gib) and gib > 0):
        raise ConfigError(f"{ENV}={text!r} is not a positive number of GiB, e.g. 64")
    return int(gib * (1 << 30))


def check_memory(what: str, estimate: int | float, fix: str) -> None:
    """Refuse ``what`` when its estimated ``estimate`` bytes exceed :func:`memory_limit`; ``fix`` says what to do."""
    limit = memory_limit()
    if estimate > limit:
        raise ConfigError(f"{what} needs at least {estimate / (1 << 30):.3g} GiB, over segprune's limit of "
                          f"{limit / (1 << 30):.3g} GiB: {fix} (or raise the limit with {ENV})")


def model_bytes(model) -> int:
    """The bytes of ``model``'s state (weights and buffers): what it allocates, and what a checkpoint of it holds.

    Works on the ``meta`` device too, where nothing is allocated: that is how sizes are checked first.
    """
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def check_input_size(size: tuple[int, int], what: str = "input size") -> None:
    """An image size a model runs at: one image's input and first feature map must fit the limit."""
    h, w = size
    check_memory(f"{what} {h}x{w}", h * w * INPUT_BYTES_PER_PIXEL, "use a smaller size")
