"""The product in miniature, on generated data: ``run_demo(DemoConfig())``.

Train a DeepLabV3+ whose cost is split as in real deployments (a full-width ASPP and
decoder on a ResNet-18, so the decoder's stride-4 fusion is a large share of the MACs),
measure the label spectrum and keep the band it asks for, then run what ``segprune compress``
runs (:func:`segprune.deploy.compress_for_deployment`): remove channels across the network
to a MACs target, fine-tune with distillation from the original, export both models to
ONNX and time them side by side, interleaved, in onnxruntime, and write the model card
(``out/deploy/``). Every figure the summary quotes (speed-up, mIoU difference) comes from
that one benchmark run.

``segprune demo`` and ``benchmarks/demo.py`` call this; it is the same recipe that holds
half the MACs on CamVid (docs/results.md).
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from segprune.choices import IMPORTANCES, SCOPES
from segprune.errors import ConfigError


@dataclass(frozen=True)
class DemoConfig:
    """Every option of the demo; the defaults finish in a few minutes on two CPU cores."""

    data: str = "synthetic:n=160,size=96x128,classes=6,seed=0"
    arch: str = "deeplabv3plus_resnet18"
    width: int = 256
    crop_size: tuple[int, int] = (96, 128)
    epochs: int = 10
    batch_size: int = 8
    lr: float = 2e-3
    energy: float = 0.95
    keep_freq: float | None = None
    target_macs: float = 0.42
    scope: str = "all"
    importance: str = "spectral-l1"
    finetune_epochs: int = 6
    finetune_lr: float = 1e-3
    bench_runs: int = 30
    seed: int = 0
    threads: int | None = None
    device: str = "cpu"
    progress: bool = True

    def validate(self) -> DemoConfig:
        from segprune.compress import CompressConfig

        for name in ("width", "epochs", "batch_size", "bench_runs"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} {getattr(self, name)!r} must be a positive integer")
        if not isinstance(self.finetune_epochs, int) or self.finetune_epochs < 0:
            raise ConfigError(f"--finetune-epochs {self.finetune_epochs!r} must be an integer >= 0")
        for name in ("lr", "finetune_lr", "energy"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"--{name.replace('_', '-')} {value!r} must be a finite number > 0")
        if self.energy > 1:
            raise ConfigError(f"--energy {self.energy} is outside (0, 1]: the share of the label energy to keep")
        if self.scope not in SCOPES or self.importance not in IMPORTANCES:
            raise ConfigError(f"--scope must be one of {', '.join(SCOPES)} and --importance one of "
                              f"{', '.join(IMPORTANCES)}")
        CompressConfig(keep_freq=self.keep_freq, target_macs=self.target_macs, scope=self.scope,
                       importance=self.importance)  # the compression options, checked before training
        return self


def run_demo(cfg: DemoConfig, out: str | Path) -> dict[str, Any]:
    """Run the demo into ``out`` and return its report (also written to ``out/demo.json``)."""
    import torch

    from segprune import plots
    from segprune.compress import CompressConfig
    from segprune.data import EvalTransform, TrainTransform, build_dataset, spread_loader
    from segprune.deploy import CompressionPlan, DeployConfig, compress_for_deployment
    from segprune.io import load_json, save_json
    from segprune.models import create_model
    from segprune.report import make_report
    from segprune.spectral import analyze_labels, analyze_model, choose_band
    from segprune.train import FinetuneConfig, TrainConfig, fit, seed_everything

    cfg = cfg.validate()
    out = Path(out)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    size = tuple(cfg.crop_size)

    def say(step: str) -> None:
        print(step, file=sys.stderr, flush=True)

    train_cfg = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, optimizer="adamw", lr=cfg.lr,
                            weight_decay=1e-4, warmup_iters=10, crop_size=size, scale_range=(0.75, 1.5),
                            eval_every=cfg.epochs, seed=cfg.seed).validate()
    ft_cfg = FinetuneConfig(epochs=cfg.finetune_epochs, batch_size=cfg.batch_size, lr=cfg.finetune_lr,
                            crop_size=size, kd=1.0, seed=cfg.seed)
    train_set = build_dataset(cfg.data, "train", transform=TrainTransform(size, scale_range=train_cfg.scale_range))
    val_set = build_dataset(cfg.data, "val", transform=EvalTransform())
    classes = train_set.num_classes
    seed_everything(cfg.seed)
    model = create_model(cfg.arch, num_classes=classes, aspp_channels=cfg.width, decoder_channels=cfg.width)
    say(f"[1/3] training {cfg.arch} (ASPP/decoder width {cfg.width}) on {cfg.data}: {len(train_set)} train / "
        f"{len(val_set)} val images, {cfg.epochs} epochs")
    training = fit(model, train_set, val_set, train_cfg, out / "train", device=cfg.device, progress=cfg.progress)

    say("[2/3] analysing the label spectrum and the decoder's features")
    # Below the labels' cut-off, truncation removes what the labels need and fine-tuning cannot bring it
    # back (benchmarks/finetune_budget.py on CamVid), so by default the band comes from the analysis.
    taus = tuple(sorted({0.90, 0.95, 0.99, cfg.energy}))
    labels = analyze_labels(build_dataset(cfg.data, "train"), taus=taus, ceiling_images=-1, progress=cfg.progress)
    band = None if cfg.keep_freq is not None else choose_band(labels.spectrum, cfg.energy,
                                                                labels.report["reference_size"], size)
    keep = band.keep_freq if band else cfg.keep_freq
    features, spectra = analyze_model(model.eval(), spread_loader(build_dataset(cfg.data, "train",
                                                                              transform=EvalTransform()), 16, 4),
                                      keep=keep, input_size=size, progress=cfg.progress)
    analysis = {"labels": labels.report, "energy": cfg.energy if cfg.keep_freq is None else None, "keep_freq": keep,
                "band": band.to_dict() if band else None, "model": features}
    figures = [plots.plot_cumulative_energy(labels.report, out / "analyze" / "label_energy.png"),
               plots.plot_feature_heatmap(spectra.energy, out / "analyze" / "feature_spectra.png")]

    if band:
        say(f"      {band.note()}")
    origin = f"holds {band.held:.3f} of the label energy" if band else "given"
    # the band is the one chosen above (where the decoder cannot hold the energy, its whole band, said so)
    compression = CompressConfig(keep_freq=keep, target_macs=cfg.target_macs, scope=cfg.scope,
                                 importance=cfg.importance)
    spared = f"; --protect {','.join(compression.protect)} kept whole" if compression.protect else ""
    say(f"[3/3] segprune compress: keep-freq {keep:.3f} ({origin}), channels removed across --scope {cfg.scope} "
        f"to {cfg.target_macs:g} of the MACs ({cfg.importance}{spared}), {cfg.finetune_epochs} fine-tuning epochs "
        "with distillation from the original, both models exported (fp32; the compressed one also int8, "
        "parity-checked) and benchmarked side by side in onnxruntime, the model card written")
    plan = CompressionPlan(compression, ft_cfg if cfg.finetune_epochs else None)
    deploy = DeployConfig(plan=plan, data=cfg.data, input_size=size, precisions=("fp32", "int8"),
                          tensorrt=False, runs=cfg.bench_runs, threads=cfg.threads, device=cfg.device,
                          progress=cfg.progress)
    compress_for_deployment(out / "train" / "last.safetensors", deploy, out / "deploy", overwrite=True,
                            log=lambda msg: say(f"      {msg}"))
    prune = load_json(out / "deploy" / "compressed" / "report.json")
    measured = load_json(out / "deploy" / "bench" / "bench.json")
    exports = {name: load_json(out / "deploy" / "export" / name / "export.json") for name in ("original", "compressed")}
    summary = summarize(measured)
    figures.append(plots.plot_bench(measured, out / "demo.png", "segprune demo: compressed vs original"))
    figures.append(out / "deploy" / "MODEL_CARD.md")
    report = make_report("demo", config=asdict(cfg), model=model.config.to_dict(), training=training,
                         analysis=analysis, compression={**prune["compression"], "stages": prune["stages"]},
                         export=exports, bench={k: measured[k] for k in ("settings", "results", "ratios")},
                         summary=summary, figures=[str(f) for f in figures])
    save_json(out / "demo.json", report)
    return report


def summarize(measured: dict[str, Any]) -> dict[str, Any]:
    """Speed-up and mIoU difference of the compressed model against the unpruned one, from one bench run.

    int8 is quoted only where it is faster than the compressed fp32 graph; otherwise the
    summary says so, with both latencies.
    """
    by = {r["label"]: r for r in measured["results"]}
    base, fp32, int8 = by["original fp32"], by["compressed fp32"], by["compressed int8"]

    def p50(r):
        return r["latency"]["p50_ms"]

    def miou(r):
        return r["accuracy"]["miou"] if r.get("accuracy") else float("nan")

    out = {"unpruned_p50_ms": p50(base), "compressed_p50_ms": p50(fp32), "speedup_fp32": p50(base) / p50(fp32),
           "unpruned_miou": miou(base), "compressed_miou": miou(fp32), "delta_miou": miou(fp32) - miou(base),
           "int8_p50_ms": p50(int8), "int8_miou": miou(int8), "int8_faster": p50(int8) < p50(fp32)}
    if out["int8_faster"]:
        out["int8_note"] = (f"int8: {p50(base) / p50(int8):.2f}x the unpruned model, {miou(int8) - miou(base):+.2f} "
                            "mIoU")
    else:
        out["int8_note"] = (f"int8 is not faster than fp32 on this CPU ({p50(int8):.1f} ms against {p50(fp32):.1f} "
                            "ms): onnxruntime's CPU kernels gain little from int8 convolutions at this size, and the "
                            "Q/DQ pairs cost time; the int8 graph is for TensorRT and int8-capable accelerators")
    return out
