"""``compress_for_deployment``: a trained model in, a verified deployment folder out, in resumable stages.

The stages, each the library call the single-purpose commands make:

1. ``compressed/``: :func:`~segprune.deploy.compress_model` (band from the label spectrum,
   ``compress_``, fine-tuning with distillation): checkpoint, report, label-energy plot.
2. ``export/``: :func:`~segprune.export.export_model` for the original (fp32, the reference)
   and the compressed model (every precision): ONNX files parity-checked against PyTorch,
   checked against TensorRT's rules, engines where TensorRT and a GPU are present.
3. ``bench/``: :func:`~segprune.bench.bench` of all of them in one interleaved run on this
   machine (``bench.json``), the compressed model's results alone (``compressed.json``), a plot.
4. the card: the compressed results recorded as regression baselines (``baselines.json``,
   so ``segprune check bench/compressed.json --baseline DIR`` holds at once) and
   ``MODEL_CARD.md``, written from the reports above and nothing else.

Every option is checked, the model loaded and its input size tried before the first stage
(:class:`~segprune.deploy.stages.StageFolder` for the folder's rules).
"""

from __future__ import annotations

import copy
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from segprune.deploy.card import CARD
from segprune.deploy.compression import CHECKPOINT, CompressionPlan, compress_model, load_for_compression
from segprune.deploy.stages import StageFolder
from segprune.errors import ConfigError, RegressionFound

BENCH = "bench"
EXPORT = "export"
COMPRESSED = "compressed"
CARD_STAGE = "card"


@dataclass(frozen=True)
class DeployConfig:
    """Everything ``segprune compress`` does besides the compression plan: data, export, benchmark.

    ``crop_from_size``: fine-tune on crops of the scoring size (``input_size``, else the val
    labels' size) instead of the plan's crop, for a command given no crop size.
    ``tensorrt``: None builds engines where TensorRT and a CUDA GPU are present (the card
    says why not otherwise), True requires them, False never builds them.
    """

    plan: CompressionPlan
    data: str
    train_split: str = "train"
    val_split: str = "val"
    input_size: tuple[int, int] | None = None
    precisions: tuple[str, ...] = ("fp32", "int8")
    calib_method: str = "percentile"
    parity_images: int = 8
    min_agreement: dict[str, float] = field(default_factory=dict)
    tensorrt: bool | None = None
    runs: int = 30
    warmup: int = 5
    rounds: int = 3
    max_images: int | None = None
    threads: int | None = None
    device: str = "auto"
    crop_from_size: bool = False
    workers: int = 0
    progress: bool = True

    def export_plan(self, engines: bool):
        from segprune.export import ExportPlan

        return ExportPlan(precisions=self.precisions, calib_method=self.calib_method,
                          min_agreement=dict(self.min_agreement), tensorrt=engines).validate()

    def validate(self) -> DeployConfig:
        self.export_plan(False)  # precisions, thresholds
        for name in ("parity_images", "runs", "rounds"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} {getattr(self, name)!r} must be a positive integer")
        if "fp32" not in self.precisions:
            raise ConfigError("--precision must include fp32: the parity and the card's figures start from the fp32 "
                              "graph (e.g. --precision fp32,int8)")
        return self

    def options(self) -> dict[str, Any]:
        """What the folder's results depend on (compared on resume); progress bars and workers do not count."""
        out = {k: v for k, v in asdict(self).items() if k not in ("plan", "progress", "workers")}
        return {**out, "plan": self.plan.to_dict()}


def engines_missing() -> str | None:
    """Why no TensorRT engine can be built here, or None when one can."""
    if importlib.util.find_spec("tensorrt") is None:
        return "TensorRT is not installed here; pip install 'segprune[trt]' on a machine with an NVIDIA GPU"
    import torch

    if not torch.cuda.is_available():
        return "no CUDA GPU is visible"
    return None


