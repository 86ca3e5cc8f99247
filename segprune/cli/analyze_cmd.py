"""``segprune analyze``: label spectra, cut-offs, grid choice, ceilings; with a model, CE by band and feature spectra."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from segprune.cli.common import (
    MODEL_SOURCE_HELP,
    add_data_args,
    add_input_size,
    add_output_args,
    add_runtime_args,
    add_source_args,
    apply_runtime,
    check_output_dir,
    emit,
    load_model_for,
    parse_floats,
    parse_ints,
    positive_int,
)

NAME = "analyze"
HELP = "measure label and feature spectra, cut-off frequency and the grid that resolves it"
DESCRIPTION = ("Stream every label map of a split through a batched 2-D transform and report how the label energy "
               "is spread over square frequency bands (f = fraction of Nyquist per axis): cumulative energy, "
               "cut-off f_c for each threshold, the grid / output stride / --keep-freq that resolves it, "
               "reconstruction ceilings, block-label annotation cost. With --model: the cross-entropy each band "
               "carries and per-channel decoder feature spectra. Writes spectrum.json and PNG plots to --out.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_args(parser, split="train")
    spec = parser.add_argument_group("spectrum")
    spec.add_argument("--taus", type=parse_floats, default=(0.90, 0.95, 0.99), metavar="T1,T2,..",
                      help="energy thresholds whose cut-off frequencies are reported (non-DC energy)")
    spec.add_argument("--transform", choices=("dft", "dct"), default="dft",
                      help="DFT (periodic; the default) or orthonormal DCT-II (no wrap-around at borders)")
    spec.add_argument("--keep-freq", type=float, default=None, metavar="F",
                      help="band kept per axis of the decoder features, in (0, 1]; used for the feature report")
    spec.add_argument("--energy", type=float, default=None, metavar="TAU",
                      help="derive --keep-freq from the label cut-off holding this energy fraction, e.g. 0.95")
    spec.add_argument("--ceiling-images", type=int, default=32, metavar="N",
                      help="label maps (evenly spaced) for the reconstruction ceilings; 0 = all, -1 = skip")
    spec.add_argument("--blocks", type=parse_ints, default=(1, 2, 4, 8, 16, 32), metavar="B1,B2,..",
                      help="block sizes for the block-label ceilings and annotation cost")
    spec.add_argument("--batch-size", type=positive_int, default=2,
                      help="label maps per batched transform (small batches stay in cache: fastest on CPU)")
    mdl = parser.add_argument_group("model (optional)")
    mdl.add_argument("--model", default=None, metavar="MODEL",
                     help=f"adds cross-entropy by band and decoder feature spectra; {MODEL_SOURCE_HELP}")
    mdl.add_argument("--layers", default=None, metavar="NAME[,NAME]",
                     help="modules whose outputs to measure (NAME:in for a module's input); default: the decoder")
    mdl.add_argument("--calib-images", type=positive_int, default=64, metavar="N", help="images for the model pass")
    add_source_args(parser)
    add_input_size(spec, "the labels' most common size; it sets the decoder grid, so each cut-off's keep-freq "
                         "and whether the decoder can hold it at all")
    parser.add_argument("--out", type=Path, default=Path("runs/analyze"), metavar="DIR",
                        help="folder for spectrum.json and the plots")
    parser.add_argument("--no-plots", action="store_true", help="write spectrum.json only")
    add_runtime_args(parser)
    add_output_args(parser)


def run(args: argparse.Namespace) -> int:
    from segprune import plots
    from segprune.data import EvalTransform, build_dataset, spread_loader
    from segprune.errors import ConfigError
    from segprune.io import save_json
    from segprune.report import format_table, make_report
    from segprune.spectral import analyze_labels, analyze_model, check_keep, choose_band, held_energy

    apply_runtime(args)
    check_output_dir(args.out)  # checked, not created: a failed run leaves no empty folder
    if args.keep_freq is not None and args.energy is not None:
        raise ConfigError("give --keep-freq or --energy, not both")
    if args.keep_freq is not None:
        check_keep(args.keep_freq)
    for tau in (*args.taus, *([args.energy] if args.energy is not None else [])):
        if not 0 < tau <= 1:
            raise ConfigError(f"energy threshold {tau} is outside (0, 1]: use e.g. 0.95")
    dataset = build_dataset(args.data, args.split)
    labels = analyze_labels(dataset, taus=args.taus, transform=args.transform, batch_size=args.batch_size,
                            workers=args.workers, ceiling_images=args.ceiling_images, blocks=args.blocks,
                            input_size=args.input_size, progress=not args.no_progress)
    label_size = labels.report["reference_size"]
    input_size = list(args.input_size or label_size)
    keep, band, stride = args.keep_freq, None, 4  # without a model: DeepLabV3+'s stride-4 fusion
    if args.model:
        from segprune.models import adapter_for

        model, device, _ = load_model_for(args.model, dataset, args.device, args)
        stride = adapter_for(model).decoder_stride(model)  # keep-freq is a fraction of this model's finest grid
    if args.energy is not None:
        band = choose_band(labels.spectrum, args.energy, label_size, input_size, stride)
        keep = band.keep_freq
        print(band.note(), file=sys.stderr)
    held = held_energy(labels.spectrum, keep, label_size, input_size, stride) if keep is not None else None
    report = make_report("analyze", data=args.data, split=args.split, classes=list(dataset.classes),
                         labels=labels.report, keep_freq=keep, energy=args.energy, input_size=input_size,
                         held_energy=held, decoder_stride=stride, band=band.to_dict() if band else None)
    out = args.out
    figures = []
    if not args.no_plots:
        figures.append(plots.plot_cumulative_energy(labels.report, out / "label_energy.png"))
        figures.append(plots.plot_class_spectra(labels.spectrum.class_energy_density(), list(dataset.classes),
                                                out / "class_spectra.png"))
        if labels.ceilings:
            figures.append(plots.plot_ceilings(labels.ceilings, out / "ceilings.png"))
    if args.model:
        calib = build_dataset(args.data, args.split, transform=EvalTransform())
        layers = args.layers.split(",") if args.layers else None
        model_report, spectra = analyze_model(model, spread_loader(calib, args.calib_images, 4), keep=keep or 1.0,
                                              input_size=args.input_size, layers=layers, device=device,
                                              progress=not args.no_progress)
        report["model"] = {"checkpoint": args.model, **model_report}
        if not args.no_plots:
            figures.append(plots.plot_ce_share(model_report, out / "ce_by_band.png"))
            figures.append(plots.plot_feature_heatmap(spectra.energy, out / "feature_spectra.png"))
    report["figures"] = [str(p) for p in figures]
    report["out"] = str(out)
    save_json(out / "spectrum.json", report)
    emit(args, report, _table(report, format_table))
    return 0


def _table(report: dict, format_table) -> str:
    lab = report["labels"]
    rows = [[f"{c['tau']:.2f}", c["cutoff"], c["cutoff_with_dc"], f"{c['grid'][0]}x{c['grid'][1]}",
             f"OS{c['output_stride']}",
             c["keep_freq"] if c["decoder_resolves_cutoff"] else "needs input {}x{}".format(*c["input_size_needed"])]
            for c in lab["cutoffs"]]
    text = [f"{lab['maps']} label maps ({', '.join(lab['sizes'])}), {lab['transform'].upper()}, square bands",
            format_table(rows, ["tau", "f_c", "f_c(+DC)", "grid", "stride", "keep-freq"], digits=3)]
    if lab["ceilings"]:
        c = lab["ceilings"]
        text.append("mIoU ceilings: " + ", ".join(f"OS{r['stride']} {r['miou']:.1f}" for r in c["grid"])
                    + " | blocks " + ", ".join(f"b={r['block']} {r['miou']:.1f}" for r in c["block"]))
    if "model" in report:
        m = report["model"]
        text.append(f"cross-entropy {m['cross_entropy']:.4f}; share inside band {m['keep_freq']:.3f}: "
                    f"{100 * m['ce_share_at_keep']:.1f}%")
        text.append(format_table([[name, f["channels"], f"{f['grid'][0]}x{f['grid'][1]}", f["mean_kept_fraction"]]
                                  for name, f in m["features"].items()],
                                 ["layer", "channels", "grid", "mean energy kept"], digits=3))
    if report.get("keep_freq") is not None:
        size = "x".join(map(str, report["input_size"]))
        text.append(f"keep-freq {report['keep_freq']:.3f} at input {size}: the decoder holds "
                    f"{report['held_energy']:.3f} of the label energy")
    text.append(f"report{' and plots' if report['figures'] else ''} in {report['out']}")
    return "\n".join(text)
