"""Run a segprune TensorRT engine on numpy arrays, and time it the two ways that matter.

Device memory, the CUDA stream and the copies are Polygraphy's
(``polygraphy.backend.trt.TrtRunner``), so neither torch nor cuda-python is needed; this
module never imports torch. Two timings, named as such in every report:

* ``device``: CUDA events around ``execute_async_v3`` on the engine's stream, the input
  already on the GPU and the logits left there: what the GPU spends on the network, the
  figure ``trtexec`` reports as GPU compute time and the one
  :class:`segprune.bench.TorchRunner` reports for PyTorch on CUDA;
* ``end_to_end``: ``perf_counter`` around a synchronous call from a host array to host
  logits: pageable host-to-device copy, execution, device-to-host copy of the
  full-resolution logits, synchronisation and Python. What an application calling the
  engine from numpy waits for.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from segprune.errors import BackendError, ExportError
from segprune.export.engine_meta import REBUILD_HINT, check_engine_meta, gpu_identity, read_engine_meta
from segprune.export.tensorrt import _logger, _require_polygraphy, require_tensorrt

TIMINGS = ("device", "end_to_end")


class TrtRunner:
    """Run a segprune engine: float32 NCHW images in, float32 NCHW logits out.

    The sidecar is checked against this machine's TensorRT and GPU before the engine is
    deserialised; a Polygraphy error while activating (out of device memory, a CUDA
    library it cannot find) becomes one :class:`BackendError` line. Use it as a context
    manager, or call :meth:`close`, to free the device memory.
    """

    name = "tensorrt"
    timings = TIMINGS

    def __init__(self, engine_path: str | os.PathLike):
        self.path = Path(engine_path)
        if not self.path.is_file():
            raise ExportError(f"engine {self.path} does not exist: build it with `segprune export CKPT --tensorrt ...`")
        self.meta = read_engine_meta(self.path)
        trt = require_tensorrt()
        polygraphy_runner, self._polygraphy_error = _require_polygraphy()
        self.gpu_name, capability = gpu_identity()
        check_engine_meta(self.meta, trt.__version__, self.gpu_name, capability, engine=self.path)
        self._trt, logger = trt, _logger(trt)
        mark = logger.mark()
        self._runtime = trt.Runtime(logger)
        engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if engine is None:
            errors = logger.since(mark)
            detail = errors[-1] if errors else "no detail given"
            raise ExportError(f"TensorRT {trt.__version__} could not load {self.path.name} ({detail}): {REBUILD_HINT}")
        from polygraphy.datatype import DataType

        self._input_datatype = DataType.from_dtype(engine.get_tensor_dtype(self.meta.input_name), "tensorrt")
        self._input_dtype = DataType.to_dtype(self._input_datatype, "numpy")
        classes = int(tuple(engine.get_tensor_shape(self.meta.output_name))[1])
        self.num_classes = classes if classes > 0 else None
        self._runner = polygraphy_runner(engine, name="segprune-tensorrt")
        try:
            self._runner.activate()
        except self._polygraphy_error as exc:
            detail = " ".join(str(exc).split())[:300]
            raise BackendError(f"Polygraphy could not start {self.path.name} on {self.gpu_name} ({detail}): free GPU "
                               "memory (nvidia-smi), and on a pip-only install use polygraphy>=0.53.4, which finds "
                               "the CUDA runtime of the nvidia-cuda-runtime wheel") from None

    @property
    def precision(self) -> str:
        return self.meta.precision

    @property
    def input_shape(self) -> list[int | None]:
        """The input shape, with ``None`` for dims the optimization profile lets vary."""
        profile = self.meta.shapes[self.meta.input_name]
        return [lo if lo == hi else None for lo, hi in zip(profile["min"], profile["max"], strict=True)]

    @property
    def metadata(self) -> dict[str, Any]:
        """What a benchmark reads from a model file: the input size and batch the engine was built for (opt)."""
        opt = self.meta.shapes[self.meta.input_name]["opt"]
        return {"input_size": [int(opt[2]), int(opt[3])], "batch_size": int(opt[0]), "precision": self.precision,
                "num_classes": self.num_classes}

    def _feed(self, images: np.ndarray) -> dict[str, np.ndarray]:
        profile = self.meta.shapes[self.meta.input_name]
        shape = list(getattr(images, "shape", ()))
        if len(shape) != len(profile["min"]) or not all(
                lo <= size <= hi for size, lo, hi in zip(shape, profile["min"], profile["max"], strict=True)):
            raise ExportError(f"engine {self.path.name} takes {self.meta.input_name!r} shapes from {profile['min']} "
                              f"to {profile['max']}, got {shape}: pass --input-size/--batch-size inside that range "
                              "or rebuild the engine with other min/max shapes")
        return {self.meta.input_name: np.ascontiguousarray(images, dtype=self._input_dtype)}

    def _infer(self, feed: dict[str, Any], copy_outputs_to_host: bool = True):
        if not getattr(self, "_runner", None) or not self._runner.is_active:
            raise ExportError(f"the TensorRT runner for {self.path.name} is closed: open a new one")
        try:
            return self._runner.infer(feed, check_inputs=False,
                                      copy_outputs_to_host=copy_outputs_to_host)[self.meta.output_name]
        except self._polygraphy_error as exc:
            detail = " ".join(str(exc).split())
            raise BackendError(f"TensorRT inference failed ({detail}): check the GPU with nvidia-smi") from None

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Logits for a batch of images; a fresh array (Polygraphy reuses its output buffers)."""
        return np.array(self._infer(self._feed(images)), dtype=np.float32)

    def time_inference(self, images: np.ndarray, warmup: int = 10, runs: int = 100,
                       kind: str | None = None) -> list[float]:
        """Seconds per run, ``kind`` ``"device"`` (the default) or ``"end_to_end"`` (see the module docstring)."""
        kind = kind or self.timings[0]
        if kind not in TIMINGS:
            raise ExportError(f"timing {kind!r} is not one of {', '.join(TIMINGS)}")
        if warmup < 0 or runs < 0:  # runs=0 is a warm-up-only call (segprune.bench.timing.measure makes one)
            raise ExportError(f"need warmup >= 0 and runs >= 0, got warmup={warmup}, runs={runs}")
        feed = self._feed(images)
        if kind == "end_to_end":
            for _ in range(warmup):
                self._infer(feed)
            times = []
            for _ in range(runs):
                start = time.perf_counter()
                self._infer(feed)
                times.append(time.perf_counter() - start)
            return times
        return self._time_device(feed[self.meta.input_name], warmup, runs)

    def _time_device(self, images: np.ndarray, warmup: int, runs: int) -> list[float]:
        from polygraphy import cuda

        from segprune.export.cuda_events import EventTimer, polygraphy_cudart

        stream = self._runner.stream
        device_input = cuda.DeviceArray(shape=images.shape, dtype=self._input_datatype)
        timer = None
        try:
            device_input.copy_from(images, stream=stream)
            stream.synchronize()
            # one call through Polygraphy binds the shapes, the device input and the output buffers
            self._infer({self.meta.input_name: device_input.view()}, copy_outputs_to_host=False)
            context = self._runner.context
            timer = EventTimer(polygraphy_cudart(), stream.ptr)

            def enqueue() -> None:
                if not context.execute_async_v3(stream.ptr):
                    raise BackendError(f"TensorRT could not enqueue {self.path.name}: check the GPU with nvidia-smi")

            for _ in range(warmup):
                enqueue()
            stream.synchronize()
            times = []
            for _ in range(runs):
                timer.start()
                enqueue()
                times.append(timer.stop())
            return times
        except self._polygraphy_error as exc:
            raise BackendError(f"TensorRT timing failed ({' '.join(str(exc).split())}): check the GPU with "
                               "nvidia-smi") from None
        finally:
            if timer is not None:
                timer.close()
            device_input.free()

    def info(self) -> dict[str, Any]:
        """The engine's sidecar, the GPU it runs on now and the library versions, for reports."""
        import polygraphy

        return {**self.meta.to_dict(), "backend": self.name, "file": os.fspath(self.path), "device": "cuda",
                "built_on_gpu": self.meta.gpu_name, "gpu_name": self.gpu_name, "input_shape": self.input_shape,
                "timings": list(self.timings),
                "versions": {"tensorrt": self._trt.__version__, "polygraphy": polygraphy.__version__,
                             "numpy": np.__version__}}

    def close(self) -> None:
        """Free the device memory; calling it twice is harmless."""
        runner = getattr(self, "_runner", None)
        if runner is not None and runner.is_active:
            runner.deactivate()

    def __enter__(self) -> TrtRunner:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __del__(self) -> None:  # a runner dropped without close() still frees its device memory
        try:
            self.close()
        except Exception:
            pass
