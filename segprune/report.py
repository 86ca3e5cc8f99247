"""Reports: a versioned JSON document for machines, an aligned table for people.

Each command builds one report dictionary with :func:`make_report`; ``--json`` prints it
(or ``--report PATH`` writes it atomically), and the table goes to stdout. The
``schema`` field (``segprune.<kind>/<version>``) lets a consumer refuse a report it
does not understand instead of misreading it.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import platform
import shlex
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1


def environment() -> dict[str, Any]:
    """Versions and hardware that a measured number depends on."""
    import torch

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    try:
        import torchvision

        env["torchvision"] = torchvision.__version__
    except ImportError:  # pragma: no cover - torchvision is a dependency
        pass
    if torch.cuda.is_available():
        env["cuda_device"] = torch.cuda.get_device_name(0)
        env["cuda"] = torch.version.cuda
    env.update(package_versions())
    return env


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str | None:
    """The CPU's model name (``AMD EPYC 7B13``), which ``platform.machine()`` (``x86_64``) does not say:
    two runs of one recipe on two CPU models differ by more than the noise between seeds, so every
    report names it. Linux reads /proc/cpuinfo (py-cpuinfo would add a dependency for one line);
    elsewhere ``platform.processor()``, or None when nothing says."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or None


# Packages a deployment figure depends on, read from their metadata (nothing is imported).
_DEPLOY_PACKAGES = ("onnx", "onnxruntime", "onnxruntime-gpu", "onnxslim", "onnxscript", "tensorrt", "polygraphy",
                    "torch-pruning")


def package_versions() -> dict[str, str]:
    """Installed versions of the export, inference and pruning packages (absent ones left out)."""
    from importlib import metadata

    out = {}
    for name in _DEPLOY_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def make_report(kind: str, **payload: Any) -> dict[str, Any]:
    """A report dictionary with schema, creation time, versions and the given payload."""
    from segprune import __version__

    return {
        "schema": f"segprune.{kind}/{SCHEMA_VERSION}",
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "segprune": __version__,
        "environment": environment(),
        **payload,
    }


def portable_path(value: str | os.PathLike, root: str | os.PathLike | None = None) -> str:
    """``value`` written relative to ``root`` (default: the current directory) where it lies inside it
    or beside it (``../shared``), so a committed report names no developer's machine.

    A relative path is taken as relative to the current directory, as the process that got it read it;
    a data spec keeps its prefix (``camvid:/data/camvid`` -> ``camvid:../shared/...``). Symbolic links
    are not followed first, so a path is recorded under the name it was given; anything else (another
    disk, a root whose parent is ``/``) stays as it was.
    """
    text = os.fspath(value)
    spec, sep, rest = text.partition(":")
    if sep and spec.isidentifier() and len(spec) > 1 and (rest.startswith(("/", ".")) or os.sep in rest):
        return f"{spec}:{portable_path(rest, root)}"
    base = Path(os.path.abspath(root if root is not None else os.getcwd()))
    path = Path(os.path.abspath(text))
    if not Path(text).is_absolute() and base == Path.cwd() or not text:
        return text  # relative to the root already
    if not Path(text).is_absolute() and not (path.exists() or ("/" in text and path.parent.is_dir())):
        return text  # not a path (a seed list, a name)
    anchors = [(base, "")] + ([(base.parent, "../")] if base.parent != Path(base.anchor) else [])
    for candidate in (path, path.resolve()):
        for anchor, prefix in anchors:
            try:
                return prefix + candidate.relative_to(anchor).as_posix()
            except ValueError:
                continue
    return text


def command_line(script: str | os.PathLike, argv: Sequence[str] | None = None,
                 root: str | os.PathLike | None = None) -> str:
    """``python SCRIPT ARGS`` for a report's ``command``: what reruns the run that wrote it, from ``root``.

    ``argv`` defaults to this process's arguments (a benchmark's ``main(argv)`` passes its own, so a
    call from a test records the test's, not pytest's). Paths go through :func:`portable_path`, so the
    command reruns from ``root`` of any checkout; arguments are shell-quoted.
    """

    def portable(arg: str) -> str:
        if arg.startswith("--") and "=" in arg:
            key, value = arg.split("=", 1)
            return f"{key}={portable_path(value, root)}"
        return arg if arg.startswith("-") else portable_path(arg, root)

    args = sys.argv[1:] if argv is None else argv
    return shlex.join(["python", portable_path(os.path.abspath(script), root), *map(portable, map(str, args))])


def format_value(value: Any, digits: int = 2) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def format_table(rows: Iterable[Sequence[Any]], headers: Sequence[str], digits: int = 2) -> str:
    """Left-aligned text columns, right-aligned numbers, one header rule."""
    rows = [list(r) for r in rows]
    cells = [[format_value(v, digits) for v in row] for row in rows]
    numeric = [bool(rows) and all(isinstance(r[i], (int, float)) and not isinstance(r[i], bool) for r in rows)
               for i in range(len(headers))]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str], header: bool = False) -> str:
        out = []
        for i, v in enumerate(values):
            out.append(v.rjust(widths[i]) if numeric[i] and not header else v.ljust(widths[i]))
        return "  ".join(out).rstrip()

    text = [line(headers, header=True), "  ".join("-" * w for w in widths)]
    text += [line(r) for r in cells]
    return "\n".join(text)


def markdown_table(rows: Iterable[Sequence[Any]], headers: Sequence[str], digits: int = 2) -> str:
    """The same cells as :func:`format_table`, as a Markdown table (model cards, generated docs)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(format_value(v, digits).replace("|", "\\|") for v in row) + " |" for row in rows]
    return "\n".join(lines)


def metrics_table(metrics: dict[str, Any]) -> str:
    """Per-class IoU and accuracy followed by the means, for ``eval``/``train`` output."""
    rows: list[list[Any]] = [[name, metrics["per_class_iou"][name], metrics["per_class_acc"][name]]
                             for name in metrics["per_class_iou"]]
    rows.append(["mean", metrics["miou"], metrics["macc"]])
    table = format_table(rows, ["class", "IoU %", "Acc %"])
    return f"{table}\npixel accuracy {format_value(metrics['pixel_acc'])} %"
