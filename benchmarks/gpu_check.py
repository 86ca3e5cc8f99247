"""One prepared GPU check: the CUDA/TensorRT tests, then unpruned vs compressed DeepLabV3+ R18 latency.

For a machine with an NVIDIA GPU, in one command (``make gpu-check``) that fits in about 8
minutes on a current data-centre GPU:

1. runs the tests marked ``cuda`` or ``tensorrt`` (they skip, with the reason, where their
   hardware or library is missing) and records pytest's summary line and exit status;
2. times the unpruned DeepLabV3+ ResNet-18 (OS16, 11 CamVid classes) against the CamVid
   half-MACs architecture (keep-freq 0.75, channels removed across backbone, ASPP and decoder
   to 47.8% of the MACs; the "Half the MACs within 1 point" row of docs/results.md) in PyTorch on CUDA:
   fp32, fp16 and bf16 autocast, NCHW and channels_last, ``torch.compile`` and CUDA graphs
   (``reduce-overhead``), at 512x1024 and 1024x2048, batch 1 and 8. Every configuration gets
   two timings, named as ``segprune bench`` names them: ``device`` (CUDA events around the
   forward, input already on the GPU) and ``end_to_end`` (host tensor in, host logits out,
   copies and synchronisation included); p50/p90/p99 of each;
3. the same two models as fp16 TensorRT engines where ``tensorrt`` and ``polygraphy`` import;
4. writes ``benchmarks/results/gpu_<device>.json`` and prints the speed-up table.

Weights are untrained: latency does not depend on them. The compressed architecture is read
from ``gpu_check_architectures.json`` beside this script (channel widths, computed on the CPU
with ``compress_(..., CompressConfig(keep_freq=0.75, target_macs=0.5, scope="all",
importance="l1"), example=(180, 240))``) and rebuilt with segprune's model adapter, so
neither torch-pruning nor a checkpoint is needed on the GPU machine. A configuration that
fails (out of memory, a compile error) is recorded with its error; one that the time budget
(``--budget-s``) leaves no room for is recorded as skipped: nothing is dropped silently.

The full-resolution CamVid training run the issue mentions is not part of this script.

``--device cpu --quick`` runs the same code path on a CPU in seconds (tiny size, eager
variants only; there is no device timing without CUDA), which is how the tests exercise it.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # runs from a checkout where segprune is not installed
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from segprune.bench.timing import LatencyStats  # noqa: E402
from segprune.report import command_line  # noqa: E402

ARCHITECTURES = Path(__file__).with_name("gpu_check_architectures.json")
# name -> (autocast dtype or None, channels_last, torch.compile mode or None)
VARIANTS = {
    "eager-fp32": (None, False, None),
    "eager-fp32-cl": (None, True, None),
    "eager-fp16": (torch.float16, False, None),
    "eager-fp16-cl": (torch.float16, True, None),
    "eager-bf16": (torch.bfloat16, False, None),
    "eager-bf16-cl": (torch.bfloat16, True, None),
    "compile-fp16-cl": (torch.float16, True, "default"),
    "cudagraphs-fp16-cl": (torch.float16, True, "reduce-overhead"),
}
QUICK_CPU_VARIANTS = ("eager-fp32", "eager-fp32-cl")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--quick", action="store_true",
                        help="one small size, batch 1, few runs (on the CPU: eager fp32 NCHW and channels_last)")
    parser.add_argument("--sizes", default="512x1024,1024x2048", help="input sizes HxW, comma-separated")
    parser.add_argument("--batches", default="1,8", help="batch sizes, comma-separated")
    parser.add_argument("--variants", default=None, help=f"subset of {','.join(VARIANTS)}")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--budget-s", type=float, default=450.0,
                        help="seconds for the whole run, tests included; configurations that would start past it "
                             "are recorded as skipped (the run ends within one configuration of it)")
    parser.add_argument("--skip-tests", action="store_true", help="do not run the cuda/tensorrt-marked tests")
    parser.add_argument("--no-tensorrt", action="store_true", help="do not build or time TensorRT engines")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/gpu_<device>.json)")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device is visible: run on a GPU machine, or pass --device cpu --quick")
    if args.quick:
        args.sizes = "64x128" if args.device == "cpu" else "256x512"
        args.batches, args.warmup, args.runs = "1", 1, 3 if args.device == "cpu" else 10
        if args.device == "cpu" and args.variants is None:
            args.variants = ",".join(QUICK_CPU_VARIANTS)
    args.size_list = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",")]
    args.batch_list = [int(b) for b in args.batches.split(",")]
    args.variant_list = list(VARIANTS) if args.variants is None else args.variants.split(",")
    unknown = [v for v in args.variant_list if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}: choose from {', '.join(VARIANTS)}")
    return args


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name(0)
    return platform.processor() or platform.machine()


def run_marked_tests() -> dict[str, Any]:
    """pytest -m 'cuda or tensorrt' over the suite; its summary line and exit status."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "cuda or tensorrt", "tests"]
    started = time.monotonic()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return {"command": " ".join(cmd[2:]), "exit_code": done.returncode, "summary": lines[-1] if lines else "",
            "seconds": round(time.monotonic() - started, 1)}


