"""Small, checked edits of ONNX graphs that the precision transforms need.

Each function takes a ``ModelProto`` and edits it in place (or reads it); none of them
changes what the graph computes except :func:`raise_small_scales`, which says exactly what it
moves. They exist because the converters segprune uses (onnxruntime's float16 converter and
its QDQ quantizer) leave artefacts a TensorRT build pays for: an fp32->fp16->fp32 cast
round trip on the logits, nodes appended out of order, opset imports for domains no node
uses, and Q/DQ scales that underflow when written in fp16.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

_FLOAT, _FLOAT16 = 1, 10  # onnx.TensorProto.FLOAT / FLOAT16, without importing onnx at module level
_FP16_MIN_NORMAL = float(np.finfo(np.float16).tiny)  # 2**-14: below it fp16 loses relative precision


def _cast_to(node) -> int | None:
    for attr in node.attribute:
        if attr.name == "to":
            return int(attr.i)
    return None


def consumers(graph) -> dict[str, list]:
    """Tensor name -> the nodes that read it."""
    out: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            if name:
                out.setdefault(name, []).append(node)
    return out


def toposort(graph) -> None:
    """Order ``graph.node`` so every node comes after the producers of its inputs.

    onnxruntime's float16 converter appends the input casts at the end of the node list;
    TensorRT's parser sorts for itself, but ``onnx.checker`` and every reader that walks the
    list in order (segprune's TensorRT check among them) need producers first.
    """
    ready = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        rest = []
        for node in pending:
            if all(name in ready for name in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):  # a cycle or a dangling input: leave the order as it was
            return
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)


def drop_cast_round_trips(model, fp32_ops: Iterable[str] = ("Resize", "ReduceMean", "GlobalAveragePool")) -> int:
    """Remove ``x(fp32) -> Cast(fp16) -> Cast(fp32)`` chains; returns how many were removed.

    The float16 converter keeps Resize in fp32 but casts its output to fp16 for the next
    node; when that next node is the fp32 graph output it adds the cast back. On the
    full-resolution logits that is two passes over the largest tensor of the network and
    an fp16 rounding of the logits, for nothing. A pair is removed only where ``x`` is known
    to be fp32: its recorded type says so, or its producer is one of ``fp32_ops`` (the ops
    the conversion kept in fp32).
    """
    fp32_ops = set(fp32_ops)
    graph = model.graph
    outputs = {o.name for o in graph.output}
    removed = 0
    changed = True
    while changed:
        changed = False
        readers = consumers(graph)
        producer = {name: node for node in graph.node for name in node.output}
        for first in list(graph.node):
            if first.op_type != "Cast" or _cast_to(first) != _FLOAT16:
                continue
            src = producer.get(first.input[0])
            if src is None or src.op_type == "Cast" and _cast_to(src) == _FLOAT16:
                continue
            mid = first.output[0]
            after = readers.get(mid, [])
            if not after or mid in outputs or not all(n.op_type == "Cast" and _cast_to(n) == _FLOAT for n in after):
                continue
            if not (_is_float32(model, first.input[0]) or src is not None and src.op_type in fp32_ops):
                continue
            for second in after:
                _bypass(graph, second, first.input[0], outputs)
                graph.node.remove(second)
            graph.node.remove(first)
            removed += 1
            changed = True
            break
    return removed


def _is_float32(model, name: str) -> bool:
    """Whether tensor ``name`` is recorded as fp32 (value_info or graph inputs/outputs)."""
    for info in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        if info.name == name:
            return info.type.tensor_type.elem_type == _FLOAT
    return False


def _bypass(graph, cast, source: str, outputs: set[str]) -> None:
    """Make the readers of ``cast``'s output read ``source``; rename ``source`` when the output is a graph output."""
    out = cast.output[0]
    if out in outputs:
        # the graph output keeps its name: the node producing ``source`` writes it directly
        for node in graph.node:
            node.output[:] = [out if name == source else name for name in node.output]
            node.input[:] = [out if name == source else name for name in node.input]
        for info in graph.value_info:
            if info.name == source:
                graph.value_info.remove(info)
                break
        return
    for node in graph.node:
        node.input[:] = [source if name == out else name for name in node.input]
    for info in list(graph.value_info):
        if info.name == out:
            graph.value_info.remove(info)


def strip_unused_opsets(model) -> list[str]:
    """Drop opset imports of domains no node uses (onnxruntime's pre-processing adds eight); returns them."""
    used = {node.domain or "" for node in model.graph.node} | {""}
    dropped = [o.domain for o in model.opset_import if (o.domain or "") not in used and o.domain != "ai.onnx"]
    keep = [o for o in model.opset_import if o.domain not in dropped]
    del model.opset_import[:]
    model.opset_import.extend(keep)
    return dropped


def set_min_opset(model, version: int) -> int:
    """Raise the default-domain opset to at least ``version``; returns the opset now in force."""
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            entry.version = max(int(entry.version), version)
            return int(entry.version)
    entry = model.opset_import.add()
    entry.domain, entry.version = "", version
    return version


def input_convs(model, input_names: Iterable[str] | None = None) -> list[str]:
    """Names of the Conv nodes that read a graph input directly (the network's stem)."""
    names = set(input_names) if input_names is not None else {i.name for i in model.graph.input}
    return [n.name for n in model.graph.node if n.op_type == "Conv" and n.input and n.input[0] in names]


def left_constant_matmuls(model) -> list[str]:
    """Initializers used as the *left* operand of a MatMul (``A @ X``): their output axis is -2."""
    inits = {i.name for i in model.graph.initializer}
    return sorted({n.input[0] for n in model.graph.node if n.op_type == "MatMul" and n.input[0] in inits})


def raise_small_scales(model, floor: float = _FP16_MIN_NORMAL) -> dict[str, int]:
    """Raise every fp32 Q/DQ scale below ``floor`` to ``floor``, before the graph goes to fp16; returns counts.

    A per-channel weight scale is ``max|w| / 127``: for a nearly dead channel it lies below
    fp16's smallest normal number (2**-14), where fp16 keeps few significant bits, and a
    scale that rounds to 0 is refused by TensorRT's ONNX parser (its Q/DQ importer requires
    every scale to be positive). Such a scale is raised to ``floor`` and, for a weight, its
    int8 values are re-quantized against the new scale, so the dequantized weight stays as
    close as int8 allows (those channels' weights are below 127 * 2**-14 = 0.0078 in
    magnitude); for an activation only its calibrated step grows.
    """
    from onnx import numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    done: set[str] = set()
    changed = {"scales_raised": 0, "weights_requantized": 0}
    for node in graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear") or node.input[1] not in inits:
            continue
        scale_init = inits[node.input[1]]
        if scale_init.data_type != _FLOAT or scale_init.name in done:
            continue
        done.add(scale_init.name)
        old = numpy_helper.to_array(scale_init).astype(np.float32)
        new = np.maximum(old, np.float32(floor)).astype(np.float32)
        if np.array_equal(new, old):
            continue
        changed["scales_raised"] += int((new != old).sum())
        scale_init.CopyFrom(numpy_helper.from_array(new, scale_init.name))
        weight = inits.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
        if weight is not None:
            q = numpy_helper.to_array(weight)
            ratio = old / new
            if old.ndim == 1 and q.ndim > 1:
                axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
                shape = [1] * q.ndim
                shape[axis] = -1
                ratio = ratio.reshape(shape)
            requant = np.clip(np.rint(q.astype(np.float32) * ratio), -127, 127).astype(q.dtype)
            weight.CopyFrom(numpy_helper.from_array(requant, weight.name))
            changed["weights_requantized"] += 1
    return changed
