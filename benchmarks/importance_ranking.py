"""Does a channel ranking know which channels matter? Pruned mIoU before any fine-tuning.

Fine-tuning for one epoch moves mIoU by about 3 points between seeds (``compression.json``,
``finetune_budget.json``), which hides the ranking itself. This scores the ranking alone:
the CamVid baseline is truncated to ``--keep`` and half the channels of the ``--scope`` convs
are removed by each importance, then val mIoU is measured with no fine-tuning. Two controls
bound what a ranking is worth: random order, and the spectral order reversed. One variant
of the spectral score lives only here, to test why it ranks as it does:
``spectral_x_consumers``, the in-band energy times the squared weights that read the channel
(what the next layers receive from it, not what it holds).

Writes ``benchmarks/results/importance_ranking.json``.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

from camvid_setup import VAL_SPLIT, add_setup_args, load_setup

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_setup_args(parser)
    parser.add_argument("--keep", type=float, default=0.5)
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--scope", default="decoder", choices=("decoder", "head"))
    parser.add_argument("--random-seeds", default="0,1,2")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "importance_ranking.json")
    args = parser.parse_args(argv)

    import torch

    from segprune.compress import PruneConfig, prune_
    from segprune.compress.importance import IMPORTANCES, SpectralImportance, accumulate_gradients, tp
    from segprune.io import save_json
    from segprune.report import command_line, format_table, make_report
    from segprune.train import evaluate

    setup = load_setup(args.camvid, args.baseline, args.size, args.calib_images)
    if setup is None:
        return 2
    base, size, val, val_loader = setup.base, setup.size, setup.val, setup.val_loader
    calib_batches = list(setup.calib_loader)

    def spectral(model, keep):
        return SpectralImportance.measure(model, calib_batches, keep, args.scope)

    def reversed_(model):
        inner = spectral(model, args.keep)
        return _Wrapped(lambda group: -inner(group))

    def x_consumers(model):
        inner = spectral(model, args.keep)
        return _Wrapped(lambda group: inner(group) * _consumer_gain(group, tp))

    def taylor(model):
        accumulate_gradients(model, calib_batches)
        return tp.importance.GroupTaylorImportance()

    def random(seed):
        def make(model):
            torch.manual_seed(seed)
            return tp.importance.RandomImportance()
        return make

    factories = {name: None for name in IMPORTANCES if name != "taylor"}
    factories |= {"taylor": taylor, "spectral_reversed": reversed_, "spectral_x_consumers": x_consumers}
    factories |= {f"random_seed{s}": random(int(s)) for s in args.random_seeds.split(",")}
    rows = []
    base_miou = evaluate(base, val_loader, val.num_classes, input_size=size, progress=False)[0].miou
    for name, factory in factories.items():
        start = time.perf_counter()
        model = copy.deepcopy(base)
        result = prune_(model, PruneConfig(channel_ratio=args.ratio, importance=name if factory is None else "l1",
                                           keep_freq=args.keep, scope=args.scope, trunc_mode=args.mode),
                        torch.randn(1, 3, *size), calib_batches, importance=factory)
        metrics = evaluate(model, val_loader, val.num_classes, input_size=size, progress=False)[0]
        rows.append({"importance": name, "miou": metrics.miou, "macc": metrics.macc,
                     "macs_fraction": result.macs_fraction, "seconds": time.perf_counter() - start})
        print(f"{name}: mIoU {metrics.miou:.2f}", file=sys.stderr, flush=True)
    report = make_report(
        "bench.importance_ranking",
        command=command_line(__file__, argv, ROOT),
        accuracy_split=VAL_SPLIT,
        baseline={"checkpoint": args.baseline.name, "miou": base_miou}, input_size=list(size), keep_freq=args.keep,
        channel_ratio=args.ratio, scope=args.scope, trunc_mode=args.mode, calib_images=args.calib_images,
        finetune_epochs=0, results=rows)
    save_json(args.out, report)
    print(format_table([[r["importance"], r["miou"], r["macc"], 100 * r["macs_fraction"]] for r in rows],
                       ["importance", "mIoU (no fine-tuning)", "mAcc", "% MACs"]))
    print(f"baseline mIoU {base_miou:.2f}; keep {args.keep}, ratio {args.ratio}, scope {args.scope}")
    return 0


class _Wrapped:
    """A torch-pruning importance from a function of the group (benchmark-local variants)."""

    def __init__(self, score) -> None:
        self.score = score

    def __call__(self, group):
        return self.score(group)


def _consumer_gain(group, tp):
    """Per root channel: the summed squared weights of every conv that reads it."""
    import torch

    gain = torch.zeros(len(group[0].idxs), dtype=torch.float32)
    for item in group:
        module, root_idxs = item.dep.target.module, item.root_idxs
        if item.dep.handler != tp.prune_conv_in_channels or module.groups != 1 or root_idxs is None \
                or None in root_idxs:
            continue
        w = module.weight.detach()[:, torch.as_tensor(item.idxs)]
        gain.index_add_(0, torch.as_tensor(root_idxs), w.square().sum((0, 2, 3)).float())
    return gain if bool(gain.any()) else torch.ones_like(gain)


if __name__ == "__main__":
    sys.exit(main())
