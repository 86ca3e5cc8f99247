"""The demo's figures at its full defaults: what `make demo` shows a newcomer, measured and committed.

Runs :func:`segprune.demo.run_demo` with the defaults of ``segprune demo`` (the same
function the command calls), times the whole run, and writes
``benchmarks/results/demo.json`` (the demo's report, its summary, the wall time, the
command and the machine) and ``demo.png``. The tests run the demo at a tiny size and check
only that its figures come from one run; the figures themselves live here.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: PyTorch's choice)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "demo.json",
                        help="the JSON report (a PNG is written beside it)")
    parser.add_argument("--work", type=Path, default=None,
                        help="keep the demo's outputs (checkpoints, ONNX files) here, e.g. to record baselines "
                             "from them (default: a temporary folder)")
    args = parser.parse_args(argv)

    from segprune.demo import DemoConfig, run_demo
    from segprune.io import save_json
    from segprune.report import command_line

    cfg = DemoConfig(threads=args.threads, progress=False)
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch)
        started = time.perf_counter()
        report = run_demo(cfg, work)
        seconds = time.perf_counter() - started
        shutil.copy(Path(work) / "demo.png", args.out.with_suffix(".png"))
    report = {**report, "command": command_line(__file__, argv, ROOT),
              "wall_seconds": seconds, "figures": [_shown(args.out.with_suffix(".png"))]}
    report.pop("training", None)  # per-epoch history: in the demo's own output folder, not needed here
    save_json(args.out, report)
    s = report["summary"]
    print(f"demo in {seconds / 60:.1f} min: compressed {s['speedup_fp32']:.2f}x faster in onnxruntime fp32 "
          f"({s['compressed_p50_ms']:.1f} vs {s['unpruned_p50_ms']:.1f} ms), {s['delta_miou']:+.2f} mIoU "
          f"({s['compressed_miou']:.2f} vs {s['unpruned_miou']:.2f}); {s['int8_note']} -> {args.out}")
    return 0


def _shown(path: Path) -> str:
    """``path`` relative to the repository when it is inside it (committed results), else as given."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


if __name__ == "__main__":
    sys.exit(main())
