import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from segprune.errors import CheckpointError, ConfigError
from segprune.models import (
    create_model,
    load_checkpoint,
    load_state_dict_file,
    read_checkpoint_header,
    save_checkpoint,
)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("deeplabv3plus_mobilenet_v2", 11, aspp_channels=16, decoder_channels=16).eval()


@pytest.fixture(scope="module")
def saved(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "model.safetensors"
    save_checkpoint(path, model, {"epoch": 2, "miou": torch.tensor(0.5)})
    return path


def _rewrite(src, dst, change):
    """Copy a checkpoint with its tensors changed by ``change(tensors)``, keeping the header."""
    with safe_open(str(src), framework="pt") as handle:
        meta = handle.metadata()
    tensors = load_file(str(src))
    change(tensors)
    save_file(tensors, str(dst), metadata=meta)
    return dst


def test_header_and_sidecar(saved, model):
    header = read_checkpoint_header(saved)
    assert header["format"] == "segprune-checkpoint" and header["version"] == 1
    assert header["config"]["num_classes"] == 11 and header["config"]["channel_overrides"] == {}
    assert header["metadata"] == {"epoch": 2, "miou": 0.5}
    assert json.loads(saved.with_name("model.safetensors.json").read_text()) == header


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(CheckpointError, match="nope.safetensors does not exist: check the path"):
        load_checkpoint(tmp_path / "nope.safetensors")
    with pytest.raises(CheckpointError, match="is a folder"):
        load_checkpoint(tmp_path)


def test_pickle_file_says_how_to_convert(model, tmp_path):
    path = tmp_path / "model.pth"
    torch.save(model.state_dict(), path)
    with pytest.raises(CheckpointError, match=r"looks like a PyTorch pickle.*--arch NAME \(read weights-only, never unpickled\)"):
        load_checkpoint(path)
    # ... and the advice works: the plain state dict loads into a fresh model.
    fresh = create_model("deeplabv3plus_mobilenet_v2", 11, aspp_channels=16, decoder_channels=16)
    fresh.load_state_dict(load_state_dict_file(path))


def test_corrupted_and_truncated_files(saved, tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="is not a safetensors file"):
        load_checkpoint(junk)
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(saved.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="unreadable safetensors file .* corrupted or truncated"):
        load_checkpoint(cut)


def test_foreign_safetensors_and_bad_headers(tmp_path):
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(CheckpointError, match="without a segprune header: it was not written by segprune; pass it as a plain weights file"):
        load_checkpoint(plain)
    save_file({"w": torch.zeros(2)}, str(plain), metadata={"segprune": "{oops"})
    with pytest.raises(CheckpointError, match="corrupted segprune header"):
        load_checkpoint(plain)
    newer = {"format": "segprune-checkpoint", "version": 9, "config": {}}
    save_file({"w": torch.zeros(2)}, str(plain), metadata={"segprune": json.dumps(newer)})
    with pytest.raises(CheckpointError, match="format version 9, this segprune reads up to 1: upgrade segprune"):
        load_checkpoint(plain)
    bad = {"format": "segprune-checkpoint", "version": 1, "config": {"arch": "dan", "backbone": "vgg", "num_classes": 2}}
    save_file({"w": torch.zeros(2)}, str(plain), metadata={"segprune": json.dumps(bad)})
    with pytest.raises(CheckpointError, match="invalid model config .*backbone 'vgg' is not valid"):
        load_checkpoint(plain)


def test_shape_mismatch_names_tensors_and_shapes(saved, tmp_path):
    def shrink(t):
        t["decoder.classifier.weight"] = t["decoder.classifier.weight"][:5]
    path = _rewrite(saved, tmp_path / "shape.safetensors", shrink)
    with pytest.raises(CheckpointError, match=r"1 shape mismatches \(decoder\.classifier\.weight: file \[5, 16, 1, 1\] "
                                              r"vs model \[11, 16, 1, 1\]\)"):
        load_checkpoint(path)


def test_missing_and_unexpected_tensors(saved, tmp_path):
    def edit(t):
        del t["aspp.project.0.weight"]
        t["extra.weight"] = torch.zeros(1)
    path = _rewrite(saved, tmp_path / "edited.safetensors", edit)
    with pytest.raises(CheckpointError, match=r"1 missing tensors \(aspp\.project\.0\.weight\), "
                                              r"1 unexpected tensors \(extra\.weight\)"):
        load_checkpoint(path)


def test_aliased_tensors_are_saved(tmp_path):
    torch.manual_seed(0)
    model = create_model("dan_mobilenet_v2", 3, aspp_channels=8, decoder_channels=8).eval()
    model.aspp.convs[0][1].running_var = model.aspp.convs[1][1].running_var  # two names, one storage
    save_checkpoint(tmp_path / "m.safetensors", model)
    loaded, _ = load_checkpoint(tmp_path / "m.safetensors")
    assert torch.equal(loaded.aspp.convs[0][1].running_var, model.aspp.convs[1][1].running_var)


def test_metadata_must_be_json(model, tmp_path):
    with pytest.raises(ConfigError, match="metadata is not JSON-serialisable"):
        save_checkpoint(tmp_path / "m.safetensors", model, {"bad": object()})
    with pytest.raises(ConfigError, match="has no segprune adapter: supported are"):
        save_checkpoint(tmp_path / "m.safetensors", torch.nn.Conv2d(1, 1, 1))
    assert not (tmp_path / "m.safetensors").exists()


def test_header_length_starting_with_0x80_is_not_a_pickle(saved, tmp_path):
    """A safetensors header length whose low byte is 0x80 once passed for a pickle's first byte."""
    with safe_open(str(saved), framework="pt") as handle:
        meta = handle.metadata()
    tensors = load_file(str(saved))
    path = tmp_path / "m.safetensors"
    for pad in range(0, 300, 8):
        save_file(tensors, str(path), metadata={**meta, "pad": "x" * pad})
        if path.read_bytes()[0] == 0x80:
            break
    else:
        pytest.fail("no padding gave a 0x80 first byte")
    load_checkpoint(path)


def test_load_state_dict_file_refuses_non_tensor_pickles(tmp_path):
    path = tmp_path / "meta.pth"
    torch.save({"epoch": 3}, path)
    with pytest.raises(CheckpointError, match="is not a state dict of tensors"):
        load_state_dict_file(path)
    path.write_bytes(b"\x80\x02garbage")
    with pytest.raises(CheckpointError, match="not a readable PyTorch weight file"):
        load_state_dict_file(path)
