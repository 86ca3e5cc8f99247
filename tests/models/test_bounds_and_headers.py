"""Sizes and headers checked before anything is allocated, and messages that name the real problem (issue #17)."""

from __future__ import annotations

import json
import os
import pickle

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from segprune.errors import CheckpointError, ConfigError, ExportError
from segprune.models import load_checkpoint, save_checkpoint
from tests.helpers import run_cli, tiny_model


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "model.safetensors", tiny_model(), {"epoch": 1})


def _edit_header(src, dst, change):
    """Copy a checkpoint with its segprune header JSON changed by ``change(header)``."""
    with safe_open(str(src), framework="pt") as handle:
        header = json.loads(handle.metadata()["segprune"])
    change(header)
    save_file(load_file(str(src)), str(dst), metadata={"segprune": json.dumps(header)})
    return dst


def test_absurd_channel_count_in_a_header_is_refused_before_allocating(saved, tmp_path):
    bad = _edit_header(saved, tmp_path / "huge.safetensors", lambda h: h["config"].update(aspp_channels=10**6))
    # building this model for real would need about 20 GiB: the quick refusal shows nothing was allocated
    with pytest.raises(ConfigError, match=r"model needs at least .* GiB, over segprune's limit of 16 GiB"):
        load_checkpoint(bad)
    bad = _edit_header(saved, tmp_path / "absurd.safetensors", lambda h: h["config"].update(aspp_channels=10**9))
    with pytest.raises(CheckpointError, match="describes a model too large to build"):
        load_checkpoint(bad)


def test_checkpoint_metadata_that_is_a_list_is_a_corrupted_header(saved, tmp_path):
    bad = _edit_header(saved, tmp_path / "list.safetensors", lambda h: h.update(metadata=[1, 2]))
    with pytest.raises(CheckpointError, match="its metadata is a list, not an object"):
        load_checkpoint(bad)


def test_input_size_is_bounded_when_parsed(saved):
    code, _, err = run_cli(["eval", saved, "--data", "synthetic", "--input-size", "100000x100000"])
    assert code == 2 and "size 100000x100000 needs at least" in err and "limit of 16 GiB" in err
    assert len(err.strip().splitlines()) == 1


def test_memory_limit_follows_the_environment(monkeypatch):
    from segprune.limits import check_input_size

    check_input_size((512, 1024))
    monkeypatch.setenv("SEGPRUNE_MEMORY_LIMIT_GIB", "0.01")
    with pytest.raises(ConfigError, match="input size 512x1024 needs at least 0.131 GiB, over segprune's limit of "
                                          "0.01 GiB: use a smaller size"):
        check_input_size((512, 1024))
    for bad in ("nan", "-1", "0", "inf", "lots"):
        monkeypatch.setenv("SEGPRUNE_MEMORY_LIMIT_GIB", bad)
        with pytest.raises(ConfigError, match="is not a positive number of GiB"):
            check_input_size((8, 8))


def test_tiny_keep_freq_gives_a_one_sample_grid_not_an_empty_one():
    from segprune.models.grid import decoder_grid

    assert decoder_grid(24, 32, 1e-9) == (1, 1) and decoder_grid(24, 32, 0.5) == (12, 16)
    with torch.no_grad():
        out = tiny_model(decoder_keep=1e-9, decoder_resize="bilinear").eval()(torch.randn(1, 3, 32, 48))
    assert out.shape == (1, 3, 32, 48) and torch.isfinite(out).all()


def test_unaligned_size_suggests_the_nearest_aligned_one():
    from segprune.export import ExportConfig

    with pytest.raises(ConfigError, match=r"use 64x96 or 48x96 \(nearest first\)"):
        ExportConfig(input_size=(63, 97)).validate(tiny_model())


def test_empty_onnx_file_is_called_empty(tmp_path):
    from segprune.export import load_onnx

    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(ExportError, match=r"is empty \(0 bytes\), not an ONNX model") as err:
        load_onnx(tmp_path / "empty.onnx")
    assert "opset" not in str(err.value)
    (tmp_path / "text.onnx").write_bytes(b"\n\x00")  # protobuf reads this as an empty model
    with pytest.raises(ExportError, match="is not an ONNX model"):
        load_onnx(tmp_path / "text.onnx")


def test_colour_codes_are_stripped_from_quoted_errors(monkeypatch, capsys):
    from segprune.cli import main as cli
    from segprune.errors import first_line

    assert first_line(RuntimeError("\x1b[31;1mTorchExportError\x1b[0m: bad\nmore")) == "TorchExportError: bad"

    def fails(_args):
        raise ExportError("exporter said \x1b[1mno\x1b[0m")

    import segprune.cli.info_cmd as info_cmd

    monkeypatch.setattr(info_cmd, "run", fails)
    assert cli.main(["info"]) == 2
    assert "exporter said no" in capsys.readouterr().err


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo never",))


def test_a_pickle_as_backbone_weights_is_called_a_pickle_and_not_loaded(tmp_path):
    from segprune.models.backbones import build_backbone

    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(CheckpointError, match="is a pickle .* it was not loaded") as err:
        build_backbone("resnet18", 16, weights_path=path)
    assert "corrupted" not in str(err.value)


def test_resume_on_data_with_another_class_count_names_the_data(tmp_path):
    common = ["--epochs", "1", "--batch-size", "2", "--crop-size", "32x48", "--aspp-channels", "8",
              "--decoder-channels", "8", "--no-progress", "--out", tmp_path / "run", "--stop-after", "1"]
    code, _, err = run_cli(["train", "--data", "synthetic:n=2,size=32x48,classes=3", *common])
    assert code == 0, err
    code, _, err = run_cli(["train", "--data", "synthetic:n=2,size=32x48,classes=4", "--resume", *common])
    assert code == 2 and "was trained on 3 classes, this --data has 4" in err and "--model" not in err
