"""Dataset specs: one string on the command line names a dataset and where it lives.

``KIND:PATH`` for data on disk (``camvid:../shared/data/camvid``, ``cityscapes:DIR``,
``voc:DIR``, ``folder:DIR``) and ``synthetic[:n=64,size=96x128,classes=6,seed=0]`` for
generated scenes. For ``synthetic``, ``n`` counts the training scenes and every other split
gets ``n // 4`` (at least 1) unless ``n_val`` says otherwise, so ``synthetic:n=256`` gives a
matching 64-scene val split, as the defaults 64 / 16 do.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from segprune.data.base import SegmentationDataset, Transform
from segprune.data.camvid import CamVid
from segprune.data.cityscapes import Cityscapes
from segprune.data.folder import FolderDataset
from segprune.data.synthetic import SyntheticScenes
from segprune.data.voc import VOC
from segprune.errors import DataError

_ON_DISK: dict[str, Callable[..., SegmentationDataset]] = {
    "camvid": CamVid,
    "cityscapes": Cityscapes,
    "voc": VOC,
    "folder": FolderDataset,
}
DATASET_KINDS: tuple[str, ...] = (*_ON_DISK, "synthetic")
"""The dataset kinds :func:`build_dataset` accepts."""

VALID_FORMS = ("camvid:PATH, cityscapes:PATH, voc:PATH, folder:PATH, synthetic, or "
               "synthetic:n=64,n_val=16,size=96x128,classes=6,seed=0 (any subset of the options)")
_SYNTH_DEFAULTS = {"n": 64, "size": (96, 128), "classes": 6, "seed": 0}


def _parse_int(spec: str, key: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise DataError(f"dataset spec {spec!r}: {key}={value!r} is not an integer; valid forms: "
                        f"{VALID_FORMS}") from None


def parse_synthetic(spec: str, options: str) -> dict:
    """Parse ``n=..,n_val=..,size=HxW,classes=..,seed=..`` into keyword values."""
    parsed: dict = dict(_SYNTH_DEFAULTS)
    for item in filter(None, (part.strip() for part in options.split(","))):
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or key not in (*_SYNTH_DEFAULTS, "n_val"):
            raise DataError(f"dataset spec {spec!r}: cannot read {item!r} (options are n, n_val, size, classes, "
                            f"seed); valid forms: {VALID_FORMS}")
        if key == "size":
            h, sep, w = value.lower().partition("x")
            if not sep:
                raise DataError(f"dataset spec {spec!r}: size={value!r} is not HxW (e.g. 96x128); valid "
                                f"forms: {VALID_FORMS}")
            parsed["size"] = (_parse_int(spec, key, h), _parse_int(spec, key, w))
        else:
            parsed[key] = _parse_int(spec, key, value)
    for key in ("n", "n_val"):  # checked here, where the user's spelling of the count is known
        if key in parsed and parsed[key] < 1:
            raise DataError(f"dataset spec {spec!r}: {key}={parsed[key]} asks for no scenes: use {key} >= 1")
    return parsed


def synthetic_spec(num_classes: int, size: tuple[int, int], n: int = 16) -> str:
    """A generated dataset matching a model's class count, for commands run without ``--data``."""
    return f"synthetic:n={n},n_val={n},size={size[0]}x{size[1]},classes={num_classes},seed=0"


def build_dataset(spec: str, split: str, transform: Transform | None = None) -> SegmentationDataset:
    """Build the dataset named by ``spec`` (see the module docstring) for ``split``."""
    kind, sep, rest = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "synthetic":
        opts = parse_synthetic(spec, rest)
        n = opts["n"] if split == "train" else opts.get("n_val", max(1, opts["n"] // 4))
        return SyntheticScenes(n, size=opts["size"], num_classes=opts["classes"], seed=opts["seed"],
                               split=split, transform=transform)
    if kind not in _ON_DISK:
        raise DataError(f"unknown dataset kind {kind!r} in {spec!r}: valid forms are {VALID_FORMS}")
    if not sep or not rest.strip():
        raise DataError(f"dataset spec {spec!r} names no path: write {kind}:PATH; valid forms are {VALID_FORMS}")
    root = Path(rest.strip()).expanduser()
    if not root.exists():
        raise DataError(f"{root} does not exist: check the path in {spec!r}")
    return _ON_DISK[kind](root, split, transform=transform)
