"""Argument groups and helpers shared by the subcommands.

Options that mean the same thing are spelled the same way everywhere (``--data``,
``--device``, ``--json``, ``--report``), so each subcommand adds groups from here rather
than redeclaring them.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any

from segprune.errors import ConfigError
from segprune.io import check_free_space, check_output_dir, json_text, save_json  # noqa: F401 (re-exported)
from segprune.limits import check_input_size


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends an option's default to its help, unless there is none to tell (None, a False flag) or the
    help already says it in words."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text or not action.option_strings:
            return text
        return super()._get_help_string(action)


class DeprecatedAlias(argparse.Action):
    """An old spelling of an option: stores like the option it stands for and says, on stderr, which to use."""

    def __init__(self, option_strings, dest, canonical: str = "", takes_value: bool = True, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=None if takes_value else 0, **kwargs)
        self.canonical, self.takes_value = canonical, takes_value

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(f"segprune: {option_string} is deprecated and goes in the next release: use {self.canonical}",
              file=sys.stderr)
        setattr(namespace, self.dest, values if self.takes_value else True)


def add_alias(group, old: str, canonical: str, dest: str, *, flag: bool = False, type=None) -> None:
    """Accept ``old`` for one release as a hidden, warning spelling of ``canonical`` (same ``dest``)."""
    group.add_argument(old, dest=dest, action=DeprecatedAlias, canonical=canonical, takes_value=not flag,
                       type=type, default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def add_input_size(group, fallback: str) -> None:
    """``--input-size``, declared once: the size the model runs at; ``fallback`` says what applies without it."""
    group.add_argument("--input-size", type=parse_size, default=None, metavar="HxW",
                       help="the size the model runs at (normally its training size): images are resized to it "
                            f"before the model, and MACs and latency are counted at it (default: {fallback})")


def parse_size(text: str) -> tuple[int, int]:
    """``"360x480"`` -> ``(360, 480)``; a single number means a square."""
    try:
        parts = [int(p) for p in text.lower().replace(",", "x").split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size: write HxW, e.g. 360x480") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size: write HxW with positive integers, e.g. 360x480")
    try:
        check_input_size((parts[0], parts[1]), "size")  # refused before anything is allocated at that size
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return parts[0], parts[1]


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def positive_int(text: str) -> int:
    """An ``int`` option that counts something there must be at least one of (runs, images, batch, threads)."""
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not allowed: it must be at least 1")
    return value


def nonneg_int(text: str) -> int:
    """An ``int`` option where 0 means none (warm-up calls, worker processes), never a negative count."""
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is not allowed: it must be 0 or more")
    return value


_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def device_name(text: str) -> str:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``, checked when parsed (whether the GPU exists is checked later)."""
    if not _DEVICE.match(text.strip().lower()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device: use cpu, cuda, cuda:N or auto")
    return text.strip().lower()


def parse_floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(p) for p in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None


def parse_ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers, e.g. 6,12,18") from None


def parse_rates(text: str) -> tuple[int, ...] | str:
    """``"6,12,18"`` -> ``(6, 12, 18)``; ``"auto"`` stays ``"auto"`` (sized to the training crop later)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return tuple(int(p) for p in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of rates: write R1,R2,R3, e.g. 6,12,18, "
                                         "or auto") from None


def parse_agreement(text: str) -> dict[str, float]:
    """``0.9999`` (every precision) or ``fp32=0.9999,int8=0.9``."""
    out: dict[str, float] = {}
    try:
        for part in text.split(","):
            key, sep, value = part.partition("=")
            if sep:
                out[key.strip()] = float(value)
            else:
                out.update({p: float(key) for p in ("fp32", "fp16", "int8")})
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a share or PRECISION=SHARE list, e.g. int8=0.9") from None
    return out


DATA_HELP = ("dataset as KIND:PATH: camvid:../shared/data/camvid, cityscapes:DIR, voc:DIR (VOC2012), "
             "folder:DIR (images/ + masks/ + classes.txt), or synthetic[:n=64,size=96x128,classes=6,seed=0] "
             "(generated in memory, no files)")


def add_data_args(parser: argparse.ArgumentParser, *, split: str | None = None) -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--data", required=True, metavar="SPEC", help=DATA_HELP)
    if split is not None:
        group.add_argument("--split", default=split, help="which split to read")
    group.add_argument("--workers", type=nonneg_int, default=0, metavar="N",
                       help="DataLoader worker processes (0 loads in the main process)")


def add_runtime_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("runtime")
    group.add_argument("--device", type=device_name, default="auto",
                       help="cpu, cuda, cuda:N or auto (auto: the GPU when one is visible)")
    group.add_argument("--threads", type=positive_int, default=None, metavar="N",
                       help="CPU threads for PyTorch (PyTorch picks when unset, usually the core count)")
    group.add_argument("--no-progress", action="store_true", help="hide progress bars (they go to stderr)")


def add_output_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("output")
    group.add_argument("--json", action="store_true",
                       help="print the JSON report to stdout instead of the table")
    group.add_argument("--report", type=Path, metavar="PATH",
                       help="also write the JSON report to PATH (atomically)")


def apply_runtime(args: argparse.Namespace) -> None:
    import torch

    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)


def emit(args: argparse.Namespace, report: dict[str, Any], table: str) -> None:
    """Write the report where asked and print either the JSON or the table."""
    if getattr(args, "report", None):
        save_json(args.report, report)
    if getattr(args, "json", False):
        sys.stdout.write(json_text(report, indent=2))
        sys.stdout.write("\n")
    else:
        print(table)


def add_model_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--arch", default="deeplabv3plus_resnet18", metavar="NAME",
                       help="architecture_backbone, e.g. deeplabv3plus_resnet50 or dan_mobilenet_v2 "
                            "(`segprune info` lists them)")
    add_alias(group, "--model", "--arch", "arch")
    group.add_argument("--output-stride", type=int, choices=(8, 16), default=None,
                       help="backbone output stride through dilation (model default: 16)")
    group.add_argument("--atrous-rates", type=parse_rates, default=None, metavar="R1,R2,R3|auto",
                       help="ASPP atrous rates (model default: 6,12,18 at OS16, 12,24,36 at OS8); auto sizes "
                            "them to the training crop: r = min(H, W) / (6 * OS), rates (r, 2r, 3r) "
                            "(a derived rule, RESEARCH.md section 3.3; on CamVid at 176x240 it widened the "
                            "receptive field but gained no mIoU, docs/results.md)")
    group.add_argument("--aspp-channels", type=positive_int, default=None, metavar="C", help="ASPP width (model default: 256)")
    group.add_argument("--decoder-channels", type=positive_int, default=None, metavar="C",
                       help="decoder 3x3 conv width (model default: 256)")
    group.add_argument("--backbone-weights", default=None, metavar="PATH",
                       help="local ImageNet state dict for the backbone (a torchvision .pth file; never downloaded)")
    group.add_argument("--init", default=None, metavar="CKPT",
                       help="start from this segprune checkpoint instead of a fresh model (--model options are ignored)")


def model_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The model options the user actually gave, as ``create_model`` keyword arguments.

    ``--atrous-rates auto`` also passes ``input_size``: the command's training ``--crop-size``,
    else its ``--input-size``; with neither, ``create_model`` says which option to add.
    """
    names = ("output_stride", "atrous_rates", "aspp_channels", "decoder_channels", "backbone_weights")
    overrides = {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
    if overrides.get("atrous_rates") == "auto":
        size = getattr(args, "crop_size", None) or getattr(args, "input_size", None)
        if size is not None:
            overrides["input_size"] = tuple(size)
    return overrides


def build_or_load_model(args: argparse.Namespace, num_classes: int):
    """A fresh model from ``--model`` options, or the ``--init`` checkpoint checked against the data."""
    from segprune.models import create_model, load_checkpoint

    if getattr(args, "init", None):
        model, _ = load_checkpoint(args.init, num_classes=num_classes)
        return model
    import torch

    from segprune.limits import check_memory, model_bytes

    overrides = model_overrides(args)
    try:  # on the meta device first: an absurd width is refused before a byte is allocated
        with torch.device("meta"):
            skeleton = create_model(args.arch, num_classes=num_classes, **{**overrides, "backbone_weights": None})
    except RuntimeError as exc:  # past what any tensor can hold
        raise ConfigError(f"--arch {args.arch} with these widths is too large to build ({exc}): pass smaller "
                          "--aspp-channels / --decoder-channels") from None
    check_memory(f"--arch {args.arch} with these widths", model_bytes(skeleton),
                 "pass smaller --aspp-channels / --decoder-channels")
    model = create_model(args.arch, num_classes=num_classes, **overrides)
    rule = model.config.atrous_rule
    if rule and os.environ.get("RANK", "0") == "0":
        size = rule.rsplit(":", 1)[-1]
        print(f"--atrous-rates auto: {','.join(map(str, model.config.atrous_rates))} for {size} inputs at "
              f"OS{model.config.output_stride} (r = min(H, W) / (6 * OS), a derived rule)", file=sys.stderr)
    return model


MODEL_SOURCE_HELP = ("the model: a segprune checkpoint (.safetensors), a folder written by SMP's "
                     "model.save_pretrained(dir), or a plain weights file (.safetensors, or .pth read with "
                     "weights_only) with --arch")


def add_source_args(parser: argparse.ArgumentParser) -> None:
    """How to read a plain weights file: the architecture it belongs to (not needed for checkpoints or SMP folders)."""
    from segprune.choices import ARCH_HELP

    group = parser.add_argument_group("model source (plain weights files only)")
    group.add_argument("--arch", default=None, metavar="NAME", help=ARCH_HELP)
    group.add_argument("--encoder", default=None, metavar="NAME",
                       help="SMP encoder of the weights, e.g. resnet34 or mobilenet_v2 (with --arch smp:...)")
    group.add_argument("--classes", type=int, default=None, metavar="K",
                       help="number of classes the weights predict (with --arch)")


def load_model_for(source: str | Path, dataset, device_name: str | None, args: argparse.Namespace | None = None):
    """The user's model (:func:`segprune.models.load_model_for_data`), checked against the dataset's class count.

    ``args`` supplies ``--arch/--encoder/--classes`` for a plain weights file.
    """
    from segprune.models import load_model_for_data
    from segprune.train.distributed import resolve_device

    device = resolve_device(device_name)
    model, info = load_model_for_data(source, dataset.num_classes if dataset is not None else None,
                                      arch=getattr(args, "arch", None), encoder=getattr(args, "encoder", None),
                                      classes=getattr(args, "classes", None), map_location=str(device))
    return model, device, info


def check_output_file(path: Path, option: str = "--report") -> None:
    """Refuse now a file path the command writes at its end: a folder, or a place that cannot be written."""
    if path.is_dir():
        raise ConfigError(f"{option} {path} is a folder: pass a file path, e.g. {path / 'report.json'}")
    check_output_dir(path.parent, option=f"{option} {path}: folder")


def prepare_output_dir(path: Path, *, resume: bool = False, overwrite: bool = False,
                       owned: tuple[str, ...] = (), option: str = "--out") -> None:
    """Check, before any work, that ``path`` can take a run's outputs without losing a user's results.

    A folder that already holds one of the ``owned`` files (what the command writes) is refused
    unless ``resume`` (continue it) or ``overwrite`` (those files are removed now, so an old
    run's files never mix with the new one's). A path that is a file, or a folder that cannot
    be written, is refused at once rather than after the work (:func:`check_output_dir`).
    """
    check_output_dir(path, option)
    existing = [name for name in owned if (path / name).exists()]
    if existing and not resume and not overwrite:
        raise ConfigError(f"{option} {path} already holds a run ({', '.join(existing[:3])}): pass --resume to "
                          "continue it, --overwrite to replace it, or another --out")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{option} {path} cannot be created ({exc.strerror or exc}): pass a writable "
                          "folder") from None
    if overwrite and not resume:
        for name in existing:  # missing_ok: under torchrun every rank runs this
            (path / name).unlink(missing_ok=True)
