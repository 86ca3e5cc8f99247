"""``segprune info``: the models, the environment, or what a checkpoint holds."""

from __future__ import annotations

import argparse

from segprune.cli.common import add_output_args, emit

NAME = "info"
HELP = "list models and the environment, or describe a checkpoint"
DESCRIPTION = ("Without arguments: the model names create_model accepts, and the versions and devices segprune "
               "sees. With a checkpoint: its architecture, classes, channel overrides, parameters and metadata, "
               "read from the safetensors header without unpickling anything.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", nargs="?", help="a segprune .safetensors checkpoint to describe")
    add_output_args(parser)


def run(args: argparse.Namespace) -> int:
    from segprune.models import list_models
    from segprune.report import environment, format_table, make_report

    if args.checkpoint is None:
        env = environment()
        report = make_report("info", models=list_models())
        rows = [[k, str(v)] for k, v in env.items()]
        table = format_table(rows, ["environment", "value"]) + "\n\nmodels: " + ", ".join(list_models())
        emit(args, report, table)
        return 0
    from segprune.models import load_checkpoint

    model, info = load_checkpoint(args.checkpoint)
    params = sum(p.numel() for p in model.parameters())
    config = model.config.to_dict()
    report = make_report("checkpoint_info", checkpoint=args.checkpoint, parameters=params, config=config,
                         info=info)
    rows = [[k, str(v)] for k, v in config.items() if k != "channel_overrides"]
    rows += [["channel_overrides", f"{len(config.get('channel_overrides') or {})} modules"],
             ["parameters", f"{params:,}"]]
    emit(args, report, format_table(rows, ["field", "value"]))
    return 0
