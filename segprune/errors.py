"""User-facing errors.

Every error a user can cause (bad data, wrong checkpoint, impossible option) is a
:class:`SegpruneError`. Its message is one line that says what is wrong and how to fix
it; the CLI prints that line and exits with status 2, without a traceback. Anything else
that escapes is a bug in segprune and keeps its traceback.
"""

from __future__ import annotations

import re

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def strip_ansi(text: str) -> str:
    """``text`` without terminal colour codes (libraries colour their errors; a log or JSON report shows them raw)."""
    return _ANSI.sub("", text)


def first_line(error: BaseException | str, limit: int = 300) -> str:
    """The first non-empty line of a library's error, without colour codes, to quote in a one-line message."""
    text = strip_ansi(str(error))
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(error).__name__ if
                isinstance(error, BaseException) else "")
    return line[:limit]


class SegpruneError(Exception):
    """An error caused by the user's input; the message names the fix."""

    exit_code = 2


class DataError(SegpruneError, ValueError):
    """A dataset, image or label file that cannot be used as it is."""


class CheckpointError(SegpruneError):
    """A checkpoint that is missing, unreadable or does not match the model asked for."""


class ConfigError(SegpruneError, ValueError):
    """An option or model configuration that cannot be built."""


class ExportError(SegpruneError):
    """A model, ONNX file or engine that cannot be exported, loaded or run as asked."""


class BackendError(SegpruneError):
    """An inference backend (onnxruntime, TensorRT, CUDA) that is missing or cannot run the model."""


class RegressionFound(SegpruneError):
    """A measured figure fell outside its tolerance: exit status 1, which CI reads as a failed gate.

    Also raised for an export whose parity check failed, since that is a measured
    disagreement rather than a malformed input.
    """

    exit_code = 1
