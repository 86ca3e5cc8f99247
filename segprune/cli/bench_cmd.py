"""``segprune bench``: mIoU and latency of one or more models, measured side by side in one run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from segprune.cli.common import (
    DATA_HELP,
    MODEL_SOURCE_HELP,
    add_input_size,
    add_output_args,
    add_source_args,
    check_output_dir,
    device_name,
    emit,
    nonneg_int,
    positive_int,
)

NAME = "bench"
HELP = "measure mIoU and latency on torch, onnxruntime or TensorRT; compare models side by side"
DESCRIPTION = ("Benchmark models on the same images: mIoU/mAcc over the whole split (scored at label resolution) "
               "and latency after warm-up (p50/p90/p99, mean, std, throughput). GPU backends (torch on CUDA, "
               "TensorRT) report device time (CUDA events around the execution, input already on the GPU) and "
               "end-to-end time (numpy images in, numpy logits out, copies included); CPU backends report end-to-end "
               "time (perf_counter). MODEL is a .safetensors checkpoint (torch), an .onnx file (onnxruntime), an "
               ".engine (tensorrt; its input size and batch come from its .engine.json) or an export folder "
               "(--precision picks the file). With two or more models, their timed runs are interleaved and ratios "
               "against the first are printed, device time against device time where both have it. --record writes "
               "the results as regression baselines into a model card folder.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", nargs="*", metavar="MODEL",
                        help="models to measure; the first is the reference. Each is an .onnx file, an .engine, an "
                             "export folder, or (torch backend) " + MODEL_SOURCE_HELP)
    add_source_args(parser)
    parser.add_argument("--compare", nargs=2, metavar=("A", "B"), default=None,
                        help="measure A and B in one run and print B's ratios against A (same as `bench A B`)")
    run = parser.add_argument_group("backend")
    run.add_argument("--backend", choices=("torch", "onnxruntime", "tensorrt"), default=None,
                     help="backend for every MODEL (default: from each file: .safetensors torch, .onnx or a folder "
                          "onnxruntime, .engine tensorrt)")
    run.add_argument("--device", type=device_name, default="cpu", help="cpu or cuda (torch, onnxruntime with onnxruntime-gpu)")
    run.add_argument("--precision", choices=("fp32", "fp16", "int8"), default=None,
                     help="precision: picks model.<precision>.onnx in an export folder, fp16 autocast for torch on "
                          "CUDA; checked against an ONNX file's own precision")
    run.add_argument("--threads", type=positive_int, default=None, metavar="N",
                     help="CPU threads for torch and onnxruntime (default: their own choice, the core count)")
    run.add_argument("--compile", action="store_true", help="torch backend: torch.compile the model")
    run.add_argument("--cuda-graphs", action="store_true",
                     help="torch backend on CUDA: torch.compile with CUDA graphs (mode reduce-overhead)")
    data = parser.add_argument_group("data")
    data.add_argument("--data", default=None, metavar="SPEC",
                      help=f"images for accuracy and timing (default: synthetic scenes). {DATA_HELP}")
    data.add_argument("--split", default="val", help="split to evaluate on (all of it unless --max-images)")
    add_input_size(data, "the size recorded in the first model (an engine's optimization profile, an ONNX file's "
                         "export size, a checkpoint's training size), else 360x480")
    data.add_argument("--batch-size", type=positive_int, default=None,
                      help="images per call, timed and evaluated (default: the first model's fixed batch, else 1)")
    data.add_argument("--max-images", type=positive_int, default=None, metavar="N",
                      help="evaluate on N evenly spread images instead of the full split (quick looks only)")
    data.add_argument("--no-accuracy", action="store_true", help="latency only")
    timing = parser.add_argument_group("timing")
    timing.add_argument("--warmup", type=nonneg_int, default=5, help="untimed calls per model before timing")
    timing.add_argument("--runs", type=positive_int, default=30, help="timed calls per model")
    timing.add_argument("--rounds", type=positive_int, default=3, help="the timed calls are interleaved across models in "
                                                              "this many rounds")
    parser.add_argument("--record", type=Path, default=None, metavar="CARD_DIR",
                        help="write these results as baselines into CARD_DIR/baselines.json (models/<name>/); an "
                             "entry for another device is never replaced")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    add_output_args(parser)


def run(args: argparse.Namespace) -> int:
    from segprune.bench import BenchSettings, bench, default_data, default_input_size, open_runner
    from segprune.errors import ConfigError
    from segprune.report import make_report

    models = list(args.compare) if args.compare else list(args.models)
    if args.compare and args.models:
        raise ConfigError("give the models either as MODEL ... or with --compare A B, not both")
    if not models:
        raise ConfigError("name at least one MODEL to benchmark (a checkpoint, an .onnx file, an engine or an "
                          "export folder)")
    if args.record is not None:  # refused before measuring, not after
        _check_card(args.record)
    runners = {}
    try:
        for i, path in enumerate(models):
            label = _label(path, models, i)
            runners[label] = open_runner(path, args.backend, device=args.device, precision=args.precision,
                                         threads=args.threads, compile=args.compile, cuda_graphs=args.cuda_graphs,
                                         source={"arch": args.arch, "encoder": args.encoder, "classes": args.classes})
        first = next(iter(runners.values()))
        size = args.input_size or default_input_size(first)
        settings = BenchSettings(data=args.data or default_data(first, size), split=args.split, input_size=size,
                                 batch_size=args.batch_size or _fixed_batch(first), warmup=args.warmup,
                                 runs=args.runs, rounds=args.rounds, accuracy=not args.no_accuracy,
                                 max_images=args.max_images, progress=not args.no_progress)
        payload = bench(runners, settings, threads=args.threads)
    finally:  # device memory (TensorRT, CUDA) is freed here, not whenever the garbage collector gets to it
        for runner in runners.values():
            runner.close()
    report = make_report("bench", **payload)
    if args.record:
        from segprune.regress import record_baselines

        written = record_baselines(args.record, report)
        print(f"recorded {written} baseline entries in {args.record / 'baselines.json'}", file=sys.stderr)
    emit(args, report, bench_table(payload))
    return 0


def _check_card(card: Path) -> None:
    """``--record``'s model card folder must exist, hold readable baselines and be writable."""
    from segprune.errors import ConfigError
    from segprune.regress import load_baselines

    if not card.exists():
        raise ConfigError(f"--record {card} does not exist: create the model card folder first (mkdir -p {card}), "
                          "then record into it")
    load_baselines(card)  # a file, or a malformed baselines.json, is refused here
    check_output_dir(card, "--record")


