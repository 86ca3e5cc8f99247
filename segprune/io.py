"""Atomic file output and safe loading.

Outputs are written to a temporary file in the destination folder and moved into place
with :func:`os.replace`, which is atomic on POSIX and Windows: an interrupted run leaves
either the old file or the new one under the final name, never half of one. A folder whose
files belong together (an export: graphs and the manifest describing them) is built whole
in a temporary sibling and renamed into place (:func:`staged_dir`), so it never mixes two runs.

Temporary names are ``.<name>.<pid>-<random><suffix>``: a process killed mid-save (SIGKILL
skips every cleanup) leaves one behind, and the next save into that folder removes those
whose process is gone (:func:`_sweep_stale`), so leftovers never pile up to a disk's size.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from segprune.errors import ConfigError, SegpruneError

_STARTED = time.time()
_SWEPT: set[Path] = set()
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-[a-z0-9_]{8}(?P<suffix>\.[^.]+)$")


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}-"


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):  # another user's process: alive; a bogus pid: leave the file alone
        return False
    return False


def _sweep_stale(folder: Path) -> None:
    """Remove segprune's own temporary files and folders that a killed process left in ``folder``.

    Only names of the :func:`atomic_write` / :func:`staged_dir` form, whose writing process no
    longer runs and that are older than this process, so a concurrent save is never touched.
    Once per folder and process: a folder of thousands of dataset images is listed once.
    """
    folder = folder.resolve()
    if folder in _SWEPT:
        return
    _SWEPT.add(folder)
    with contextlib.suppress(OSError):
        for entry in folder.iterdir():
            match = _TEMP_NAME.match(entry.name)
            if not match or match["suffix"] not in (".tmp", ".old", Path(match["name"]).suffix):
                continue
            with contextlib.suppress(OSError):
                if entry.lstat().st_mtime < _STARTED and _process_gone(int(match["pid"])):
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry)
                    else:
                        entry.unlink()


def _umask_mode(base: int = 0o666) -> int:
    """The permissions ``open()`` (base 0o666) or ``mkdir`` (0o777) would give (mkstemp's are 0600, mkdtemp's 0700)."""
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing; move it onto ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_stale(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path), suffix=".tmp")
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
    _sweep_stale(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path), suffix=path.suffix or ".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def staged_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary sibling of the folder ``path``; on success it replaces ``path`` whole.

    Readers see the old folder or the new one, never files of both: a re-export cannot keep a
    precision the new model does not have, an interrupted one leaves the old folder as it was,
    and of two concurrent writers the last to finish wins with all of its files. On failure the
    temporary folder is removed, and so are the parents this call created, so nothing empty is
    left behind. The caller checks beforehand that ``path`` may be replaced (it deletes the old
    folder's files).
    """
    path = Path(path).absolute()  # "." has no name to build a sibling from
    missing = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_stale(path.parent)
    stage = Path(tempfile.mkdtemp(dir=path.parent, prefix=_temp_prefix(path), suffix=".tmp"))
    try:
        yield stage
        os.chmod(stage, _umask_mode(0o777))
        _rename_dir_into_place(stage, path)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        for folder in missing:  # deepest first; rmdir removes only empty folders
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def _rename_dir_into_place(stage: Path, path: Path) -> None:
    """Rename ``stage`` onto ``path``; an existing ``path`` is first renamed aside, then deleted."""
    for _ in range(100):  # a concurrent writer may put its folder in place between our two renames
        try:
            os.rename(stage, path)  # atomic; fails on a non-empty folder
            return
        except OSError as exc:
            if not path.is_dir() or path.is_symlink():
                raise
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=_temp_prefix(path), suffix=".old"))
            with contextlib.suppress(FileNotFoundError):
                os.rename(path, old)  # onto an empty folder: allowed
            shutil.rmtree(old, ignore_errors=True)
            last = exc
    raise last


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


def _nearest_existing(path: Path) -> Path:
    """``path``, or its nearest parent that exists: where a folder not yet created would be made."""
    base = path.absolute()
    while not base.exists():
        base = base.parent
    return base


def check_output_dir(path: Path, option: str = "--out") -> None:
    """Refuse now, before any work, a folder the command could not write its outputs into at the end.

    ``path`` may not exist yet: the probe writes a temporary file into ``path`` or its nearest
    existing parent, so nothing is created by the check (a folder under ``/proc``, on a
    read-only filesystem or without permission fails here, not after hours of training).
    """
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path} is a file: pass a folder for the outputs")
    base = _nearest_existing(path)
    if not base.is_dir():
        raise ConfigError(f"{option} {path} lies under the file {base}: pass a folder path")
    try:
        fd, probe = tempfile.mkstemp(dir=base, prefix=".segprune-write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"{option} {path} cannot be written ({exc.strerror or exc}): pass a writable "
                          "folder") from None


def check_free_space(path: Path, model: Any, copies: float, what: str, option: str = "--out") -> None:
    """Refuse now a folder whose disk cannot take ``copies`` times ``model``'s weights (what ``what`` writes).

    A full disk found at the first save loses the work done before it; the estimate is
    checked against the disk of ``path`` (or its nearest existing parent) before the work.
    """
    check_output_dir(path, option)  # a folder that cannot be written at all is told as such first
    from segprune.limits import model_bytes

    need = copies * model_bytes(model)
    free = shutil.disk_usage(_nearest_existing(path)).free
    if free < need:
        raise ConfigError(f"{option} {path}: {free / 2**20:.0f} MiB free on that disk, and {what} needs about "
                          f"{need / 2**20:.0f} MiB: free some space or pass an --out on another disk")
