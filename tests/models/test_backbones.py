import pytest
import torch
import torchvision

from segprune.errors import CheckpointError
from segprune.models import build_backbone


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    return path


def _equal(backbone, state):
    return all(torch.equal(v, state[k]) for k, v in backbone.state_dict().items())


def test_loads_torchvision_imagenet_state_dict_without_classifier(resnet18_file):
    backbone = build_backbone("resnet18", 8, weights_path=resnet18_file)
    assert _equal(backbone, torch.load(resnet18_file, weights_only=True))


def test_loads_wrapped_mobilenet_v2_dropping_the_last_conv_and_classifier(tmp_path):
    state = torchvision.models.mobilenet_v2(weights=None).state_dict()
    path = tmp_path / "mnv2.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)  # DDP-style file
    assert _equal(build_backbone("mobilenet_v2", 16, weights_path=path), state)


def test_wrong_backbone_weights_are_named(resnet18_file, tmp_path):
    with pytest.raises(CheckpointError, match=r"do not fit resnet34: \d+ missing tensors \(layer1\.2\.conv1\.weight"):
        build_backbone("resnet34", 16, weights_path=resnet18_file)
    path = tmp_path / "v3.pth"
    torch.save(torchvision.models.mobilenet_v3_large(weights=None).state_dict(), path)
    with pytest.raises(CheckpointError, match=r"do not fit mobilenet_v2: \d+ shape mismatches \(features\.0\.0\.weight: "
                                              r"file \[16, 3, 3, 3\] vs model \[32, 3, 3, 3\]"):
        build_backbone("mobilenet_v2", 16, weights_path=path)
    with pytest.raises(CheckpointError, match="does not exist: check the path"):
        build_backbone("resnet18", 16, weights_path=tmp_path / "nope.pth")


def test_pickled_module_is_refused(tmp_path):
    path = tmp_path / "whole_model.pth"
    torch.save(torch.nn.Conv2d(1, 1, 1), path)
    with pytest.raises(CheckpointError, match="holds Python objects besides tensors"):
        build_backbone("resnet18", 16, weights_path=path)


def _first_3x3_dilations(backbone, stage, n):
    convs = [b.conv1 if b.conv1.kernel_size == (3, 3) else b.conv2 for b in getattr(backbone, stage)[:n]]
    return [c.dilation[0] for c in convs], [c.stride[0] for c in convs]


@pytest.mark.parametrize("output_stride", [8, 16])
def test_basic_blocks_follow_torchvision_bottleneck_dilation(output_stride):
    with torch.device("meta"):
        basic = build_backbone("resnet18", output_stride)
        bottleneck = build_backbone("resnet50", output_stride)  # dilated by torchvision itself
    for stage in ("layer2", "layer3", "layer4"):
        assert _first_3x3_dilations(basic, stage, 2) == _first_3x3_dilations(bottleneck, stage, 2)
    assert basic.layer4[1].conv2.dilation == ((4, 4) if output_stride == 8 else (2, 2))
    assert basic.layer4[0].downsample[0].stride == (1, 1)
