"""Multiply-accumulate counts at the real input size, per module group.

Truncation changes the decoder's *activation* sizes, not its weights, so only a count made
from actual output shapes (forward hooks) sees it. Counted: ``Conv2d`` (output elements x
``in_channels / groups`` x kernel area), ``Linear`` (output elements x ``in_features``) and
every matrix product (the ``spectral`` truncation's ``A_h @ X @ A_w^T``: output elements x
inner size), which are not modules and are caught by a ``TorchFunctionMode``. Bias adds,
norms, activations, pooling and resizes are not counted: they are memory-bound and small.
A model on the ``meta`` device is counted without computing anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

_MATMULS = {torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.mm, torch.Tensor.mm,
            torch.bmm, torch.Tensor.bmm}
TOTAL = "total"


@dataclass
class MacReport:
    """MACs and parameters of one forward pass of a batch of 1 at ``input_size``.

    ``macs``/``params`` map each top-level child of the model (``backbone``, ``aspp``,
    ``decoder`` for segprune models) and ``"total"`` to counts; ``layers`` maps every counted
    module name (``"<module>@matmul"`` for matrix products) to its MACs.
    """

    input_size: tuple[int, int]
    macs: dict[str, int] = field(default_factory=dict)
    params: dict[str, int] = field(default_factory=dict)
    layers: dict[str, int] = field(default_factory=dict)

    @property
    def total_macs(self) -> int:
        return self.macs.get(TOTAL, 0)

    @property
    def total_params(self) -> int:
        return self.params.get(TOTAL, 0)

    def macs_of(self, prefixes: Sequence[str]) -> int:
        """MACs of the layers whose names start with any of ``prefixes`` (whole name components)."""
        return sum(v for name, v in self.layers.items() if _under(name.split("@")[0], prefixes))

    def to_dict(self) -> dict[str, Any]:
        return {"input_size": list(self.input_size), "macs": dict(self.macs), "params": dict(self.params),
                "layers": dict(self.layers)}


def _under(name: str, prefixes: Sequence[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


class _MatmulCounter(TorchFunctionMode):
    def __init__(self, stack: list[str], layers: dict[str, int]) -> None:
        super().__init__()
        self.stack, self.layers = stack, layers

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in _MATMULS and isinstance(out, torch.Tensor):
            inner = args[0].shape[-1] if args[0].dim() > 0 else 1
            key = f"{self.stack[-1] if self.stack else ''}@matmul"
            self.layers[key] = self.layers.get(key, 0) + out.numel() * int(inner)
        return out


@torch.no_grad()
def count_macs(model: nn.Module, input_size: Sequence[int]) -> MacReport:
    """Count MACs and parameters of ``model`` on one ``(1, 3, H, W)`` input, in eval mode.

    The input is created on the device and dtype of the model's first parameter (so a
    ``meta`` model costs nothing); the model's train/eval mode is restored afterwards.
    """
    h, w = (int(s) for s in input_size)
    first = next(model.parameters(), None)
    x = torch.zeros(1, 3, h, w, device=first.device if first is not None else None,
                    dtype=first.dtype if first is not None else None)
    layers: dict[str, int] = {}
    stack: list[str] = []
    handles = []
    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(lambda m, a, n=name: stack.append(n)))
        handles.append(module.register_forward_hook(lambda m, a, o, n=name: _count(m, n, o, layers, stack)))
    was_training = model.training
    model.eval()
    try:
        with _MatmulCounter(stack, layers):
            model(x)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    report = MacReport(input_size=(h, w), layers=layers)
    for name, module in model.named_children():
        report.macs[name] = report.macs_of([name])
        report.params[name] = sum(p.numel() for p in module.parameters())
    report.macs[TOTAL] = sum(layers.values())
    report.params[TOTAL] = sum(p.numel() for p in model.parameters())
    return report


def _count(module: nn.Module, name: str, out: Any, layers: dict[str, int], stack: list[str]) -> None:
    if stack:
        stack.pop()
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        macs = out.numel() * (module.in_channels // module.groups) * kh * kw
    elif isinstance(module, nn.Linear):
        macs = out.numel() * module.in_features
    else:
        return
    layers[name] = layers.get(name, 0) + int(macs)
