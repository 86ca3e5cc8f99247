"""Feature spectra through hooks, and `segprune analyze` end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from segprune.cli.main import main
from segprune.errors import ConfigError
from segprune.spectral import feature_spectra, resolve_layers
from tests.helpers import tiny_model


def test_hooks_record_every_decoder_channel() -> None:
    model = tiny_model(num_classes=3)
    spectra = feature_spectra(model, [torch.randn(2, 3, 32, 48)], progress=False)
    assert spectra.images == 2
    assert spectra.energy["decoder.fuse.0:in"].shape[0] == 8 + 48  # ASPP width + low-level projection
    assert spectra.energy["decoder.fuse.1"].shape[0] == 8
    assert spectra.grids["decoder.fuse.1"] == (8, 12)
    kept = spectra.kept_fraction(1.0)
    assert all(torch.allclose(v, torch.ones_like(v)) for v in kept.values())
    half = spectra.kept_fraction(0.5)
    assert all(bool(((v >= 0) & (v <= 1 + 1e-9)).all()) for v in half.values())


def test_constant_features_keep_all_energy_in_any_band() -> None:
    class Const(nn.Module):
        def __init__(self):
            super().__init__()
            self.decoder = nn.Module()
            self.decoder.body = nn.Conv2d(3, 4, 1)

        def forward(self, x):
            return self.decoder.body(torch.ones_like(x))

    spectra = feature_spectra(Const(), [torch.randn(1, 3, 9, 10)], ["decoder.body"], progress=False)
    assert torch.allclose(spectra.kept_fraction(0.01)["decoder.body"], torch.ones(4, dtype=torch.float64))


def test_model_without_decoder_names_its_modules() -> None:
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    with pytest.raises(ConfigError, match="no DeepLabV3\\+/DAN decoder.*--layers"):
        resolve_layers(plain)


def test_analyze_writes_report_and_plots(tmp_path, capsys) -> None:
    from segprune.models import save_checkpoint

    ckpt = tmp_path / "m.safetensors"
    save_checkpoint(ckpt, tiny_model(num_classes=3))
    out = tmp_path / "an"
    code = main(["analyze", "--data", "synthetic:n=6,size=32x48,classes=3", "--out", str(out), "--model", str(ckpt),
                 "--energy", "0.95", "--ceiling-images", "3", "--calib-images", "2", "--no-progress"])
    assert code == 0
    report = json.loads((out / "spectrum.json").read_text())
    assert report["schema"] == "segprune.analyze/1"
    assert [c["tau"] for c in report["labels"]["cutoffs"]] == [0.9, 0.95, 0.99]
    assert 0 < report["keep_freq"] <= 1
    assert report["model"]["features"]["decoder.fuse.1"]["channels"] == 8
    for name in ("label_energy.png", "class_spectra.png", "ceilings.png", "ce_by_band.png", "feature_spectra.png"):
        assert (out / name).stat().st_size > 1000, name
    assert "f_c" in capsys.readouterr().out


@pytest.mark.parametrize("argv,needle", [
    (["--keep-freq", "1.5"], "outside (0, 1]"),
    (["--energy", "0"], "outside (0, 1]"),
    (["--keep-freq", "0.5", "--energy", "0.9"], "not both"),
])
def test_analyze_bad_options_exit_2(tmp_path, capsys, argv, needle) -> None:
    code = main(["analyze", "--data", "synthetic:n=2,size=16x16", "--out", str(tmp_path), *argv])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and err.count("\n") == 1


def test_analyze_empty_split_is_a_clear_error(tmp_path, capsys) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    (tmp_path / "classes.txt").write_text("a\nb\n")
    (tmp_path / "train.txt").write_text("")
    code = main(["analyze", "--data", f"folder:{tmp_path}", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "train" in err


@pytest.mark.camvid
def test_camvid_spectrum_agrees_with_numpy(camvid_root) -> None:
    from segprune.data import build_dataset
    from segprune.spectral import LabelSpectrum
    from tests.spectral.reference import numpy_band_energy, numpy_cutoff

    ds = build_dataset(f"camvid:{camvid_root}", "train")
    maps = [ds.read_label(i) for i in range(0, len(ds), len(ds) // 6)][:6]
    s = LabelSpectrum(ds.num_classes)
    s.update(torch.from_numpy(np.stack(maps)))
    r, e = numpy_band_energy(maps, ds.num_classes)
    assert float(s.energy.sum()) == pytest.approx(e.sum(), rel=1e-6)  # float32 FFTs on 360x480 maps
    for tau in (0.9, 0.95, 0.99):
        assert s.cutoff(tau) == pytest.approx(numpy_cutoff(r, e, tau))
