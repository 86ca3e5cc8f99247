"""Recorded baselines: one entry per (backend, precision, input shape, device), in a model card folder.

A card folder ``models/<name>/`` holds ``card.toml`` (written by people: architecture,
dataset, input size, compression settings) and ``baselines.json`` (written by
``segprune bench --record``). The two are separate files so that recording never rewrites
the hand-written card and its comments.

Latency belongs to a device: an entry is keyed by the device as well, so recording on a
new machine adds an entry next to the old ones instead of replacing them. Recording again
on the same device replaces that device's entry (and says so).
"""

from __future__ import annotations

import datetime as _dt
import sys
from pathlib import Path
from typing import Any

from segprune.errors import ConfigError
from segprune.io import load_json, save_json
from segprune.regress.schema import check_baseline_entries

SCHEMA = "segprune.baselines/1"
FILE = "baselines.json"
CARD = "card.toml"


def entry_key(entry: dict[str, Any]) -> tuple:
    """What a baseline is matched on: backend, precision, input shape and device."""
    return (entry["backend"], entry["precision"], tuple(entry["input_shape"]), entry["device"]["key"])


def describe_key(key: tuple) -> str:
    backend, precision, shape, device = key
    return f"{backend} {precision} {'x'.join(map(str, shape))} on {device}"


def load_baselines(card_dir: str | Path) -> list[dict[str, Any]]:
    """The entries recorded in ``card_dir`` (an empty list when none have been recorded yet)."""
    path = Path(card_dir) / FILE
    if Path(card_dir).is_file():
        raise ConfigError(f"baseline {card_dir} is a file: pass its model card folder (models/<name>/), which holds "
                          f"{FILE}")
    if not Path(card_dir).is_dir():
        raise ConfigError(f"baseline folder {card_dir} does not exist: create it (models/<name>/) and record with "
                          f"`segprune bench MODEL --record {card_dir}`")
    if not path.is_file():
        return []
    doc = load_json(path)
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        schema = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise ConfigError(f"{path} has schema {schema!r}, this segprune reads {SCHEMA}: record it again")
    return list(check_baseline_entries(doc.get("entries", []), str(path)))


def entry_from_result(result: dict[str, Any], created: str | None = None) -> dict[str, Any]:
    """A baseline entry from one ``segprune bench`` result record."""
    lat = result["latency"]
    acc = result.get("accuracy") or {}
    return {
        "backend": result["backend"], "precision": result["precision"], "input_shape": result["input_shape"],
        "device": result["device"], "model_sha256": result.get("model_sha256"),
        "latency": {k: lat[k] for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "mad_ms", "runs")},
        "accuracy": ({k: acc[k] for k in ("miou", "macc", "images", "data", "split", "full_split")} if acc else None),
        "recorded": created or _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


def record_baselines(card_dir: str | Path, report: dict[str, Any]) -> int:
    """Add or replace the entries for every result of a bench report; returns how many were written."""
    entries = load_baselines(card_dir)
    by_key = {entry_key(e): i for i, e in enumerate(entries)}
    for result in report["results"]:
        entry = entry_from_result(result, report.get("created"))
        key = entry_key(entry)
        if key in by_key:
            print(f"replacing the baseline for {describe_key(key)} (recorded {entries[by_key[key]]['recorded']})",
                  file=sys.stderr)
            entries[by_key[key]] = entry
        else:
            by_key[key] = len(entries)
            entries.append(entry)
    save_json(Path(card_dir) / FILE, {"schema": SCHEMA, "entries": entries})
    return len(report["results"])


def find_baseline(entries: list[dict[str, Any]], result: dict[str, Any]) -> dict[str, Any] | None:
    key = entry_key(result)
    return next((e for e in entries if entry_key(e) == key), None)


def read_card(card_dir: str | Path) -> dict[str, Any]:
    """The hand-written card (``card.toml``) of a model folder, or ``{}`` when it has none."""
    import tomllib

    path = Path(card_dir) / CARD
    if not path.is_file():
        return {}
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}): fix the card") from None
