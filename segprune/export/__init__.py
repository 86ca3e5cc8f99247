"""Deployment: ONNX export with parity checks, precision in the graph (fp16, int8 Q/DQ), runners.

``export_model(model, out_dir, ExportConfig(...), ExportPlan(precisions=("fp32", "int8")), ...)``
writes ``model.<precision>.onnx`` files and an ``export.json`` manifest, each file checked
against TensorRT's published rules (``segprune.export.trt_rules``); ``OnnxRunner`` runs
them in onnxruntime and ``segprune.export.tensorrt`` builds and runs TensorRT engines.

Names are resolved lazily: ``import segprune.export.tensorrt`` on a deployment box with only
TensorRT and numpy must not import torch through this package.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "ExportConfig": "onnx_export",
    "export_onnx": "onnx_export",
    "load_onnx": "onnx_export",
    "read_metadata": "onnx_export",
    "check_divisible": "onnx_export",
    "INPUT_NAME": "onnx_export",
    "OUTPUT_NAME": "onnx_export",
    "PRECISIONS": "precision",
    "to_fp16": "precision",
    "quantize_int8": "precision",
    "INT8_REST": "precision",
    "OnnxRunner": "onnx_runner",
    "ParityReport": "parity",
    "check_parity": "parity",
    "MIN_AGREEMENT": "parity",
    "ExportPlan": "pipeline",
    "export_model": "pipeline",
    "MANIFEST": "pipeline",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"segprune.export.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'segprune.export' has no attribute {name!r}")
