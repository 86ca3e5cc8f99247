"""Label-spectrum speed and agreement on CamVid, ours against a plain numpy loop, in one run.

Both sides do the same job from the PNG files: decode every label map of CamVid train+val,
transform every class's one-hot map, histogram the power by square band and read off the
cut-offs. segprune batches the transforms in torch (one-sided FFT of the classes present,
a few maps per call, labels decoded as bytes, power summed per class before binning); the
baseline is the straightforward numpy loop (per image, per class ``np.fft.fft2``). The cut-offs of the two must agree: that is
the independent check of the CamVid figures. A third pass streams Cityscapes-sized maps
(1024x2048, generated) to show that memory stays flat as the number of maps grows.

Writes ``benchmarks/results/spectral_speed.json``; quotes medians over ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]

TAUS = (0.90, 0.95, 0.99)


def numpy_loop(dataset, indices, nbins: int = 1000) -> tuple[np.ndarray, int]:
    """The baseline: decode, then per image and class a full complex fft2, then a band histogram."""
    hist = np.zeros(nbins + 1)
    radius_cache: dict[tuple[int, int], np.ndarray] = {}
    for i in indices:
        lab = dataset.read_label(i)
        h, w = lab.shape
        if (h, w) not in radius_cache:
            ky = np.abs(np.fft.fftfreq(h) * h) / (h / 2)
            kx = np.abs(np.fft.fftfreq(w) * w) / (w / 2)
            r = np.maximum(ky[:, None], kx[None, :])
            radius_cache[(h, w)] = np.clip(np.ceil(r * nbins - 1e-9), 0, nbins).astype(np.int64).ravel()
        idx = radius_cache[(h, w)]
        for k in range(dataset.num_classes):
            power = np.abs(np.fft.fft2((lab == k).astype(np.float64))) ** 2 / (h * w) ** 2
            hist += np.bincount(idx, weights=power.ravel(), minlength=nbins + 1)
    return hist, len(indices)


def cutoffs_from_hist(hist: np.ndarray, nbins: int = 1000) -> list[float]:
    e = hist.copy()
    e[0] = 0.0
    cum = np.cumsum(e) / e.sum()
    return [float(np.argmax(cum >= tau - 1e-12)) / nbins for tau in TAUS]


def ours(dataset, workers: int, batch_size: int):
    from segprune.spectral import LabelSpectrum
    from segprune.spectral.analyze import label_batches

    spectrum = LabelSpectrum(dataset.num_classes, dataset.ignore_index)
    for batch in label_batches(dataset, batch_size, workers):
        for group in batch:
            spectrum.update(group)
    return spectrum


def memory_stream(maps: int, size=(1024, 2048), classes: int = 19, batch: int = 2) -> float:
    """Peak RSS (MiB) after streaming ``maps`` generated label maps of ``size``."""
    from segprune.spectral import LabelSpectrum

    spectrum = LabelSpectrum(classes)
    g = torch.Generator().manual_seed(0)
    for _ in range(0, maps, batch):
        coarse = torch.randint(0, classes, (batch, size[0] // 32, size[1] // 32), generator=g)
        spectrum.update(coarse.repeat_interleave(32, 1).repeat_interleave(32, 2))
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--camvid", type=Path, default=ROOT.parent / "shared" / "data" / "camvid")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "spectral_speed.json")
    args = parser.parse_args(argv)

    from segprune.data import build_dataset
    from segprune.io import save_json
    from segprune.report import command_line, format_table, make_report
    from segprune.spectral.analyze import analyze_labels

    if not (args.camvid / "train.txt").is_file():
        print(f"CamVid not found at {args.camvid}: pass --camvid DIR", file=sys.stderr)
        return 2
    splits = [build_dataset(f"camvid:{args.camvid}", s) for s in ("train", "val")]
    n_maps = sum(len(d) for d in splits)
    ours_times, numpy_times = [], []
    spectrum_cutoffs = numpy_cutoffs = None
    for rep in range(args.repeats):
        t = time.perf_counter()
        spectra = [ours(d, args.workers, args.batch_size) for d in splits]
        ours_times.append(time.perf_counter() - t)
        merged = spectra[0].merge(spectra[1])
        spectrum_cutoffs = [merged.cutoff(tau) for tau in TAUS]
        t = time.perf_counter()
        hists = [numpy_loop(d, range(len(d)))[0] for d in splits]
        numpy_times.append(time.perf_counter() - t)
        numpy_cutoffs = cutoffs_from_hist(hists[0] + hists[1])
        print(f"repeat {rep + 1}: segprune {ours_times[-1]:.2f} s, numpy loop {numpy_times[-1]:.2f} s",
              file=sys.stderr)
    t_ours, t_np = statistics.median(ours_times), statistics.median(numpy_times)
    # train only, as `segprune analyze --split train` would do it
    t = time.perf_counter()
    ours(splits[0], args.workers, args.batch_size)
    train_only = time.perf_counter() - t
    # everything `segprune analyze --split train` computes without a model, plots aside
    t = time.perf_counter()
    analyze_labels(splits[0], progress=False)
    train_analysis = time.perf_counter() - t
    mem_small, mem_large = memory_stream(8), memory_stream(32)
    report = make_report(
        "bench.spectral_speed",
        command=command_line(__file__, argv, ROOT),
        maps=n_maps, map_size=[360, 480], classes=splits[0].num_classes, workers=args.workers,
        batch_size=args.batch_size, repeats=args.repeats,
        segprune_seconds={"median": t_ours, "all": ours_times},
        numpy_loop_seconds={"median": t_np, "all": numpy_times},
        segprune_maps_per_s=n_maps / t_ours, numpy_maps_per_s=n_maps / t_np, speedup=t_np / t_ours,
        camvid_train_seconds=train_only,
        camvid_train_analysis_seconds={"seconds": train_analysis,
                                       "covers": "label spectrum, cut-offs, grids and the reconstruction ceilings "
                                                 "on 32 maps (analyze_labels defaults); no plots"},
        cutoffs={"taus": list(TAUS), "segprune": spectrum_cutoffs, "numpy_reference": numpy_cutoffs,
                 "agree": spectrum_cutoffs == numpy_cutoffs},
        memory={"cityscapes_size": [1024, 2048], "peak_rss_mib_after_8_maps": mem_small,
                "peak_rss_mib_after_32_maps": mem_large},
    )
    save_json(args.out, report)
    rows = [["segprune (batched torch)", n_maps / t_ours, t_ours], ["numpy per-image, per-class", n_maps / t_np, t_np]]
    print(format_table(rows, ["label spectrum, CamVid train+val", "maps/s", "median s"]))
    print(f"speed-up {t_np / t_ours:.1f}x; CamVid train alone {train_only:.2f} s (with ceilings "
          f"{train_analysis:.2f} s); cut-offs {spectrum_cutoffs} "
          f"(numpy {numpy_cutoffs}); peak RSS {mem_small:.0f} -> {mem_large:.0f} MiB for 8 -> 32 maps of 1024x2048")
    return 0


if __name__ == "__main__":
    sys.exit(main())
