"""``segprune export``: checkpoint -> ONNX per precision (parity-checked) -> optional TensorRT engines."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from segprune.cli.common import (
    DATA_HELP,
    MODEL_SOURCE_HELP,
    add_alias,
    add_input_size,
    add_output_args,
    add_source_args,
    check_free_space,
    check_output_dir,
    emit,
    load_model_for,
    parse_agreement,
    positive_int,
)

NAME = "export"
HELP = "export a checkpoint to ONNX (fp32/fp16/int8) and TensorRT, with parity checks"
DESCRIPTION = ("Export a model (a segprune checkpoint, an SMP save_pretrained folder, or weights with --arch) to ONNX with torch.onnx's dynamo exporter, check it with "
               "onnx.checker, simplify it with onnxslim, and write one file per --precision (fp16 by graph "
               "conversion, int8 by Q/DQ nodes calibrated on --calib-images images: precision lives in the graph, as "
               "TensorRT 11's strongly typed builder requires). Every file is run in onnxruntime on real images "
               "and compared with PyTorch; a file below its argmax-agreement threshold is renamed "
               "*.PARITY-FAILED.onnx and the command exits 1. Every file is also checked, here and without TensorRT, against "
               "the rules TensorRT imposes on ONNX graphs (operators, Q/DQ form, Resize modes, dynamic shapes, opset): "
               "a file that breaks one is renamed *.TRT-INCOMPATIBLE.onnx, the node and rule are named, and the "
               "command exits 1 (--no-tensorrt-check skips this). --tensorrt also builds engines (needs TensorRT "
               "and a GPU; only a build proves a graph builds).")


def _dynamic(text: str) -> frozenset[str]:
    return frozenset(p.strip() for p in text.split(",") if p.strip() and p.strip() != "none")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="MODEL", help=MODEL_SOURCE_HELP)
    add_source_args(parser)
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="output folder (default: export/<checkpoint name>)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a previous export in --out (the folder is replaced whole, never mixed)")
    shape = parser.add_argument_group("graph")
    add_input_size(shape, "the size the checkpoint was trained or pruned at, else 512x1024; it must be divisible "
                          "by the output stride")
    shape.add_argument("--allow-unaligned", action="store_true",
                       help="accept an input size the output stride does not divide (e.g. CamVid's 360x480 at OS16) "
                            "for a model trained at that size")
    shape.add_argument("--batch-size", type=positive_int, default=1, help="batch size of the graph (and of parity batches)")
    shape.add_argument("--dynamic", type=_dynamic, default=frozenset(), metavar="AXES",
                       help="dynamic axes: batch, hw or batch,hw (spectral/area-truncated models: batch only)")
    shape.add_argument("--opset", type=int, default=18, help="ONNX opset (17 or newer)")
    shape.add_argument("--no-simplify", action="store_true", help="skip onnxslim simplification")
    prec = parser.add_argument_group("precision")
    prec.add_argument("--precision", default="fp32", metavar="LIST",
                      help="comma-separated precisions to write: fp32, fp16, int8")
    prec.add_argument("--calib-images", type=positive_int, default=32, metavar="N",
                      help="int8 calibration images from --data")
    add_alias(prec, "--calib", "--calib-images", "calib_images", type=positive_int)
    prec.add_argument("--calib-split", default="train", help="split the calibration images come from")
    prec.add_argument("--calib-method", default="percentile", choices=("percentile", "minmax", "entropy"),
                      help="int8 range calibration")
    prec.add_argument("--int8-rest", default=None, choices=("fp16", "fp32"),
                      help="precision of the int8 graph outside its Q/DQ pairs (additions, activations, pooling, "
                           "resampling, conv outputs): fp16, as TensorRT's int8+fp16 engines ran, or fp32 (default: "
                           "fp16 with --tensorrt; fp32 otherwise, since onnxruntime on a CPU runs an fp16 rest "
                           "several times slower)")
    check = parser.add_argument_group("parity")
    check.add_argument("--data", default=None, metavar="SPEC",
                       help=f"images for parity and calibration (default: synthetic scenes). {DATA_HELP}")
    check.add_argument("--split", default="val", help="split the parity images come from")
    check.add_argument("--parity-images", type=positive_int, default=8, metavar="N", help="images compared with PyTorch")
    check.add_argument("--min-agreement", type=parse_agreement, default={}, metavar="SHARE",
                       help="argmax agreement a file needs, as a share: one value or PRECISION=SHARE pairs "
                            "(defaults: fp32=0.9999, fp16=0.999, int8=0.90)")
    trt = parser.add_argument_group("tensorrt")
    trt.add_argument("--tensorrt", action="store_true", help="also build a TensorRT engine per precision")
    trt.add_argument("--no-tensorrt-check", action="store_true",
                     help="skip the check of every graph against TensorRT's published ONNX rules (runs without "
                          "TensorRT; on by default)")
    trt.add_argument("--workspace", type=float, default=4.0, metavar="GIB", help="TensorRT workspace limit")
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N", help="CPU threads for PyTorch")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    add_output_args(parser)


def run(args: argparse.Namespace) -> int:
    import torch

    from segprune.data import image_batches, synthetic_spec
    from segprune.errors import ConfigError
    from segprune.export import ExportConfig, ExportPlan, export_model
    from segprune.export.pipeline import check_export_dir
    from segprune.models import checkpoint_input_size, model_info
    from segprune.report import format_table, make_report

    out = args.out or Path("export") / Path(args.checkpoint).stem
    check_output_dir(out)
    check_export_dir(out)  # before the model loads: a file or a folder of other files is refused at once
    if not args.overwrite and out.is_dir() and any(out.iterdir()):
        raise ConfigError(f"--out {out} already holds an export: pass --overwrite to replace it, or another --out")
    if args.threads:
        torch.set_num_threads(args.threads)
    model, _, info = load_model_for(args.checkpoint, None, "cpu", args)
    check_free_space(out, model, 4, "the export (every precision, built beside the folder it replaces)")
    classes = model_info(model)["num_classes"]
    size = args.input_size or checkpoint_input_size(info) or (512, 1024)
    cfg = ExportConfig(input_size=size, batch_size=args.batch_size, dynamic=args.dynamic, opset=args.opset,
                       simplify=not args.no_simplify, allow_unaligned=args.allow_unaligned).validate(model)
    plan = ExportPlan(precisions=tuple(p.strip() for p in args.precision.split(",") if p.strip()),
                      calib_method=args.calib_method, min_agreement=args.min_agreement, tensorrt=args.tensorrt,
                      workspace_bytes=int(args.workspace * (1 << 30)), tensorrt_check=not args.no_tensorrt_check,
                      int8_rest=args.int8_rest).validate()
    data = args.data or synthetic_spec(classes, size, n=max(args.parity_images, args.calib_images))

    def batches(at: tuple[int, int], n: int):
        return image_batches(data, args.split, at, args.parity_images, n, classes)

    def calib(at: tuple[int, int]):
        return image_batches(data, args.calib_split, at, args.calib_images, 1, classes)

    log = (lambda _msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    manifest = export_model(model, out, cfg, plan, batches, calib,
                            source={"checkpoint": str(args.checkpoint), "data": data}, log=log)
    report = make_report("export", output=str(out), **manifest)
    rows = [[p, f["file"], f["bytes"] / 2**20, 100 * min(c["agreement"] for c in f["parity"]),
             max(c["max_abs_diff"] for c in f["parity"]), "ok" if all(c["passed"] for c in f["parity"]) else "FAILED",
             _trt_cell(f.get("tensorrt_check") or {})]
            for p, f in manifest["files"].items()]
    emit(args, report, format_table(rows, ["precision", "file", "MiB", "agree %", "max |dlogit|", "parity",
                                           "TensorRT rules"], 4)
         + f"\n{size[0]}x{size[1]}, dynamic: {','.join(manifest['dynamic']) or 'none'}; manifest {out / 'export.json'}")
    return 0


def _trt_cell(check: dict) -> str:
    if not check.get("checked"):
        return "skipped"
    return "ok" if check["passed"] else f"{len(check['violations'])} broken"
