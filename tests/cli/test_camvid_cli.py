"""`segprune train` and `segprune eval` on the real CamVid data (skipped when it is absent)."""

from __future__ import annotations

import json

import pytest

from segprune.cli.main import main


@pytest.mark.camvid
@pytest.mark.slow
def test_train_and_eval_run_on_camvid(camvid_root, tmp_path, capsys) -> None:
    run = tmp_path / "run"
    code = main(["train", "--arch", "deeplabv3plus_resnet18", "--data", f"camvid:{camvid_root}", "--epochs", "1",
                 "--batch-size", "16", "--base-size", "45x60", "--crop-size", "45x60", "--eval-size", "45x60",
                 "--aspp-channels", "8", "--decoder-channels", "8", "--optimizer", "adamw", "--lr", "3e-3",
                 "--out", str(run), "--no-progress", "--json"])
    assert code == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["final"]["pixels"] > 0 and len(trained["final"]["per_class_iou"]) == 11
    code = main(["eval", str(run / "last.safetensors"), "--data", f"camvid:{camvid_root}", "--input-size", "45x60",
                 "--no-progress", "--json"])
    evaluated = json.loads(capsys.readouterr().out)
    # batch sizes differ (16 vs 4), so BLAS blocking may flip a few near-tied pixels
    assert code == 0 and evaluated["metrics"]["miou"] == pytest.approx(trained["final"]["miou"], abs=1e-2)
    # every val pixel but the Unlabelled ones is scored, at the label's own 360x480 resolution
    assert evaluated["metrics"]["pixels"] < 101 * 360 * 480
    assert evaluated["metrics"]["pixels"] > 0.9 * 101 * 360 * 480