def compress_for_deployment(source: str | Path, cfg: DeployConfig, out: str | Path, *, arch: str | None = None,
                            encoder: str | None = None, classes: int | None = None, overwrite: bool = False,
                            command: str | None = None,
                            log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run (or resume) the stages into ``out``; returns ``out/compress.json``'s content plus the card's path.

    ``arch``/``encoder``/``classes`` describe a plain weights file (:func:`segprune.models.load_model`);
    ``command`` is the command line the card gives to reproduce the folder.
    """
    from segprune.export import ExportConfig
    from segprune.io import check_free_space, path_sha256
    from segprune.models import load_model
    from segprune.train.distributed import resolve_device

    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    cfg = cfg.validate()
    out = Path(out)
    missing = engines_missing()
    if cfg.tensorrt and missing:
        raise ConfigError(f"--tensorrt: {missing}")
    engines = cfg.tensorrt if cfg.tensorrt is not None else missing is None
    device = str(resolve_device(cfg.device))  # a GPU asked for and not there: refused now
    model, _, size = load_for_compression(source, cfg.plan, cfg.data, train_split=cfg.train_split,
                                          val_split=cfg.val_split, input_size=cfg.input_size, arch=arch,
                                          encoder=encoder, classes=classes)
    if cfg.crop_from_size and cfg.plan.finetune is not None:  # fine-tune at the size the model is deployed at
        cfg = replace(cfg, plan=replace(cfg.plan, finetune=replace(cfg.plan.finetune, crop_size=size)))
    export_cfg = ExportConfig(input_size=size).validate(model)  # a size the model cannot take: refused now
    folder = StageFolder(out, {**cfg.options(), "source": str(source), "source_sha256": path_sha256(source),
                               "arch": arch, "encoder": encoder, "classes": classes}, overwrite=overwrite)
    resumed = folder.prepare()
    check_free_space(out, model, 12, "the compressed model, its fine-tuning run and the exports of both models")
    if resumed:
        say(f"resuming {out}: {', '.join(resumed)} already done")
    folder.clear()
    # a copy is compressed: the original stays for its own export
    if folder.done(COMPRESSED):
        compressed, _ = load_model(out / COMPRESSED / CHECKPOINT)
    else:
        say(f"[1/4] compressing {source} ({cfg.plan.finetune.epochs if cfg.plan.finetune else 0} fine-tuning epochs)")
        compressed = copy.deepcopy(model)
        with folder.stage(COMPRESSED) as stage:
            compress_model(compressed, cfg.plan, cfg.data, stage, source=str(source), size=size,
                           input_size=cfg.input_size, train_split=cfg.train_split, val_split=cfg.val_split,
                           device=device, workers=cfg.workers, progress=cfg.progress)
    if not folder.done(EXPORT):
        say(f"[2/4] exporting both models to ONNX at {size[0]}x{size[1]} ({','.join(cfg.precisions)} for the "
            "compressed one), each checked against PyTorch" + (", with TensorRT engines" if engines else ""))
        with folder.stage(EXPORT) as stage:
            failed = _export_both(model, compressed.cpu(), stage, export_cfg, cfg, engines, str(source))
        if failed is not None:  # the files stay for inspection (renamed as failed); a re-run exports again
            folder.discard(EXPORT)
            raise failed
    if not folder.done(BENCH):
        say(f"[3/4] benchmarking side by side on this machine: mIoU on {cfg.data} {cfg.val_split}, latency")
        with folder.stage(BENCH) as stage:
            _bench_all(out / EXPORT, stage, size, cfg, engines)
    if not folder.done(CARD_STAGE):
        from segprune.deploy.card import write_card

        say("[4/4] recording the baselines and writing the model card")
        files = write_card(out, cfg, size=size, command=command,
                           engines_note=None if engines else (missing or "--no-tensorrt was given"))
        folder.finish(CARD_STAGE, files=files)
    return {"out": str(out), "resumed": resumed, "stages": folder.stages, "card": str(out / CARD)}


def _export_both(original, compressed, stage: Path, export_cfg, cfg: DeployConfig, engines: bool,
                 source: str) -> RegressionFound | None:
    """Both exports into ``stage``; a failed parity or rule check is returned (raised after the folder is in place)."""
    from segprune.data import image_batches
    from segprune.export import ExportPlan, export_model
    from segprune.models import model_info

    classes = model_info(original)["num_classes"]

    def batches(at: tuple[int, int], n: int):
        return image_batches(cfg.data, cfg.val_split, at, cfg.parity_images, n, classes)

    def calib(at: tuple[int, int]):
        return image_batches(cfg.data, cfg.train_split, at, cfg.plan.calib_images, 1, classes)

    plan = cfg.export_plan(engines)
    reference = ExportPlan(precisions=("fp32",), min_agreement=plan.min_agreement, tensorrt=engines)
    failed = None
    for name, model, export_plan in (("original", original, reference), (COMPRESSED, compressed, plan)):
        try:
            export_model(model, stage / name, export_cfg, export_plan, batches, calib,
                         source={"model": source, "stage": name, "data": cfg.data}, log=lambda _msg: None)
        except RegressionFound as exc:
            failed = failed or exc
    return failed


def bench_files(export_dir: Path, precisions: tuple[str, ...], engines: bool) -> dict[str, tuple[Path, str]]:
    """Label -> (file, backend) of what the bench stage measures, the original's fp32 graph first."""
    files = {"original fp32": (export_dir / "original" / "model.fp32.onnx", "onnxruntime")}
    files.update({f"compressed {p}": (export_dir / COMPRESSED / f"model.{p}.onnx", "onnxruntime") for p in precisions})
    if engines:
        files["original fp32 tensorrt"] = (export_dir / "original" / "model.fp32.engine", "tensorrt")
        files.update({f"compressed {p} tensorrt": (export_dir / COMPRESSED / f"model.{p}.engine", "tensorrt")
                      for p in precisions})
    return files


def _bench_all(export_dir: Path, stage: Path, size: tuple[int, int], cfg: DeployConfig, engines: bool) -> None:
    from segprune import plots
    from segprune.bench import BenchSettings, bench, open_runner
    from segprune.io import save_json
    from segprune.report import make_report

    runners = {}
    try:
        for label, (path, backend) in bench_files(export_dir, cfg.precisions, engines).items():
            runners[label] = open_runner(path, backend, threads=cfg.threads)
        settings = BenchSettings(data=cfg.data, split=cfg.val_split, input_size=size, warmup=cfg.warmup,
                                 runs=cfg.runs, rounds=cfg.rounds, max_images=cfg.max_images, progress=cfg.progress)
        payload = bench(runners, settings, threads=cfg.threads)
    finally:
        for runner in runners.values():
            runner.close()
    save_json(stage / "bench.json", make_report("bench", **payload))
    mine = [r for r in payload["results"] if r["label"].startswith(COMPRESSED)]
    save_json(stage / "compressed.json", make_report("bench", **{**payload, "results": mine, "ratios": []}))
    plots.plot_bench(payload, stage / "bench.png", "compressed vs original, measured side by side")