def _fixed_batch(runner) -> int:
    """The batch size a model's input is fixed at (an engine or ONNX file exported for one), else 1."""
    shape = getattr(runner, "input_shape", None) or []
    return shape[0] if shape and isinstance(shape[0], int) and shape[0] > 0 else 1


def _label(path: str, models: list[str], index: int) -> str:
    """The shortest trailing part of ``path`` that no other model shares (``unpruned/model.fp32.onnx``)."""
    parts = Path(path).parts
    for k in range(1, len(parts) + 1):
        tail = parts[-k:]
        if sum(Path(m).parts[-k:] == tail for m in models) == 1:
            return "/".join(tail)
    return f"{index}:{path}"  # the same path twice


def bench_table(payload: dict) -> str:
    from segprune.report import format_table

    rows = []
    for r in payload["results"]:
        lat, acc = r["latency"], r["accuracy"] or {}
        e2e = r.get("latency_end_to_end") or (lat if r.get("timing", "end_to_end") == "end_to_end" else {})
        rows.append([r["label"], r["backend"], r["precision"], r["device"]["kind"], r.get("timing", "end_to_end"),
                     lat["p50_ms"], lat["p90_ms"], lat["p99_ms"], lat["mean_ms"], lat["std_ms"], lat["throughput"],
                     e2e.get("p50_ms", float("nan")), acc.get("miou", float("nan")), acc.get("macc", float("nan"))])
    s = payload["settings"]
    text = [format_table(rows, ["model", "backend", "precision", "device", "timing", "p50 ms", "p90 ms", "p99 ms",
                                "mean ms", "std ms", "img/s", "end-to-end p50 ms", "mIoU", "mAcc"]),
            f"input {s['batch_size']}x3x{s['input_size'][0]}x{s['input_size'][1]}, {s['runs']} timed runs after "
            f"{s['warmup']} warm-up, {s['rounds']} interleaved rounds; "
            + (f"accuracy on {s['data']} {s['split']}" if s.get("accuracy", True) else "latency only (--no-accuracy)")]
    if payload["ratios"]:
        rows = [[r["model"], r["baseline"], r.get("timing", "end_to_end"), r["speedup_p50"],
                 r.get("delta_miou", float("nan"))] for r in payload["ratios"]]
        text += ["", format_table(rows, ["model", "vs", "timing", "speed-up (p50)", "delta mIoU"])]
    return "\n".join(text)