def build_models(device: str) -> dict[str, torch.nn.Module]:
    """The unpruned and compressed architectures from the committed JSON, untrained, in eval mode."""
    from segprune.models.adapters import get_adapter

    spec = json.loads(ARCHITECTURES.read_text())
    adapter = get_adapter("segprune")
    torch.manual_seed(0)
    return {name: adapter.build(spec[name]).eval().to(device) for name in ("unpruned", "compressed")}


def _stats(seconds: list[float], batch: int) -> dict[str, float]:
    s = LatencyStats.from_times(seconds, batch)
    return {"p50_ms": s.p50_ms, "p90_ms": s.p90_ms, "p99_ms": s.p99_ms, "mean_ms": s.mean_ms, "runs": s.runs,
            "images_per_s": s.throughput}


def measure(model: torch.nn.Module, variant: str, size: tuple[int, int], batch: int, device: str, warmup: int,
            runs: int) -> dict[str, Any]:
    """Device and end-to-end latency of one model in one variant at one shape."""
    dtype, channels_last, mode = VARIANTS[variant]
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = model.to(memory_format=fmt)
    if mode is not None:
        # a fresh cache per configuration: both models share one forward, and past dynamo's recompile
        # limit a compiled call would fall back to eager without saying so in the figures
        torch._dynamo.reset()
        net = torch.compile(net, mode=mode)
    cuda = device == "cuda"
    host = torch.randn(batch, 3, *size)

    @torch.no_grad()
    def forward(x: torch.Tensor) -> torch.Tensor:
        if mode == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()  # a replay overwrites the last outputs: we never keep them
        with torch.autocast(device, dtype=dtype or torch.float32, enabled=dtype is not None):
            return net(x)

    def end_to_end() -> None:
        x = host.to(device).contiguous(memory_format=fmt)
        forward(x).float().cpu()  # the copy back synchronises

    x_dev = host.to(device).contiguous(memory_format=fmt)
    for _ in range(warmup):
        end_to_end()
    result: dict[str, Any] = {"device_ms": None}
    if cuda:
        torch.cuda.synchronize()
        times = []
        for _ in range(runs):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            forward(x_dev)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        result["device_ms"] = _stats(times, batch)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        end_to_end()
        times.append(time.perf_counter() - t0)
    result["end_to_end_ms"] = _stats(times, batch)
    model.to(memory_format=torch.contiguous_format)
    return result


def tensorrt_rows(models, args, deadline: float) -> tuple[list[dict[str, Any]], str | None]:
    """fp16 engines of both models per size (dynamic batch up to the largest), timed like the PyTorch rows."""
    import importlib.util

    if args.no_tensorrt or args.device != "cuda":
        return [], "not asked for" if args.no_tensorrt else "needs --device cuda"
    if importlib.util.find_spec("tensorrt") is None or importlib.util.find_spec("polygraphy") is None:
        return [], "tensorrt or polygraphy is not installed on this machine"
    import tempfile

    import numpy as np

    from segprune.export import ExportConfig, export_onnx, to_fp16
    from segprune.export.tensorrt import TrtRunner, build_engine

    rows = []
    with tempfile.TemporaryDirectory(prefix="segprune-gpu-check-") as tmp:
        for name, model in models.items():
            for size in args.size_list:
                for batch in args.batch_list:
                    def trt(name=name, model=model, size=size, batch=batch) -> dict[str, Any]:
                        base = Path(tmp) / f"{name}_{size[0]}x{size[1]}"
                        engine = base.with_suffix(".engine")
                        if not engine.exists():
                            cpu = model.to("cpu")
                            export_onnx(cpu, base.with_suffix(".fp32.onnx"),
                                        ExportConfig(size, dynamic=frozenset({"batch"}), allow_unaligned=True))
                            model.to(args.device)
                            to_fp16(base.with_suffix(".fp32.onnx"), base.with_suffix(".onnx"))
                            top = max(args.batch_list)
                            build_engine(base.with_suffix(".onnx"), engine, workspace_bytes=4 << 30,
                                         shapes={"min": (1, 3, *size), "opt": (top, 3, *size), "max": (top, 3, *size)})
                        images = np.random.default_rng(0).standard_normal((batch, 3, *size)).astype(np.float32)
                        with TrtRunner(engine) as runner:
                            return {kind + "_ms": _stats(runner.time_inference(images, args.warmup, args.runs, kind),
                                                         batch) for kind in ("device", "end_to_end")}

                    record(rows, deadline, trt, model=name, backend="tensorrt", variant="tensorrt-fp16",
                           size=list(size), batch=batch)
    return rows, None


