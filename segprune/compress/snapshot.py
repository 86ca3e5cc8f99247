"""Undo for in-place compression: ``with restored_on_failure(model): ...`` leaves the model as it was
whenever the body raises.

Compression edits the user's own model object (torch-pruning replaces its parameters and
changes its modules' widths; truncation swaps decoder classes; adapters record the result in
config attributes). A failure half-way, a MACs target found unreachable after truncation, a
torch-pruning error in the middle of the surgery, or Ctrl-C, must not hand back a model that is
neither the old one nor the new one, so the whole of :func:`~segprune.compress.compress_` and
:func:`~segprune.compress.prune.prune_` runs inside this context.

The snapshot is shallow and costs no tensor memory: for every module it keeps the class and a
copy of ``__dict__`` with its own copies of the ``_parameters``, ``_buffers`` and ``_modules``
dicts (and of plain dict/list attributes such as SMP's constructor record). torch-pruning never
writes into a tensor; it assigns new ``Parameter`` objects and buffers, so putting the old dicts
back restores the very same tensors, and an optimizer holding the model's parameters still
holds the model's parameters. Gradients are restored too (``taylor`` ranking leaves them).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from torch import nn

_CONTAINERS = ("_parameters", "_buffers", "_modules")


def _state_of(module: nn.Module) -> tuple[type, dict[str, Any]]:
    saved = dict(module.__dict__)
    for key, value in saved.items():
        if key in _CONTAINERS or isinstance(value, (dict, list)):
            saved[key] = value.copy()
    return type(module), saved


@contextmanager
def restored_on_failure(model: nn.Module) -> Iterator[None]:
    """Run the body; if it raises (anything, KeyboardInterrupt included), put ``model`` back exactly and re-raise."""
    modules = {id(m): (m, _state_of(m)) for m in model.modules()}
    grads = {id(p): (p, p.grad) for p in model.parameters()}
    try:
        yield
    except BaseException:
        for module, (cls, saved) in modules.values():
            module.__class__ = cls
            module.__dict__.clear()
            module.__dict__.update(saved)
        for param, grad in grads.values():
            param.grad = grad
        raise

