"""``segprune erf``: the effective receptive field of a checkpoint's centre pixel, with radii and a plot."""

from __future__ import annotations

import argparse
from pathlib import Path

from segprune.cli.common import (
    add_alias,
    add_data_args,
    add_input_size,
    add_output_args,
    add_runtime_args,
    apply_runtime,
    check_output_dir,
    emit,
    load_model_for,
)

NAME = "erf"
HELP = "measure the effective receptive field (do the atrous rates cover the image?)"
DESCRIPTION = ("Effective receptive field of a checkpoint, OpenERF protocol: for each image (batch size 1, eval "
               "mode) the centre output pixel's logits, averaged over classes, are back-propagated to the input; "
               "the gradient is averaged over RGB, clamped to positive, accumulated and normalised to sum 1. "
               "Reports the radii holding 50% and 90% of the mass and the mass outside the central half of the "
               "image; writes erf.json and erf.png (circles at both radii) to --out. ASPP shows up as a 3x3 "
               "lattice of blobs r*OS pixels apart.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="a .safetensors checkpoint written by segprune")
    add_data_args(parser, split="val")
    erf = parser.add_argument_group("receptive field")
    erf.add_argument("--images", type=int, default=16, metavar="N",
                     help="images to accumulate, evenly spaced over the split (0 = all)")
    add_input_size(erf, "the images' own size, which must then be the same for all")
    erf.add_argument("--target", default="logits", metavar="NAME",
                     help="logits, or a module whose output's centre pixel is used instead, e.g. aspp")
    erf.add_argument("--log-scale", action="store_true",
                     help="log colour scale in erf.png (shows the faint outer lattice taps)")
    parser.add_argument("--out", type=Path, default=Path("runs/erf"), metavar="DIR",
                        help="folder for erf.json and erf.png")
    parser.add_argument("--no-plots", action="store_true", help="write erf.json only")
    add_alias(parser, "--no-plot", "--no-plots", "no_plots", flag=True)
    add_runtime_args(parser)
    add_output_args(parser)


def run(args: argparse.Namespace) -> int:
    from segprune import plots
    from segprune.data import EvalTransform, build_dataset, spread_loader
    from segprune.errors import ConfigError
    from segprune.io import save_json
    from segprune.models.erf import effective_receptive_field
    from segprune.report import format_table, make_report

    apply_runtime(args)
    check_output_dir(args.out)  # checked, not created: a failed run leaves no empty folder
    if args.images < 0:
        raise ConfigError(f"--images must be 0 (all) or positive, got {args.images}")
    dataset = build_dataset(args.data, args.split, transform=EvalTransform(args.input_size))
    model, device, info = load_model_for(args.checkpoint, dataset, args.device)
    loader = spread_loader(dataset, args.images or None, 1, args.workers)
    result = effective_receptive_field(model, loader, target=args.target, device=device,
                                       progress=not args.no_progress, total=len(loader.dataset))
    cfg = model.config
    train_crop = (info.get("metadata") or {}).get("train", {}).get("crop_size")
    out = args.out
    figure = None
    if not args.no_plots:
        h, w = result.size
        title = (f"ERF of {result.target} centre, {cfg.arch}_{cfg.backbone} OS{cfg.output_stride} rates "
                 f"{','.join(map(str, cfg.atrous_rates))}\n{result.images} images at {h}x{w}")
        figure = plots.plot_erf(result.map, result.centre, {"50%": result.radius_50, "90%": result.radius_90},
                                out / "erf.png", log_scale=args.log_scale, title=title)
    report = make_report("erf", checkpoint=str(args.checkpoint), data=args.data, split=args.split,
                         **result.to_dict(), input_size=args.input_size, train_crop=train_crop,
                         model={"arch": cfg.arch, "backbone": cfg.backbone, "output_stride": cfg.output_stride,
                                "atrous_rates": list(cfg.atrous_rates), "atrous_rule": cfg.atrous_rule},
                         device=str(device), figure=str(figure) if figure else None)
    save_json(out / "erf.json", report)
    row = [result.target, result.images, f"{result.size[0]}x{result.size[1]}",
           f"{result.centre[0]:.1f},{result.centre[1]:.1f}", result.radius_50, result.radius_90,
           100 * result.outside_central_half]
    table = format_table([row], ["target", "images", "size", "centre", "r50 px", "r90 px", "outside half %"])
    emit(args, report, f"{table}\natrous rates {','.join(map(str, cfg.atrous_rates))} at OS{cfg.output_stride}; "
                       f"erf.json{' and erf.png' if figure else ''} in {out}")
    return 0
