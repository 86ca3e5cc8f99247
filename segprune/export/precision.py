"""Precision as a property of the ONNX graph: fp16 by conversion, int8 by calibrated Q/DQ nodes.

TensorRT 11 builds strongly typed networks only: the types in the graph are the types it
runs, so reduced precision has to be written into the ONNX file before TensorRT sees it.
onnxruntime runs the same files on CPU, which is how every precision's accuracy is
measured on a machine without a GPU.

Tools: onnxruntime's own ``transformers.float16`` converter and ``quantization`` package
(``quantize_static`` in QDQ format). NVIDIA ModelOpt (AutoCast, its ONNX quantizer) is the
path TensorRT's migration guide names, but ``nvidia-modelopt[onnx]`` pulls in
``onnxruntime-gpu`` (which overwrites ``onnxruntime``'s files), ``cupy-cuda12x`` and an
older ``onnx``: it would break the CPU environment the rest of segprune runs in.
onnxruntime's tools ship inside the package we already depend on and write the same
kinds of graph: fp16 with casts at the inputs and outputs, and symmetric int8 Q/DQ pairs
(zero point 0, per-channel weights, float biases), the form TensorRT's explicit
quantization reads; the settings that make it so are listed, with their sources, in
:func:`quantize_int8`, and every file is checked against TensorRT's rules on export
(:mod:`segprune.export.trt_rules`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from segprune.errors import ConfigError
from segprune.export.onnx_export import INPUT_NAME, load_onnx, read_metadata, save_onnx, set_metadata

PRECISIONS = ("fp32", "fp16", "int8")
CALIB_METHODS = ("minmax", "entropy", "percentile")
INT8_REST = ("fp16", "fp32")

# Ops kept in fp32 by the fp16 conversion: reductions over many pixels lose precision in
# fp16 accumulators, and Resize's coordinate arithmetic is float-sensitive.
FP16_KEEP_FP32 = ("GlobalAveragePool", "ReduceMean", "Resize")
# Ops that get int8 Q/DQ inputs: the convolutions and matrix products carry the cost.
INT8_OPS = ("Conv", "MatMul", "Gemm")
# An fp16 scale of a DequantizeLinear (so an fp16 output) needs opset 19; TensorRT 10.0 parses up to 20.
FP16_QDQ_OPSET = 19


def _convert_fp16(proto, keep_fp32: Iterable[str]):
    """onnxruntime's converter, then the clean-ups a TensorRT build needs (see :mod:`graph_edits`)."""
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    from segprune.export.graph_edits import drop_cast_round_trips, toposort

    fp16 = convert_float_to_float16(proto, keep_io_types=True,
                                    op_block_list=list(DEFAULT_OP_BLOCK_LIST) + list(keep_fp32))
    toposort(fp16.graph)
    drop_cast_round_trips(fp16)
    return fp16


def to_fp16(src: str | Path, dst: str | Path, keep_fp32: Iterable[str] = FP16_KEEP_FP32) -> Path:
    """Convert an fp32 segprune ONNX file to fp16 weights and activations, fp32 inputs and outputs.

    Inputs and outputs stay fp32 (``keep_io_types``), so a caller feeds the same arrays to
    every precision and the logits compare directly. The fp32 Resize that upsamples the
    logits writes the fp32 output directly: the converter's Cast(fp16) -> Cast(fp32) round
    trip after it is removed.
    """
    proto = load_onnx(src)
    meta = read_metadata(proto)
    fp16 = _convert_fp16(proto, keep_fp32)
    set_metadata(fp16, {**meta, "precision": "fp16", "fp32_ops": sorted(keep_fp32)})
    save_onnx(fp16, dst)
    return Path(dst)


class _Batches:
    """onnxruntime's CalibrationDataReader protocol over an iterable of NCHW float32 arrays."""

    def __init__(self, batches: Iterable[np.ndarray], input_name: str) -> None:
        self.batches = [np.ascontiguousarray(b, dtype=np.float32) for b in batches]
        self.count = sum(b.shape[0] for b in self.batches)
        self.input_name = input_name
        self.rewind()

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._iter, None)
        return None if batch is None else {self.input_name: batch}

    def rewind(self) -> None:
        self._iter: Iterator[np.ndarray] = iter(self.batches)


