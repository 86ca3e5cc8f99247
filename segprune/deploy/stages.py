"""A folder built in stages that a re-run resumes: each stage appears whole or not at all.

``compress.json`` in the folder records the options the folder was made with and the stages
finished so far. A stage writes into a temporary sibling that is renamed into place when it
succeeds (:func:`segprune.io.staged_dir`), and only then is it recorded, so an interrupted
stage leaves nothing under its name and the next run with the same options does it again.
Other options, or a folder segprune did not write, are refused unless the user asks for
``--overwrite``: nothing of theirs is replaced silently. The manifest is first written when
the first stage finishes, so a run refused or failed before that leaves no folder.
"""

from __future__ import annotations

import datetime as _dt
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from segprune.errors import ConfigError
from segprune.io import check_output_dir, json_safe, load_json, save_json, staged_dir

MANIFEST = "compress.json"
SCHEMA = "segprune.compress/1"


class StageFolder:
    """The stages of one run in ``root``, made with ``options`` (JSON-like; compared as JSON on resume)."""

    def __init__(self, root: str | Path, options: dict[str, Any], *, overwrite: bool = False,
                 option: str = "--out") -> None:
        self.root, self.options, self.overwrite, self.option = Path(root), json_safe(options), overwrite, option
        self.stages: dict[str, Any] = {}

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST

    def prepare(self) -> list[str]:
        """Check the folder before any work; returns the stages a resumed run skips (nothing is removed yet)."""
        check_output_dir(self.root, self.option)
        if not self.root.is_dir() or not any(self.root.iterdir()):
            return []
        if self.overwrite:
            return []
        if not self.manifest_path.is_file():
            raise ConfigError(f"{self.option} {self.root} already holds files segprune compress did not write: pass "
                              "another --out, or --overwrite to replace them")
        doc = load_json(self.manifest_path)
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
            raise ConfigError(f"{self.manifest_path} is not a {SCHEMA} manifest: pass --overwrite to start again")
        if doc.get("options") != self.options:
            changed = _differences(self.options, doc.get("options") or {})
            raise ConfigError(f"{self.option} {self.root} was made with other options ({', '.join(changed)}): repeat "
                              "that run's options to resume it, pass --overwrite to start again, or another --out")
        self.stages = {name: info for name, info in doc.get("stages", {}).items() if self._present(name, info)}
        return list(self.stages)

    def clear(self) -> None:
        """With ``overwrite``: remove what the folder holds, once every check has passed."""
        if self.overwrite and self.root.is_dir():
            for child in self.root.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()

    def done(self, name: str) -> bool:
        return name in self.stages

    @contextmanager
    def stage(self, name: str) -> Iterator[Path]:
        """A temporary folder for stage ``name``; it becomes ``root/name`` and is recorded when the block succeeds."""
        with staged_dir(self.root / name) as tmp:
            yield tmp
        self.finish(name, folder=True)

    def finish(self, name: str, *, folder: bool = False, files: tuple[str, ...] = ()) -> None:
        """Record stage ``name`` as finished (its folder, or the ``files`` it wrote in ``root``)."""
        self.stages[name] = {"finished": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                             "folder": name if folder else None, "files": list(files)}
        save_json(self.manifest_path, {"schema": SCHEMA, "options": self.options, "stages": self.stages})

    def discard(self, name: str) -> None:
        """Forget stage ``name`` (its folder stays, for inspection): the next run does it again."""
        self.stages.pop(name, None)
        if self.manifest_path.is_file():
            save_json(self.manifest_path, {"schema": SCHEMA, "options": self.options, "stages": self.stages})

    def _present(self, name: str, info: dict[str, Any]) -> bool:
        """A recorded stage whose outputs are still there (a deleted stage folder is done again)."""
        if info.get("folder") and not (self.root / info["folder"]).is_dir():
            return False
        return all((self.root / f).is_file() for f in info.get("files", []))


def _differences(new: Any, old: Any, prefix: str = "") -> list[str]:
    """The option names (dotted, e.g. ``plan.config.target_macs``) whose values differ."""
    if isinstance(new, dict) and isinstance(old, dict):
        return [d for key in sorted({*new, *old}) for d in _differences(new.get(key), old.get(key), f"{prefix}{key}.")]
    return [] if new == old else [prefix.rstrip(".")]
