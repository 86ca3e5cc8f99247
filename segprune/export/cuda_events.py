"""CUDA events through the CUDA runtime library Polygraphy already loaded: device time without torch.

TensorRT's Python API runs an engine on a CUDA stream but has no events to time it, and
the TensorRT runner must not need torch (a deployment box may have only TensorRT, numpy
and Polygraphy). Polygraphy's CUDA wrapper holds the process's ``libcudart`` as a ctypes
library; the five event functions used here are part of the CUDA runtime API
(``cudaEventCreate``, ``cudaEventRecord``, ``cudaEventSynchronize``,
``cudaEventElapsedTime``, ``cudaEventDestroy``), so an event pair around an enqueue on
the engine's stream measures what ran on the GPU, as ``trtexec``'s GPU compute time does.
"""

from __future__ import annotations

import ctypes

from segprune.errors import BackendError


class EventTimer:
    """Two CUDA events on a stream: ``start()``, enqueue work, ``stop()`` -> seconds on the device."""

    def __init__(self, cudart, stream_ptr: int) -> None:
        self._rt = cudart
        self._stream = ctypes.c_void_p(stream_ptr)
        self._start, self._end = ctypes.c_void_p(), ctypes.c_void_p()
        self._check(self._rt.cudaEventCreate(ctypes.byref(self._start)), "cudaEventCreate")
        self._check(self._rt.cudaEventCreate(ctypes.byref(self._end)), "cudaEventCreate")

    @staticmethod
    def _check(status: int, what: str) -> None:
        if status != 0:
            raise BackendError(f"{what} failed with CUDA error {status}: check the GPU with nvidia-smi")

    def start(self) -> None:
        self._check(self._rt.cudaEventRecord(self._start, self._stream), "cudaEventRecord")

    def stop(self) -> float:
        """Record the end event, wait for it, return the seconds between the two events."""
        self._check(self._rt.cudaEventRecord(self._end, self._stream), "cudaEventRecord")
        self._check(self._rt.cudaEventSynchronize(self._end), "cudaEventSynchronize")
        ms = ctypes.c_float()
        self._check(self._rt.cudaEventElapsedTime(ctypes.byref(ms), self._start, self._end), "cudaEventElapsedTime")
        return ms.value / 1e3

    def close(self) -> None:
        for event in (self._start, self._end):
            if event.value:
                self._rt.cudaEventDestroy(event)
                event.value = None


def polygraphy_cudart():
    """The ctypes ``libcudart`` of Polygraphy's global CUDA wrapper."""
    from polygraphy import cuda

    return cuda.wrapper().handle
