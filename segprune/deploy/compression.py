"""One model compressed into one folder: the band, ``compress_``, fine-tuning, the checkpoint and its report.

``segprune prune`` is this function; ``segprune compress`` runs it as the first stage of a
deployment folder. Keeping it in one place means both commands pick the band, score the
stages and describe the result the same way.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from torch import nn

REPORT = "report.json"
CHECKPOINT = "model.safetensors"
LABEL_PLOT = "label_energy.png"


@dataclass(frozen=True)
class CompressionPlan:
    """What is done to the model: the compression (``CompressConfig``), the fine-tuning, the band's energy.

    ``energy`` (the share of the train labels' non-DC energy to keep) replaces
    ``config.keep_freq`` when set; ``calib_images`` train images measure channel spectra.
    """

    config: Any  # segprune.compress.CompressConfig
    finetune: Any = None  # segprune.train.FinetuneConfig | None
    energy: float | None = None
    prune_steps: int = 1
    calib_images: int = 32

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {"config": asdict(self.config), "finetune": self.finetune.to_dict() if self.finetune else None,
                "energy": self.energy, "prune_steps": self.prune_steps, "calib_images": self.calib_images}


def load_for_compression(source: str | Path, plan: CompressionPlan, data: str, *, train_split: str = "train",
                         val_split: str = "val", input_size: tuple[int, int] | None = None, arch: str | None = None,
                         encoder: str | None = None, classes: int | None = None
                         ) -> tuple[nn.Module, dict[str, Any], tuple[int, int]]:
    """The model at ``source`` checked against the data and the plan before any work, and the scoring size.

    Both splits must exist, the model must predict the data's classes and ``--protect`` must
    name its modules; the size is ``input_size``, else the val labels' size. ``prune`` and
    ``compress`` refuse bad input here, before the label analysis or a training step.
    """
    from segprune.compress.scope import resolve_protect
    from segprune.data import EvalTransform, build_dataset
    from segprune.models import load_model_for_data

    build_dataset(data, train_split)  # a missing train split is refused before the model loads
    val_set = build_dataset(data, val_split, transform=EvalTransform())
    model, info = load_model_for_data(source, val_set.num_classes, arch=arch, encoder=encoder, classes=classes)
    if plan.config.prunes:  # names in --protect are checked against the model before any analysis
        resolve_protect(model, plan.config.scope, plan.config.protect)
    return model, info, input_size or tuple(val_set.read_label(0).shape)


def compress_model(model: nn.Module, plan: CompressionPlan, data: str, out: str | Path, *, source: str,
                   size: tuple[int, int], input_size: tuple[int, int] | None = None, train_split: str = "train",
                   val_split: str = "val", device: str | None = None, workers: int = 0,
                   progress: bool = True) -> dict[str, Any]:
    """Compress ``model`` in place by ``plan`` and write ``out/model.safetensors``, ``out/report.json``
    (and ``out/finetune/``, ``out/label_energy.png`` when the band came from ``--energy``); returns the report.

    ``size`` is the size the stages are scored and the MACs counted at; ``input_size`` the
    size images are resized to (None: each at its own size).
    """
    from segprune import plots
    from segprune.data import EvalTransform, build_dataset, spread_loader
    from segprune.io import save_json
    from segprune.models import adapter_for, save_checkpoint
    from segprune.report import make_report
    from segprune.spectral import band_for_energy
    from segprune.train import compress_and_finetune

    started = time.perf_counter()
    out = Path(out)
    train_set = build_dataset(data, train_split)
    val_set = build_dataset(data, val_split, transform=EvalTransform())
    config, band = plan.config, None
    if plan.energy is not None:
        band, labels = band_for_energy(train_set, plan.energy, size, adapter_for(model).decoder_stride(model),
                                       workers=workers, progress=progress)
        print(band.note(), file=sys.stderr)
        config = replace(config, keep_freq=band.keep_freq)
        plots.plot_cumulative_energy(labels.report, out / LABEL_PLOT)
    calib = None
    if config.prunes:
        calib_set = build_dataset(data, train_split, transform=EvalTransform(size=input_size))
        calib = spread_loader(calib_set, plan.calib_images, 4)
    result, stages, run_summary = compress_and_finetune(
        model, config, plan.finetune, train_set, val_set, size=size, calib=calib, input_size=input_size,
        out_dir=out / "finetune", device=device, workers=workers, progress=progress, prune_steps=plan.prune_steps)
    save_checkpoint(out / CHECKPOINT, model, {"compressed_from": source, "keep_freq": result.keep_freq,
                                              "input_size": list(size), "stages": stages})
    report = make_report(
        "prune", checkpoint=source, family=result.family, data=data, input_size=list(size),
        keep_freq=result.keep_freq, trunc_mode=result.trunc_mode, energy=plan.energy,
        band=band.to_dict() if band else None, channel_ratio=config.channel_ratio, target_macs=config.target_macs,
        importance=config.importance, scope=config.scope, prune_steps=plan.prune_steps,
        pruning=result.pruning.to_dict() if result.pruning is not None else None, compression=result.to_dict(),
        stages=stages, finetune=run_summary, seconds=time.perf_counter() - started, output=str(out / CHECKPOINT))
    save_json(out / REPORT, report)
    return report


def stages_table(stages: list[dict[str, Any]], markdown: bool = False) -> str:
    """The scored stages (original, compressed, fine-tuned): the table ``prune`` prints, or (``markdown``) the
    card's."""
    from segprune.report import format_table, markdown_table

    rows = [[s["stage"], s["gmacs"], 100 * s["gmacs"] / stages[0]["gmacs"], s["mparams"], s["miou"], s["macc"]]
            for s in stages]
    return (markdown_table if markdown else format_table)(rows, ["stage", "GMACs", "% MACs", "M params", "mIoU",
                                                                 "mAcc"])
