"""The conformance suite over the whole zoo: every encoder SMP names, timm encoders, SMP's decoders, torchvision's.

Each case goes through :func:`segprune.conformance.run_case`: build tiny, compress (truncation
where the family allows, channels at ``--scope all``), save, reload in a fresh process, export fp32
ONNX with parity and the TensorRT rule check; or be refused in one line. ``tests/models/test_zoo.py``
runs a fast subset of the same cases in ``make test``; this runs them all and its JSON makes the
families table of docs/families.md (``--table`` prints it).

Every case runs in its own Python process (``--timeout`` each), so the largest encoders (SMP's
resnext101_32x48d has 830M parameters) neither share memory with the others nor hide their
outcome: a process killed for time or memory is recorded as such. Finished cases are kept in
``--cache`` (one JSON line each) and a re-run picks up after them.

Writes ``benchmarks/results/model_zoo.json`` with the command and the machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# At least one per timm family SMP's docs list, plus the ones with structures torch-pruning must be
# kept from: split attention (resnest), multi-scale splits (res2net), a ViT-style hybrid (mobilevit).
TIMM = ("tu-resnet18d", "tu-regnetx_002", "tu-regnety_002", "tu-efficientnet_b0", "tu-mobilenetv3_small_100",
        "tu-mobilenetv3_large_100", "tu-convnext_atto", "tu-ghostnet_100", "tu-resnest14d", "tu-res2net50_14w_8s",
        "tu-mobilevit_xxs", "tu-efficientvit_b0", "tu-hrnet_w18_small")
DECODERS = ("DeepLabV3Plus", "Unet", "UnetPlusPlus", "FPN", "DeepLabV3", "PSPNet", "Linknet", "MAnet", "PAN",
            "UPerNet", "Segformer", "DPT")
# DPT takes ViT-style timm encoders only; PAN needs inputs of at least 128 (its pooling pyramid).
ENCODER_OF = {"DPT": "tu-vit_tiny_patch16_224"}
SIZE_OF = {"PAN": (128, 128), "DPT": (224, 224)}
TORCHVISION = ("deeplabv3_resnet50", "deeplabv3_mobilenet_v3_large", "fcn_resnet50", "lraspp_mobilenet_v3_large")


def cases() -> list[dict]:
    """Every case: DeepLabV3+ over each SMP encoder and the timm set, each SMP decoder, torchvision's models."""
    import segmentation_models_pytorch as smp

    out = [{"group": "encoder", "arch": "DeepLabV3Plus", "encoder": e}
           for e in [*smp.encoders.get_encoder_names(), *TIMM]]
    # DeepLabV3Plus with resnet18 is already an encoder case: the decoders row names it
    out += [{"group": "decoder", "arch": a, "encoder": ENCODER_OF.get(a, "resnet18")} for a in DECODERS
            if a != "DeepLabV3Plus"]
    out += [{"group": "torchvision", "arch": name} for name in TORCHVISION]
    return out


def case_id(case: dict) -> str:
    return f"tv:{case['arch']}" if case["group"] == "torchvision" else f"{case['arch']}:{case['encoder']}"


def run_one(case: dict, size: tuple[int, int], threads: int) -> dict:
    """One case in this process (the child of :func:`isolated`)."""
    import torch

    from segprune.conformance import CaseConfig, run_case, smp_builder

    torch.set_num_threads(threads)
    config = CaseConfig(size=SIZE_OF.get(case["arch"], size) if case["group"] == "decoder" else size)
    if case["group"] == "torchvision":
        from segprune.models.tv import build_tv

        build = lambda classes: build_tv(case["arch"], classes)  # noqa: E731
    else:
        build = smp_builder(case["arch"], case["encoder"])
    return {**run_case(build, config), "size": list(config.size)}


def isolated(case: dict, size: tuple[int, int], threads: int, timeout: float) -> dict:
    """:func:`run_one` in a fresh process: a timeout or a kill (memory) is an outcome too, never a lost run."""
    started = time.perf_counter()
    command = [sys.executable, __file__, "--one", json.dumps(case), "--size", f"{size[0]}x{size[1]}",
               "--threads", str(threads)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "reason": f"not finished in {timeout:.0f} s", "seconds": timeout}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = done.stderr.strip().splitlines()[-3:]
        return {"status": "crashed", "reason": f"exit status {done.returncode}: {' | '.join(tail)}",
                "seconds": time.perf_counter() - started}
    return json.loads(lines[-1])


GROUPS = {"SMP encoders (DeepLabV3+)": lambda c: c["group"] == "encoder" and not c["encoder"].startswith("tu-"),
          "timm encoders (DeepLabV3+)": lambda c: c["group"] == "encoder" and c["encoder"].startswith("tu-"),
          "SMP decoders (resnet18)": lambda c: c["group"] == "decoder",
          "torchvision": lambda c: c["group"] == "torchvision"}
TABLE_BEGIN, TABLE_END = "<!-- model_zoo table: benchmarks/model_zoo.py --table -->", "<!-- end model_zoo table -->"


