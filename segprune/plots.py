"""Figures for the spectral report. matplotlib runs headless (Agg) and every PNG is written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from segprune.io import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    _pyplot().close(fig)
    return path


def plot_cumulative_energy(labels: dict[str, Any], path: Path) -> Path:
    """Cumulative label energy vs band fraction, with and without DC, cut-offs marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    curve = labels["cumulative_energy"]
    ax.plot(curve["f"], curve["without_dc"], label="without DC")
    ax.plot(curve["f"], curve["with_dc"], "--", label="with DC")
    for row in labels["cutoffs"]:
        ax.axvline(row["cutoff"], color="grey", lw=0.8)
        ax.annotate(f"τ={row['tau']:.2f}\nf_c={row['cutoff']:.3f}", (row["cutoff"], row["tau"]),
                    textcoords="offset points", xytext=(4, -22), fontsize=7)
    ax.set(xlabel="band f (fraction of Nyquist per axis)", ylabel="fraction of label energy",
           xscale="log", ylim=(0, 1.01), title=f"Label energy by band ({labels['maps']} maps)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower right")
    return _save(fig, path)


def plot_class_spectra(density: torch.Tensor, class_names: list[str], path: Path, bins: int = 50) -> Path:
    """Per-class radial energy density (non-DC), on a coarse band axis for readability."""
    plt = _pyplot()
    k, n = density.shape
    coarse = density[:, : n - n % bins].reshape(k, bins, -1).mean(-1)
    f = (torch.arange(bins) + 0.5) / bins
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i, name in enumerate(class_names):
        ax.plot(f, coarse[i].clamp(min=1e-12), label=name, lw=1)
    ax.set(xlabel="band f", ylabel="energy density", yscale="log", title="Label spectrum per class")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    return _save(fig, path)


def plot_ceilings(ceilings: dict[str, Any], path: Path) -> Path:
    """mIoU of the labels against themselves after low-pass, grid resampling and block labelling."""
    plt = _pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    low = ceilings["lowpass"]
    a.plot([r["keep"] for r in low], [r["miou"] for r in low], "o-", label="DFT low-pass to band f")
    grid = ceilings["grid"]
    ref = max(g["grid"][0] for g in grid)
    a.plot([r["grid"][0] / ref for r in grid], [r["miou"] for r in grid], "s-", label="area down + bilinear up")
    for r in grid:
        a.annotate(f"OS{r['stride']}", (r["grid"][0] / ref, r["miou"]), fontsize=7, xytext=(3, -10),
                   textcoords="offset points")
    a.set(xscale="log", xlabel="band f = grid / image size", ylabel="mIoU ceiling %", ylim=(0, 101),
          title="Grid ceiling")
    a.grid(alpha=0.3, which="both")
    a.legend(fontsize=8)
    blk = ceilings["block"]
    b.plot([r["block"] for r in blk], [r["miou"] for r in blk], "o-")
    b.set(xscale="log", xlabel="block size b (pixels)", ylabel="mIoU ceiling %", ylim=(0, 101),
          title="Block-wise labels (majority)")
    b.set_xticks([r["block"] for r in blk], [str(r["block"]) for r in blk])
    b.grid(alpha=0.3)
    fig.suptitle(f"Reconstruction ceilings ({ceilings['images']} maps)")
    return _save(fig, path)


def plot_ce_share(model: dict[str, Any], path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    share = model["ce_share"]
    ax.plot(share["f"], share["cumulative"])
    ax.axvline(model["keep_freq"], color="grey", lw=0.8, ls="--")
    ax.set(xlabel="band f", ylabel="cumulative share of cross-entropy", xscale="log",
           title=f"Cross-entropy by band (CE {model['cross_entropy']:.3f}, {model['images']} images)")
    ax.grid(alpha=0.3, which="both")
    return _save(fig, path)


def plot_feature_heatmap(energy: dict[str, torch.Tensor], path: Path, bins: int = 50) -> Path:
    """Per layer: channels (sorted by low-band share) x band, cumulative energy fraction."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(energy), figsize=(4.2 * len(energy), 4), squeeze=False)
    for ax, (layer, e) in zip(axes[0], energy.items(), strict=True):
        n = e.shape[1] - 1
        cum = e.cumsum(1) / e.sum(1, keepdim=True).clamp(min=1e-300)
        idx = torch.linspace(0, n, bins + 1).round().long()
        img = cum[:, idx]
        order = torch.argsort(img[:, bins // 4], descending=True)
        im = ax.imshow(img[order].numpy(), aspect="auto", vmin=0, vmax=1, cmap="viridis",
                       extent=(0, 1, e.shape[0], 0))
        ax.set(title=layer, xlabel="band f", ylabel="channel (sorted)")
    fig.colorbar(im, ax=axes[0].tolist(), label="energy fraction inside band f")
    return _save(fig, path)



def plot_bench(measured: dict[str, Any], path: Path, title: str) -> Path:
    """mIoU against p50 latency of every model of one bench run (``segprune.bench.bench``'s payload)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for i, r in enumerate(measured["results"]):
        acc = (r.get("accuracy") or {}).get("miou", float("nan"))
        ax.scatter(r["latency"]["p50_ms"], acc, s=50, color=f"C{i}", label=r["label"])
    s = measured["settings"]
    ax.set(xlabel=f"{measured['results'][0]['backend']} p50 latency at {s['input_size'][0]}x{s['input_size'][1]} (ms)",
           ylabel="val mIoU", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_erf(erf: torch.Tensor, centre: tuple[float, float], radii: dict[str, float], path: Path,
             log_scale: bool = False, title: str = "Effective receptive field") -> Path:
    """The ERF map (sums to 1) with a circle around ``centre`` at each radius in ``radii``.

    ``radii`` maps a label (``"50%"``) to a radius in pixels. A log colour scale shows the
    faint outer taps of the ASPP lattice that a linear scale hides under the bright centre;
    it spans six decades below the peak.
    """
    from matplotlib.colors import LogNorm, Normalize
    from matplotlib.patches import Circle

    plt = _pyplot()
    data = erf.detach().to("cpu", torch.float64).numpy()
    peak = float(data.max()) if data.size else 1.0
    norm = LogNorm(vmin=peak * 1e-6, vmax=peak, clip=True) if log_scale and peak > 0 else Normalize(0, peak)
    h, w = data.shape
    fig, ax = plt.subplots(figsize=(6.4, 6.4 * h / w + 0.6))
    im = ax.imshow(data.clip(min=peak * 1e-6) if log_scale else data, cmap="magma", norm=norm,
                   interpolation="nearest")
    colours = ("cyan", "lime", "white", "yellow")
    for (label, radius), colour in zip(radii.items(), colours * len(radii), strict=False):
        ax.add_patch(Circle((centre[1], centre[0]), radius, fill=False, color=colour, lw=1.2,
                            label=f"{label} of mass: r = {radius:.1f} px"))
    ax.plot([centre[1]], [centre[0]], "+", color="white", ms=8)
    ax.set(title=title, xlabel="x (pixels)", ylabel="y (pixels)", xlim=(-0.5, w - 0.5), ylim=(h - 0.5, -0.5))
    ax.legend(loc="upper right", fontsize=7)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of gradient mass" + (" (log)" if log_scale else ""))
    return _save(fig, path)
