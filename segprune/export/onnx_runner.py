"""Run a segprune ONNX file in onnxruntime: images in (NCHW float32), logits out.

``onnxruntime`` (CPU) and ``onnxruntime-gpu`` install the same Python package and overwrite
each other's files, so segprune requires only the former and never both. To run on CUDA,
replace it: ``pip uninstall -y onnxruntime && pip install onnxruntime-gpu`` (and back the
same way); ``device="cuda"`` then selects the CUDA execution provider and fails with that
instruction when it is missing.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from segprune.errors import BackendError, ExportError
from segprune.export.onnx_export import INPUT_NAME, load_onnx, read_metadata


def _providers(device: str) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in available:
            raise BackendError("onnxruntime here has no CUDA provider: pip uninstall -y onnxruntime && "
                               "pip install onnxruntime-gpu (the two packages cannot share an environment)")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device != "cpu":
        raise BackendError(f"device {device!r} is not cpu or cuda")
    return ["CPUExecutionProvider"]


class OnnxRunner:
    """An onnxruntime session over one ONNX file, with the file's segprune metadata.

    ``threads`` sets intra-op threads (onnxruntime picks the core count when ``None``).
    ``spin`` leaves onnxruntime's thread spinning on. It is off by default because segprune
    times models interleaved: a session's pool keeps spinning for a while after its run, on
    the same cores the next model is timed on, and on a 2-core machine that made two
    near-identical graphs differ by 1.6x in one run. A single-model server may turn it on.
    A file onnxruntime cannot run (an op it has no kernel for, a wrong opset) fails at
    construction with one line naming the op.
    """

    name = "onnxruntime"
    # numpy in, numpy out, synchronous: end to end on any provider (on CUDA it includes the copies;
    # a device-only figure would need I/O binding and CUDA events, which segprune does not do here)
    timings = ("end_to_end",)

    def __init__(self, path: str | Path, device: str = "cpu", threads: int | None = None, spin: bool = False) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        proto = load_onnx(self.path)  # a clear error for a missing or corrupt file
        self.metadata: dict[str, Any] = read_metadata(proto)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        if not spin:
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        self.device, self.threads, self.spin = device, threads, spin
        try:
            self.session = ort.InferenceSession(proto.SerializeToString(), opts, providers=_providers(device))
        except BackendError:
            raise
        except Exception as exc:  # onnxruntime raises its own Fail/NotImplemented types
            first = str(exc).strip().splitlines()[0][:300]
            raise ExportError(f"onnxruntime {ort.__version__} cannot run {self.path.name}: {first} (export with "
                              "another --opset, or run that op on a backend that supports it)") from exc
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        self.input_name = inputs[0].name if inputs else INPUT_NAME
        self.output_name = outputs[0].name
        self.input_shape = list(inputs[0].shape)

    @property
    def precision(self) -> str:
        return str(self.metadata.get("precision", "fp32"))

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = np.ascontiguousarray(images, dtype=np.float32)
        self._check_shape(images.shape)
        return self.session.run([self.output_name], {self.input_name: images})[0].astype(np.float32, copy=False)

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        for axis, (want, got) in enumerate(zip(self.input_shape, shape, strict=False)):
            if isinstance(want, int) and want != got:
                what = "batch size" if axis == 0 else "input size"
                fixed = "x".join(str(s) for s in self.input_shape[2:])
                raise ExportError(f"{self.path.name} was exported for {what} {want if axis == 0 else fixed}, got "
                                  f"{'x'.join(map(str, shape[2:])) if axis else got}: pass --input-size {fixed} "
                                  "(and --batch-size to match) or re-export with --dynamic batch,hw")

    def time_inference(self, images: np.ndarray, warmup: int, runs: int, kind: str | None = None) -> list[float]:
        """Per-run seconds (``perf_counter``) of ``runs`` synchronous calls after ``warmup``: end to end."""
        if kind not in (None, "end_to_end"):
            raise BackendError(f"onnxruntime is timed end_to_end only, not {kind}")
        feed = {self.input_name: np.ascontiguousarray(images, dtype=np.float32)}
        self._check_shape(images.shape)
        for _ in range(warmup):
            self.session.run([self.output_name], feed)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            self.session.run([self.output_name], feed)
            times.append(time.perf_counter() - start)
        return times

    def info(self) -> dict[str, Any]:
        import onnxruntime as ort

        return {"backend": self.name, "file": str(self.path), "precision": self.precision,
                "onnxruntime": ort.__version__, "providers": self.session.get_providers(),
                "intra_op_threads": self.threads, "spinning": self.spin, "input_shape": self.input_shape, "timings": list(self.timings)}

    def close(self) -> None:
        self.session = None

    def __enter__(self) -> OnnxRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
