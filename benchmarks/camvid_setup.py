"""What the compression benchmarks share: the CamVid baseline, val and calibration loaders."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def add_setup_args(parser: argparse.ArgumentParser) -> None:
    """The options :func:`load_setup` reads: data, baseline, input size, calibration images."""
    parser.add_argument("--camvid", type=Path, default=ROOT.parent / "shared" / "data" / "camvid",
                        help="CamVid folder (see its README)")
    parser.add_argument("--baseline", type=Path,
                        default=ROOT / "benchmarks" / "cache" / "camvid_r18" / "last.safetensors",
                        help="unpruned checkpoint from benchmarks/camvid_baseline.py")
    parser.add_argument("--size", default="180x240", help="input size the baseline runs at, HxW")
    parser.add_argument("--mode", default="area", choices=("area", "bilinear", "spectral"), help="truncation mode")
    parser.add_argument("--calib-images", type=int, default=32, help="train images that rank the channels")


def has_baseline(baseline: Path) -> bool:
    """Whether the baseline checkpoint exists; if not, says on stderr how to make it."""
    if baseline.is_file():
        return True
    print(f"no baseline at {baseline}: run benchmarks/camvid_baseline.py first", file=sys.stderr)
    return False


@dataclass
class CamvidSetup:
    base: Any  # the baseline model, loaded
    size: tuple[int, int]  # the input size it runs at
    spec: str  # dataset spec, camvid:PATH
    val: Any
    val_loader: Any
    calib_loader: Any  # --calib-images train images, evenly spaced, at the input size


def load_setup(camvid: Path, baseline: Path, size: str, calib_images: int) -> CamvidSetup | None:
    """The baseline and loaders, or None (with the reason on stderr) when the baseline is missing."""
    from torch.utils.data import Subset

    from segprune.cli.common import parse_size
    from segprune.data import EvalTransform, build_dataset, make_loader, spread
    from segprune.models import load_checkpoint

    if not has_baseline(baseline):
        return None
    hw = parse_size(size)
    spec = f"camvid:{camvid}"
    base, _ = load_checkpoint(baseline)
    val = build_dataset(spec, "val", transform=EvalTransform())
    calib = build_dataset(spec, "train", transform=EvalTransform(size=hw))
    return CamvidSetup(base, hw, spec, val, make_loader(val, 4, shuffle=False),
                       make_loader(Subset(calib, spread(len(calib), calib_images)), 4, shuffle=False))
