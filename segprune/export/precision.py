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
(zero point 0, per-channel weights), the form TensorRT's explicit quantization reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from segprune.errors import ConfigError
from segprune.export.onnx_export import INPUT_NAME, load_onnx, read_metadata, save_onnx, set_metadata

PRECISIONS = ("fp32", "fp16", "int8")
CALIB_METHODS = ("minmax", "entropy", "percentile")

# Ops kept in fp32 by the fp16 conversion: reductions over many pixels lose precision in
# fp16 accumulators, and Resize's coordinate arithmetic is float-sensitive.
FP16_KEEP_FP32 = ("GlobalAveragePool", "ReduceMean", "Resize")
# Ops that get int8 Q/DQ inputs: the convolutions and matrix products carry the cost.
INT8_OPS = ("Conv", "MatMul", "Gemm")


def to_fp16(src: str | Path, dst: str | Path, keep_fp32: Iterable[str] = FP16_KEEP_FP32) -> Path:
    """Convert an fp32 segprune ONNX file to fp16 weights and activations, fp32 inputs and outputs.

    Inputs and outputs stay fp32 (``keep_io_types``), so a caller feeds the same arrays to
    every precision and the logits compare directly.
    """
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    proto = load_onnx(src)
    meta = read_metadata(proto)
    fp16 = convert_float_to_float16(proto, keep_io_types=True,
                                    op_block_list=list(DEFAULT_OP_BLOCK_LIST) + list(keep_fp32))
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
                  method: str = "percentile", per_channel: bool = True) -> dict:
    """Insert symmetric int8 Q/DQ pairs calibrated on ``batches``; returns what was done.

    The fp32 graph is first pre-processed (shape inference, BatchNorm folded into the
    convolutions) so the scales are calibrated for the layers that will actually run.
    ``percentile`` (99.999th) ignores the rare extreme activations that would otherwise
    stretch a scale; ``minmax`` is the plain range; ``entropy`` is TensorRT's classic KL
    calibrator. Activations and weights are both symmetric (zero point 0), which TensorRT
    requires for explicit quantization.
    """
    import contextlib
    import sys
    import tempfile

    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in CALIB_METHODS:
        raise ConfigError(f"calibration method {method!r} is not one of {', '.join(CALIB_METHODS)}")
    proto = load_onnx(src)
    meta = read_metadata(proto)
    reader = _Batches(batches, INPUT_NAME)
    if reader.count == 0:
        raise ConfigError("int8 calibration got no images: pass --calib N with N >= 1 and a non-empty --data")
    calib = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
             "percentile": CalibrationMethod.Percentile}[method]
    # onnxruntime's calibrators print progress to stdout, where segprune's tables go
    with tempfile.TemporaryDirectory(prefix="segprune-int8-") as tmp, contextlib.redirect_stdout(sys.stderr):
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        out = Path(tmp) / "int8.onnx"
        quantize_static(str(pre), str(out), reader, quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=list(INT8_OPS), per_channel=per_channel,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        calibrate_method=calib,
                        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True,
                                       "CalibPercentile": 99.999, "CalibTensorRangeSymmetric": True})
        quantized = load_onnx(out)
    done = {"calibration_images": reader.count, "calibration_method": method, "per_channel": per_channel,
            "quantized_ops": sorted(INT8_OPS),
            "qdq_pairs": sum(n.op_type == "QuantizeLinear" for n in quantized.graph.node)}
    set_metadata(quantized, {**meta, "precision": "int8", "int8": done})
    save_onnx(quantized, dst)
    return done