def _name(case: dict) -> str:
    return case["arch"] if case["group"] in ("decoder", "torchvision") else case["encoder"]


def table(report: dict) -> str:
    """The families table of docs/families.md, made from the JSON: per group, what works end to end (truncation and
    channels, or channels alone), then why the rest does not, one line per reason (encoders sharing one
    refusal share its line)."""
    rows = ["| group | works end to end | channels only (no truncation) | refused or not finished |",
            "|---|---|---|---|"]
    cases = report["cases"]
    for group, member in GROUPS.items():
        mine = [c for c in cases if member(c)]
        full = [_name(c) for c in mine if c["status"] == "ok" and c.get("truncated")]
        chan = [_name(c) for c in mine if c["status"] == "ok" and not c.get("truncated")]
        other = [_name(c) for c in mine if c["status"] != "ok"]
        if group.startswith("SMP decoders") and any(c["id"] == "DeepLabV3Plus:resnet18" for c in cases):
            full.insert(0, "DeepLabV3Plus (the encoder rows)")
        rows.append(f"| {group} | {len(full)}: {', '.join(full) or '-'} | {', '.join(chan) or '-'} "
                    f"| {', '.join(other) or '-'} |")
    reasons: dict[str, list[str]] = {}
    for c in cases:
        why = c.get("reason") if c["status"] != "ok" else c.get("truncation_refused")
        if why:
            where = f"{c['status']}{', at ' + c['stage'] if c.get('stage') else ''}"
            shared = why.replace(repr(c.get("encoder")), "E") if c.get("encoder") else why
            reasons.setdefault(f"({where}): {shared}", []).append(c["id"])
    lines = [TABLE_BEGIN, "", *rows, ""]
    lines += [f"- {', '.join(f'`{i}`' for i in ids)} {why}" for why, ids in reasons.items()]
    counts = report["counts"]
    config = report["case_config"]
    sizes = "".join(f", {arch} at {h}x{w}" for arch, (h, w) in config.get("sizes_of", {}).items())
    lines += ["", f"{sum(counts.values()) + len(report['not_finished'])} cases at {config['size'][0]}x"
                  f"{config['size'][1]}{sizes}: {counts['ok']} ok, {counts['refused_outside_segprune']} refused "
                  f"for a cause outside segprune, {counts['refused_by_segprune']} refused by segprune with the reason, "
                  f"{counts['internal_error']} internal errors, {len(report['not_finished'])} not finished "
                  f"(`benchmarks/results/model_zoo.json`, {report['environment'].get('cpu', 'CPU')}).", "", TABLE_END]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="64x64", help="input size of every case, HxW (PAN and DPT need more)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of each case")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds each case may take")
    parser.add_argument("--only", default=None, help="run only cases whose id contains this text")
    parser.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / "cache" / "model_zoo.jsonl",
                        help="finished cases, one JSON line each; a re-run skips them")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "model_zoo.json",
                        help="the JSON report")
    parser.add_argument("--table", action="store_true", help="print the docs/families.md table of --out and stop")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # a single case, in the child process
    args = parser.parse_args(argv)

    from segprune.cli.common import parse_size

    size = parse_size(args.size)
    if args.one is not None:
        print(json.dumps(run_one(json.loads(args.one), size, args.threads)))
        return 0
    if args.table:
        print(table(json.loads(args.out.read_text())))
        return 0

    from segprune.conformance import CaseConfig, config_dict, summarize
    from segprune.io import save_json
    from segprune.report import command_line, make_report

    done: dict[str, dict] = {}
    if args.cache.is_file():
        for line in args.cache.read_text().splitlines():
            row = json.loads(line)
            done[row["id"]] = row
    args.cache.parent.mkdir(parents=True, exist_ok=True)
    todo = [c for c in cases() if args.only is None or args.only in case_id(c)]
    results = []
    for i, case in enumerate(todo, 1):
        cid = case_id(case)
        if cid not in done:
            row = {"id": cid, **case, **isolated(case, size, args.threads, args.timeout)}
            if row["status"] != "internal-error":
                row.pop("traceback", None)
            with args.cache.open("a") as f:
                f.write(json.dumps(row) + "\n")
            done[cid] = row
        row = done[cid]
        results.append(row)
        print(f"[{i}/{len(todo)}] {cid}: {row['status']} {row.get('seconds', 0):.0f}s"
              + (f" ({row['reason'][:160]})" if row.get("reason") else ""), flush=True)
    report = make_report("bench.model_zoo", command=command_line(__file__, argv, ROOT),
                         case_config={**config_dict(CaseConfig(size=size)), "sizes_of": {k: list(v) for k, v in
                                                                                         SIZE_OF.items()}},
                         counts=summarize([r for r in results if r["status"] in ("ok", "refused", "internal-error")]),
                         not_finished=[r["id"] for r in results if r["status"] in ("timeout", "crashed")],
                         cases=results)
    save_json(args.out, report)
    print(json.dumps(report["counts"]), f"not finished: {report['not_finished']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
