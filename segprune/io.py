"""Atomic file output and safe loading.

Outputs are written to a temporary file in the destination folder and moved into place
with :func:`os.replace`, which is atomic on POSIX and Windows: an interrupted run leaves
either the old file or the new one under the final name, never half of one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from segprune.errors import SegpruneError


def _umask_mode() -> int:
    """The permissions ``open()`` would give a new file (mkstemp's are 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing; move it onto ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path for libraries that insist on writing by file name.

    safetensors, matplotlib and onnx write to a path, not a handle; they write to the
    yielded path and it is renamed onto ``path`` only if the block finishes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix or ".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def save_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically (non-finite numbers become ``null``: see :func:`json_text`)."""
    with atomic_write(path, "w") as handle:
        handle.write(json_text(obj, indent=2))
        handle.write("\n")


def json_safe(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float replaced by ``None``, recursively.

    Bare ``NaN``/``Infinity`` are not JSON (``JSON.parse`` and strict parsers reject them); a
    value that does not exist, such as the IoU of a class absent from a split, is ``null``.
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        return json_safe(obj.tolist())
    return obj


def json_text(obj: Any, indent: int | None = None) -> str:
    """Strict JSON for ``obj``: tensors, numpy values and paths converted, non-finite numbers as ``null``."""
    return json.dumps(json_safe(obj), indent=indent, default=json_default, allow_nan=False)


def load_json(path: str | os.PathLike) -> Any:
    """Read a JSON file, turning a missing or malformed file into a user error."""
    path = Path(path)
    try:
        with open(path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise SegpruneError(f"{path} does not exist: check the path") from None
    except json.JSONDecodeError as exc:
        raise SegpruneError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}): "
                            "regenerate it or fix it by hand") from None


def json_default(value: Any) -> Any:
    """Let tensors, numpy scalars and paths appear in reports without conversions at every call site."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks (exported graphs and engines are large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def path_sha256(path: str | os.PathLike) -> str:
    """:func:`file_sha256` of a file; for a folder (an SMP ``save_pretrained`` model), one digest of its files."""
    path = Path(path)
    if not path.is_dir():
        return file_sha256(path)
    lines = [f"{p.name}:{file_sha256(p)}" for p in sorted(path.iterdir()) if p.is_file()]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()
