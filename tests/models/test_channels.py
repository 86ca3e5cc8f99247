import pytest
import torch
from torch import nn

from segprune.errors import ConfigError
from segprune.models import (
    apply_channel_overrides,
    channel_overrides_of,
    channel_plan,
    create_model,
    load_checkpoint,
    save_checkpoint,
)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return create_model("dan_resnet18", 4, aspp_channels=16, decoder_channels=16).eval()


def test_plan_records_constructor_shapes(model):
    plan = channel_plan(model)
    assert plan["decoder.classifier"] == {"type": "Conv2d", "in_channels": 16, "out_channels": 4, "groups": 1}
    assert plan["decoder.project.layer2.1"] == {"type": "BatchNorm2d", "num_features": 96}
    assert plan["aspp.convs.4.1"]["type"] == "BatchNorm2d"  # the image-pooling norm is a BatchNorm2d subclass
    assert channel_overrides_of(model) == {}


def test_dependency_graph_prune_of_a_decoder_conv_round_trips(model, tmp_path):
    tp = pytest.importorskip("torch_pruning")
    x = torch.randn(1, 3, 65, 97)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=x)
    group = graph.get_pruning_group(model.decoder.fuse[0][0], tp.prune_conv_out_channels, idxs=[0, 3, 5])
    assert graph.check_pruning_group(group)
    group.prune()
    assert channel_overrides_of(model) == {
        "decoder.fuse.0.0": {"type": "Conv2d", "in_channels": 16 + 48 + 96, "out_channels": 13, "groups": 1},
        "decoder.fuse.0.1": {"type": "BatchNorm2d", "num_features": 13},
        "decoder.fuse.1.0": {"type": "Conv2d", "in_channels": 13, "out_channels": 16, "groups": 1},
    }
    save_checkpoint(tmp_path / "p.safetensors", model)
    loaded, info = load_checkpoint(tmp_path / "p.safetensors")
    assert len(info["config"]["channel_overrides"]) == 3
    x = torch.randn(2, 3, 65, 97)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_apply_overrides_keeps_geometry_and_handles_linear():
    net = nn.Sequential(nn.Conv2d(4, 8, 3, stride=2, padding=2, dilation=2, bias=False), nn.Flatten(), nn.Linear(8, 3))
    apply_channel_overrides(net, {"0": {"type": "Conv2d", "in_channels": 4, "out_channels": 6, "groups": 2},
                                  "2": {"type": "Linear", "in_features": 6, "out_features": 3}})
    conv = net[0]
    assert (conv.out_channels, conv.groups, conv.stride, conv.padding, conv.dilation) == (6, 2, (2, 2), (2, 2), (2, 2))
    assert conv.bias is None and net[2].in_features == 6


@pytest.mark.parametrize(("overrides", "message"), [
    ({"decoder.nope": {"type": "Conv2d"}}, "names 'decoder.nope', which is not a Conv2d/BatchNorm2d/Linear"),
    ({"decoder.fuse": {"type": "Conv2d"}}, "names 'decoder.fuse', which is not"),
    ({"decoder.classifier": {"type": "BatchNorm2d", "num_features": 3}}, "does not describe a Conv2d"),
    ({"decoder.classifier": {"type": "Conv2d", "in_channels": 15, "out_channels": 4, "groups": 2}}, "cannot be built"),
])
def test_bad_overrides(model, overrides, message):
    with pytest.raises(ConfigError, match=message):
        apply_channel_overrides(model, overrides)


def test_structural_edits_cannot_be_saved(model):
    model.decoder.extra = nn.Conv2d(1, 1, 1)
    with pytest.raises(ConfigError, match=r"extra \['decoder.extra'\]\): only channel pruning can be saved"):
        channel_overrides_of(model)
