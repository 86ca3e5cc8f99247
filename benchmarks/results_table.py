"""The README's results table, rendered from the committed benchmark JSONs (``--table`` prints it).

Each row quotes one JSON under ``benchmarks/results/`` with its split and machine, so a re-run
benchmark changes the table only through this script; ``tests/bench/test_results_table.py``
fails when the README's block differs from what the JSONs give. The docs' results page
renders the same function at build time.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
BEGIN, END = "<!-- results table: benchmarks/results_table.py --table -->", "<!-- end results table -->"
SOURCES = ("headline.json", "unet_headline.json", "demo.json", "model_zoo.json")


def _machine(report: dict) -> str:
    env = report.get("environment", {})
    cpu = env.get("cpu") or "?"
    cpu = "Intel Xeon" if "Xeon" in cpu else ("AMD EPYC" if "EPYC" in cpu else cpu)
    return f"{cpu}, {env.get('cpu_count', '?')} cores"


def table(reports: dict[str, dict], links: bool = True) -> str:
    """The block (markers included) from ``{file name: parsed JSON}`` of :data:`SOURCES`.

    ``links``: Markdown links to the JSONs (the README, read on the repository's web page);
    without, their paths in code (the docs site, which holds no JSON to link to).
    """

    def _link(name: str) -> str:
        return f"[{name}](benchmarks/results/{name})" if links else f"`benchmarks/results/{name}`"

    h, u, d, z = (reports[name] for name in SOURCES)
    speed = h["speedup_ort_fp32"]["360x480"]
    trunc = u["goals"]["truncation_alone_20pct_macs_within_0.5"]
    u_speed = u["speedup_ort_fp32"]["352x480"]["truncation e0.95"]
    counts = z["counts"]
    rows = [
        ("DeepLabV3+ R18, CamVid 176x240: channels across the network, 16 epochs CE + distillation (keep-freq 1: "
         "the stride-4 grid is already coarser than the labels' cut-off)",
         f"{100 * h['macs_fraction']:.1f}% of the MACs, {h['miou_median']:.2f} mIoU against "
         f"{h['control_median']:.2f} for the same-budget control ({-h['loss_vs_control']:+.2f}); "
         f"{speed:.2f}x faster in onnxruntime fp32 at 360x480; int8 {h['int8_delta_miou']:+.2f} mIoU",
         h["accuracy_split"], _machine(h), _link("headline.json")),
        ("SMP U-Net R18, CamVid 176x240: truncation alone at 0.95 of the label energy, 4 epochs",
         f"{100 * (1 - trunc['macs_removed']):.1f}% of the MACs, {trunc['delta_vs_control_median']:+.2f} mIoU "
         f"against the same-budget control; {u_speed:.2f}x the speed in onnxruntime fp32 at 352x480 (slower)",
         u["data"]["val_split"], _machine(u), _link("unet_headline.json")),
        ("The demo (`make demo`): DeepLabV3+ R18 on generated scenes",
         f"{100 * d['compression']['macs_fraction']:.1f}% of the MACs, {d['summary']['speedup_fp32']:.2f}x faster "
         f"in onnxruntime fp32, {d['summary']['delta_miou']:+.2f} mIoU", "synthetic val", _machine(d),
         _link("demo.json")),
        ("Model families: every SMP encoder and decoder, timm encoders, torchvision's models",
         f"{counts['ok']} of {sum(counts.values())} compress, export and match PyTorch; "
         f"{counts['refused_outside_segprune']} refused by SMP itself, {counts['refused_by_segprune']} by segprune "
         f"with the reason, {counts['internal_error']} internal errors", "synthetic", _machine(z),
         _link("model_zoo.json")),
    ]
    lines = [BEGIN, "| what | measured | split | machine | source |", "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join([*lines, END])


def load(results: Path = RESULTS) -> dict[str, dict]:
    return {name: json.loads((results / name).read_text()) for name in SOURCES}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", action="store_true", help="print the README block")
    parser.add_argument("--docs", action="store_true", help="print the block of docs/results.md instead")
    args = parser.parse_args(argv)
    print(table(load(), links=not args.docs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