def record(rows: list[dict[str, Any]], deadline: float, work: Callable[[], dict[str, Any]],
           **config: Any) -> dict[str, Any]:
    """Append the row of one configuration, filled by ``work()``, marked skipped past ``deadline``, or with its error.

    One configuration's failure (out of memory, a compile or build failure) is a result, not
    the end of the run.
    """
    row = dict(config)
    rows.append(row)
    if time.monotonic() > deadline:
        row["skipped"] = "time budget spent"
        return row
    try:
        row.update(work())
    except Exception as exc:
        row["error"] = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
    return row


def speedups(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Unpruned p50 / compressed p50 for every (backend, variant, size, batch) measured for both models."""
    keyed = {(r["backend"], r["variant"], tuple(r["size"]), r["batch"], r["model"]): r for r in rows}
    out = []
    for (backend, variant, size, batch, model), base in keyed.items():
        if model != "unpruned":
            continue
        comp = keyed.get((backend, variant, size, batch, "compressed"))
        if comp is None:
            continue
        row = {"backend": backend, "variant": variant, "size": list(size), "batch": batch}
        for kind in ("device_ms", "end_to_end_ms"):
            a, b = base.get(kind), comp.get(kind)
            row[kind.replace("_ms", "_speedup")] = a["p50_ms"] / b["p50_ms"] if a and b else None
            row[f"unpruned_{kind}"] = a["p50_ms"] if a else None
            row[f"compressed_{kind}"] = b["p50_ms"] if b else None
        out.append(row)
    return out


def table(speedup_rows: list[dict[str, Any]]) -> str:
    def cell(value) -> str:
        return "-" if value is None else f"{value:.2f}"

    lines = [f"{'backend':9} {'variant':19} {'size':>9} {'batch':>5}  {'device p50 ms':>21} {'x':>5}  "
             f"{'end-to-end p50 ms':>21} {'x':>5}"]
    for r in speedup_rows:
        size = f"{r['size'][0]}x{r['size'][1]}"
        dev = f"{cell(r['unpruned_device_ms'])} -> {cell(r['compressed_device_ms'])}"
        e2e = f"{cell(r['unpruned_end_to_end_ms'])} -> {cell(r['compressed_end_to_end_ms'])}"
        lines.append(f"{r['backend']:9} {r['variant']:19} {size:>9} {r['batch']:>5}  {dev:>21} "
                     f"{cell(r['device_speedup']):>5}  {e2e:>21} {cell(r['end_to_end_speedup']):>5}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    name = device_name(args.device)
    report: dict[str, Any] = {"schema": "segprune.gpu_check/1", "device": args.device, "device_name": name,
                              "torch": torch.__version__, "cuda": torch.version.cuda, "quick": args.quick,
                              "command": command_line(__file__, argv, ROOT),
                              "architectures": json.loads(ARCHITECTURES.read_text())["compression"]}
    report["tests"] = {"skipped": "--skip-tests"} if args.skip_tests else run_marked_tests()
    models = build_models(args.device)
    deadline = started + args.budget_s
    rows: list[dict[str, Any]] = []
    # the cheap eager grid first, compiled variants after: a spent budget skips the slow ones
    order = sorted(args.variant_list, key=lambda v: VARIANTS[v][2] is not None)
    for variant in order:
        for size in args.size_list:
            for batch in args.batch_list:
                for model_name, model in models.items():
                    row = record(rows, deadline, lambda m=model, v=variant, s=size, b=batch: measure(
                        m, v, s, b, args.device, args.warmup, args.runs), model=model_name, backend="torch",
                        variant=variant, size=list(size), batch=batch)
                    if "skipped" in row:
                        continue
                    if "error" in row and args.device == "cuda":
                        torch.cuda.empty_cache()
                    print(f"{model_name:10} {variant:19} {size[0]}x{size[1]} b{batch}: "
                          f"{row.get('device_ms') and round(row['device_ms']['p50_ms'], 2)} ms device, "
                          f"{row.get('end_to_end_ms') and round(row['end_to_end_ms']['p50_ms'], 2)} ms end to end"
                          f"{' ' + row['error'] if 'error' in row else ''}", file=sys.stderr, flush=True)
    trt_rows, why_not = tensorrt_rows(models, args, deadline)
    rows += trt_rows
    report["tensorrt"] = {"measured": bool(trt_rows), "reason": why_not}
    report["measurements"] = rows
    report["speedups"] = speedups(rows)
    report["seconds"] = round(time.monotonic() - started, 1)
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") if args.device == "cuda" else "cpu"
    out = args.out or ROOT / "benchmarks" / "results" / f"gpu_{slug}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(table(report["speedups"]))
    print(f"{name}: {len(rows)} configurations in {report['seconds']} s; tests: "
          f"{report['tests'].get('summary') or report['tests'].get('skipped')}; TensorRT: "
          f"{'measured' if trt_rows else why_not}; wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
