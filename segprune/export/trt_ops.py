"""What TensorRT's ONNX parser accepts, as data: operators, types, opsets, Resize attributes.

Transcribed (as lists, not text) from onnx-tensorrt's ``docs/operators.md`` for TensorRT
10.0/10.1, the oldest parser segprune supports (``tensorrt>=10``), and cross-checked against
the parser's importers (``onnxOpImporters.cpp``, ``onnxOpCheckers.cpp``) of the same release.
TensorRT 11's ONNX Opset Guide raises the maximum opset to 25 and keeps the minimum at 9; a
graph inside the 10.0 limits parses on both, so these are the limits segprune checks.

Nothing here imports onnx, TensorRT or torch.
"""

from __future__ import annotations

# docs/operators.md (TensorRT 10.0/10.1): "supports operators in the inclusive range of opset 9 to opset 20".
MIN_OPSET, MAX_OPSET = 9, 20
# onnx-tensorrt 10.0/10.1 builds against ONNX 1.16 (its Changelog), whose newest IR version is 10.
MAX_IR_VERSION = 10

# Every operator docs/operators.md marks "Y" (TensorRT 10.1). Operators marked "N" or not listed
# have no importer: the parser stops at them unless a plugin of that name is registered.
SUPPORTED_OPS = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast CastLike Ceil
Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DeformConv DepthToSpace
DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor GRU Gather GatherElements
GatherND Gelu Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GridSample
GroupNormalization HardSigmoid HardSwish Hardmax Identity If ImageScaler InstanceNormalization IsInf IsNaN LRN
LSTM LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax Loop LpNormalization LpPool MatMul Max MaxPool
Mean MeanVarianceNormalization Min Mish Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or PRelu Pad
ParametricSoftplus Pow QuantizeLinear RNN RandomNormal RandomNormalLike RandomUniform RandomUniformLike Range
Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum
ReduceSumSquare Relu Reshape Resize ReverseSequence RoiAlign Round ScaledTanh Scan Scatter ScatterElements
ScatterND Selu Shape Shrink Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt
Squeeze Sub Sum Tan Tanh ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor
""".split())

# ONNX TensorProto data types by number, and the ones TensorRT has (operators.md, "supported data types").
DTYPE_NAMES = {1: "FLOAT", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64", 8: "STRING",
               9: "BOOL", 10: "FLOAT16", 11: "DOUBLE", 12: "UINT32", 13: "UINT64", 14: "COMPLEX64",
               15: "COMPLEX128", 16: "BFLOAT16", 17: "FLOAT8E4M3FN", 22: "INT4"}
FLOATS = frozenset({1, 10, 16})  # FP32, FP16, BF16
# Types a network input or output may have (operators.md: DOUBLE is cast down with a warning, UINT8 only at I/O).
IO_TYPES = frozenset({1, 10, 16, 6, 7, 2, 9})
# DequantizeLinear inputs TensorRT reads: "INT8, FP8, INT4" (operators.md); UINT8 is refused by the importer.
DQ_INPUT_TYPES = frozenset({3, 17, 22})

# Operators whose documented "Supported Types" are floating point only (operators.md, TensorRT 10.1).
FLOAT_ONLY_OPS = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm", "Resize", "MaxPool", "AveragePool",
                            "GlobalAveragePool", "BatchNormalization", "Softmax", "InstanceNormalization",
                            "LayerNormalization", "Sigmoid", "Tanh", "Erf", "Sqrt", "Exp", "Log", "Pow"})

# Operators whose ``axes`` input must be a constant (operators.md restrictions column).
CONSTANT_AXES_OPS = {"Slice": 3, "Squeeze": 1, "Unsqueeze": 1, "ReduceMean": 1, "ReduceSum": 1, "ReduceMax": 1,
                     "ReduceL2": 1, "Pad": 3}

# Resize (operators.md restrictions; onnxOpCheckers.cpp Resize checker).
RESIZE_MODES = frozenset({"nearest", "linear"})
RESIZE_COORDINATE_MODES = frozenset({"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric",
                                     "align_corners"})
RESIZE_NEAREST_MODES = frozenset({"floor", "ceil", "round_prefer_floor", "round_prefer_ceil"})

SOURCES = {
    "operators": "onnx-tensorrt docs/operators.md (TensorRT 10.0/10.1)",
    "qdq": "onnx-tensorrt onnxOpImporters.cpp, QuantDequantLinearHelper (TensorRT 10.1)",
    "qdq-guide": "TensorRT developer guide, 'Explicit Quantization' (Q/DQ placement, per-channel weight axes)",
    "resize": "onnx-tensorrt docs/operators.md (Resize row) and onnxOpCheckers.cpp (Resize checker)",
    "matmul": "onnx-tensorrt onnxOpImporters.cpp, MatMul importer (TensorRT 10.1)",
    "opset": "onnx-tensorrt docs/operators.md (opsets 9 to 20); TensorRT 11 ONNX Opset Guide (9 to 25)",
    "ir": "onnx-tensorrt docs/Changelog.md (built against ONNX 1.16, IR version 10)",
    "dynamic": "TensorRT developer guide, 'Dynamic Shapes' (shape tensors, optimization profiles)",
    "typing": "TensorRT 10->11 migration guide, 'Strongly Typed Networks Are Now Required'",
}