def quantize_int8(src: str | Path, dst: str | Path, batches: Iterable[np.ndarray], *,
                  method: str = "percentile", per_channel: bool = True, rest: str = "fp16",
                  keep_stem: bool = True) -> dict:
    """Insert symmetric int8 Q/DQ pairs calibrated on ``batches``; returns what was done.

    The fp32 graph is first pre-processed (shape inference, BatchNorm folded into the
    convolutions) so the scales are calibrated for the layers that will actually run.
    ``percentile`` (99.999th) ignores the rare extreme activations that would otherwise
    stretch a scale; ``minmax`` is the plain range; ``entropy`` is TensorRT's classic KL
    calibrator.

    The Q/DQ form is the one TensorRT's explicit quantization reads (onnx-tensorrt
    ``docs/operators.md`` and its Q/DQ importer; TensorRT developer guide, "Explicit
    Quantization"):

    * symmetric scales, zero point 0, for activations (per tensor) and weights (per
      output channel: axis 0 of a Conv kernel, the last axis of a right-hand MatMul
      constant);
    * biases stay float (``QuantizeBias: False``): onnxruntime's default writes an int32
      bias with its own DequantizeLinear, and TensorRT dequantizes only 8-bit (and FP8/INT4)
      inputs, so such a graph cannot build (onnx/onnx-tensorrt#850, microsoft/onnxruntime#14229);
    * no Q/DQ on the outputs of the quantized ops (``OpTypesToExcludeOutputQuantization``):
      TensorRT places the next layer's input quantization itself, as in NVIDIA's own
      onnxruntime settings for TensorRT;
    * a constant on the *left* of a MatMul (``A_h @ X``, spectral truncation) is
      quantized per tensor: onnxruntime would take its axis 1, the reduction axis, and
      per-channel scales must lie on an output axis;
    * the stem (every Conv reading the network input: 3 input channels) stays unquantized
      unless ``keep_stem`` is False: some TensorRT 10 builds have no int8 kernel for a
      3-channel 7x7 convolution fed by a quantized image.

    ``rest`` is the precision of everything outside the Q/DQ pairs. In a strongly typed
    network (TensorRT 11; 10 with the flag segprune sets) every layer runs in the type the
    graph gives it, so with ``rest="fp32"`` the additions, ReLUs, concatenations, pooling,
    resampling and the conv outputs run in fp32. ``fp16`` (the default) converts them as
    :func:`to_fp16` would (reductions and Resize stay fp32, inputs and outputs fp32), with
    fp16 Q/DQ scales so a dequantized tensor is fp16 without a Cast between it and its
    convolution (a Cast there would keep TensorRT from fusing the pair); fp16 scales need
    opset 19, so the graph's opset is raised to 19. That is what TensorRT 10's weakly typed
    ``--int8 --fp16`` engines ran, and what the TensorRT 10 -> 11 migration guide reaches
    through ModelOpt's AutoCast.
    """
    import contextlib
    import sys
    import tempfile

    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from segprune.export.graph_edits import (
        input_convs,
        left_constant_matmuls,
        raise_small_scales,
        set_min_opset,
        strip_unused_opsets,
        toposort,
    )

    if method not in CALIB_METHODS:
        raise ConfigError(f"calibration method {method!r} is not one of {', '.join(CALIB_METHODS)}")
    if rest not in INT8_REST:
        raise ConfigError(f"--int8-rest {rest!r} is not one of {', '.join(INT8_REST)}")
    proto = load_onnx(src)
    meta = read_metadata(proto)
    reader = _Batches(batches, INPUT_NAME)
    if reader.count == 0:
        raise ConfigError("int8 calibration got no images: pass --calib-images N with N >= 1 and a non-empty --data")
    calib = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
             "percentile": CalibrationMethod.Percentile}[method]
    # onnxruntime's calibrators print progress to stdout, where segprune's tables go
    with tempfile.TemporaryDirectory(prefix="segprune-int8-") as tmp, contextlib.redirect_stdout(sys.stderr):
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        pre_proto = load_onnx(pre)
        stem = [] if not keep_stem else input_convs(pre_proto)
        left = left_constant_matmuls(pre_proto)
        out = Path(tmp) / "int8.onnx"
        quantize_static(str(pre), str(out), reader, quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=list(INT8_OPS), per_channel=per_channel,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        calibrate_method=calib, nodes_to_exclude=stem,
                        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True,
                                       "CalibPercentile": 99.999, "CalibTensorRangeSymmetric": True,
                                       "QuantizeBias": False,
                                       "OpTypesToExcludeOutputQuantization": list(INT8_OPS),
                                       "TensorQuantOverrides": {name: [{"symmetric": True}] for name in left}})
        quantized = load_onnx(out)
    strip_unused_opsets(quantized)
    raised = raise_small_scales(quantized) if rest == "fp16" else {"scales_raised": 0, "weights_requantized": 0}
    if rest == "fp16":
        quantized = _convert_fp16(quantized, FP16_KEEP_FP32)
        set_min_opset(quantized, FP16_QDQ_OPSET)
    toposort(quantized.graph)
    done = {"calibration_images": reader.count, "calibration_method": method, "per_channel": per_channel,
            "quantized_ops": sorted(INT8_OPS), "unquantized_stem": stem, "per_tensor_matmul_constants": left,
            "rest": rest, "fp32_ops": sorted(FP16_KEEP_FP32) if rest == "fp16" else [],
            "qdq_pairs": sum(n.op_type == "QuantizeLinear" for n in quantized.graph.node), **raised}
    set_metadata(quantized, {**meta, "precision": "int8", "int8": done})
    save_onnx(quantized, dst)
    return done
