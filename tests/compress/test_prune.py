import pytest
import torch

from segprune.compress import PruneConfig, TruncationConfig, count_macs, prune_, truncate_
from segprune.compress.scope import fine_path, resolve_protect
from segprune.errors import ConfigError
from segprune.models import load_checkpoint, save_checkpoint
from tests.compress.conftest import HEIGHT, WIDTH, small_model

pytest.importorskip("torch_pruning")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "give exactly one of --channel-ratio"),
    ({"channel_ratio": 0.5, "target_macs": 0.5}, "give exactly one of --channel-ratio"),
    ({"channel_ratio": 1.0}, r"--channel-ratio 1.0 is outside \[0, 1\)"),
    ({"channel_ratio": -0.1}, r"--channel-ratio -0.1 is outside \[0, 1\)"),
    ({"target_macs": 0.0}, r"--target-macs 0.0 is outside \(0, 1\]"),
    ({"channel_ratio": 0.5, "importance": "fisher"}, "--importance 'fisher' is not valid"),
    ({"channel_ratio": 0.5, "scope": "encoder"}, "--scope 'encoder' is not valid: use one of decoder, head, all"),
    ({"channel_ratio": 0.5, "round_to": 0}, "--round-to 0 is not valid"),
    ({"channel_ratio": 0.5, "keep_freq": 0.0}, r"--keep-freq 0.0 is outside \(0, 1\]"),
])
def test_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        PruneConfig(**kwargs)


def test_a_layer_too_narrow_for_the_ratio_keeps_round_to_channels_and_the_rest_go_on(example):
    """torch-pruning would round 16 * 0.4 = 6 channels down to 0 at --round-to 8 and empty the layer;
    the layer keeps 8 instead and the wider ones take the whole ratio."""
    model = small_model(decoder_channels=64)
    wide = model.decoder.fuse[0][0].out_channels
    prune_(model, PruneConfig(channel_ratio=0.6, importance="l1"), example)
    assert model.decoder.project[0].out_channels == 8
    assert model.decoder.fuse[0][0].out_channels == int(wide * 0.4) // 8 * 8 == 24
    with torch.no_grad():
        assert model(example).shape[1] == model.config.num_classes
    narrow = small_model()
    with pytest.raises(ConfigError, match=r"--channel-ratio 0.5 removes no channel: every prunable layer has fewer "
                                          r"than 2 x --round-to 64 channels; use a smaller --round-to"):
        prune_(narrow, PruneConfig(channel_ratio=0.5, importance="l1", round_to=64), example)


def test_user_errors_name_the_limit(example):
    model = small_model()
    with pytest.raises(ConfigError, match=r"--target-macs 0.10 of the MACs is below the 0.\d\d that the backbone, "
                                          r"ASPP and classifier cost with --scope decoder; use --scope head or "
                                          r"--scope all or a target >= \d.\d\d"):
        prune_(model, PruneConfig(target_macs=0.1, importance="l1", keep_freq=0.5), example)
    with pytest.raises(ConfigError, match=r"--importance spectral-l1 needs calibration batches .*--calib-images N"):
        prune_(model, PruneConfig(channel_ratio=0.5, keep_freq=0.5), example)
    with pytest.raises(ConfigError, match="Sequential has no segprune adapter"):
        prune_(torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1)), PruneConfig(channel_ratio=0.5), example)
    assert model.decoder.project[0].out_channels == 16  # nothing was cut, nor truncated
    assert model.decoder.keep == model.config.decoder_keep == 1.0


def _kill(block: torch.nn.Module, channels: slice) -> None:
    """Make ``channels`` of a ConvBNReLU output exactly zero (BN scale 0, shift -1, then ReLU)."""
    with torch.no_grad():
        block[1].weight[channels] = 0.0
        block[1].bias[channels] = -1.0


@pytest.mark.parametrize("arch", ["deeplabv3plus_resnet18", "dan_resnet18"])
def test_spectral_cuts_dead_channels_exactly_through_the_concat(arch, example, calib):
    """Dead channels have zero energy: pruning them (through truncation and the concat) changes nothing."""
    model = small_model(arch)
    truncate_(model, TruncationConfig(0.5, "spectral"))
    projections = list(model.decoder.project.values()) if arch.startswith("dan") else [model.decoder.project]
    for block in [*projections, *model.decoder.fuse]:
        _kill(block, slice(3, 11))
    with torch.no_grad():
        before = model(example)
    result = prune_(model, PruneConfig(channel_ratio=0.5, importance="spectral", round_to=8), example, calib)
    assert all(after == 8 for _, after in result.channels.values())
    with torch.no_grad():
        assert torch.allclose(model(example), before, atol=1e-5)


@pytest.mark.parametrize(("arch", "mode"), [("deeplabv3plus_resnet18", "spectral"), ("dan_resnet18", "area")])
def test_truncate_prune_save_load(arch, mode, example, calib, tmp_path):
    model = small_model(arch, decoder_resize=mode)
    original = count_macs(model, (HEIGHT, WIDTH))
    result = prune_(model, PruneConfig(channel_ratio=0.5, scope="head", round_to=8, keep_freq=0.5), example, calib)
    assert (model.decoder.keep, model.decoder.resize, model.config.decoder_keep) == (0.5, mode, 0.5)
    assert result.keep_freq == 0.5 and result.macs_before.total_macs == original.total_macs
    assert result.channels["aspp.convs.4.0"] == (16, 8) and result.channels["decoder.fuse.1.0"] == (16, 8)
    assert model.decoder.classifier.out_channels == 3 and model.decoder.classifier.in_channels == 8
    assert result.macs_after.macs["decoder"] < original.macs["decoder"] / 4
    assert result.macs_after.macs["backbone"] == original.macs["backbone"]
    assert model.config.channel_overrides and result.to_dict()["channels"]["aspp.project.0"] == [16, 8]
    save_checkpoint(tmp_path / "p.safetensors", model)
    loaded, info = load_checkpoint(tmp_path / "p.safetensors")
    assert info["config"]["decoder_keep"] == 0.5 and info["config"]["channel_overrides"]
    with torch.no_grad():
        assert torch.equal(loaded(example), model(example))


@pytest.mark.parametrize("importance", ["l1", "l2", "bn", "taylor"])
def test_baselines(importance, example, calib):
    model = small_model()
    result = prune_(model, PruneConfig(channel_ratio=0.5, importance=importance), example, calib)
    assert set(result.channels) == {"decoder.project.0", "decoder.fuse.0.0", "decoder.fuse.1.0"}
    assert all(c == (16, 8) for c in result.channels.values())
    assert all(p.grad is None for p in model.parameters())  # Taylor's gradients are released
    assert not model.training and result.macs_fraction < 1


def test_an_importance_factory_replaces_the_named_one(example):
    """Controls and experiments bring their own ranking; the factory sees the truncated model."""
    import torch_pruning as tp

    seen = []

    class LowestIndexFirst(tp.importance.Importance):
        def __call__(self, group):
            return torch.arange(len(group[0].idxs), dtype=torch.float32)

    def factory(model):
        seen.append(model.decoder.keep)
        return LowestIndexFirst()

    model = small_model()
    original = model.decoder.fuse[1][0].weight.detach().clone()  # 16 filters reading fuse.0's 16 channels
    result = prune_(model, PruneConfig(channel_ratio=0.5, keep_freq=0.5), example, importance=factory)
    assert seen == [0.5] and result.channels["decoder.fuse.1.0"] == (16, 8)
    # lowest index ranks lowest: the last 8 filters survive, reading the last 8 channels of fuse.0
    assert torch.equal(model.decoder.fuse[1][0].weight.detach(), original[8:, 8:])


def test_target_macs_is_met_by_bisection(example):
    model = small_model()
    result = prune_(model, PruneConfig(target_macs=0.5, scope="all", importance="l1", keep_freq=0.5, protect="none"),
                    example)
    assert 0.0 < result.channel_ratio < 1.0
    assert 0.45 < result.macs_fraction <= 0.5  # met, and not by much more than one rounding step
    assert result.channels["backbone.conv1"][1] < 64 and result.channels["decoder.fuse.0.0"] == (16, 8)
    assert all(after % 8 == 0 for _, after in result.channels.values())


def test_protected_layers_keep_their_channels_and_the_rest_meets_the_target(example):
    """Widths per stage: the stride-2/4 path is spared, the other layers are cut harder to meet the same MACs."""
    uniform = prune_(small_model(), PruneConfig(target_macs=0.5, scope="all", importance="l1", keep_freq=0.5,
                                                protect="none"), example)
    model = small_model()
    spared = prune_(model, PruneConfig(target_macs=0.5, scope="all", importance="l1", keep_freq=0.5,
                                       protect="backbone.conv1, decoder.project"), example)
    assert spared.config.protect == ("backbone.conv1", "decoder.project")
    assert spared.channels["decoder.project.0"] == (16, 16)
    # conv1's channels are the ones layer1's residual adds share: that whole group keeps its 64
    assert spared.channels["backbone.conv1"] == (64, 64) and spared.channels["backbone.layer1.1.conv2"] == (64, 64)
    assert model.decoder.project[0].out_channels == 16 and model.backbone.conv1.out_channels == 64
    assert spared.channel_ratio > uniform.channel_ratio  # the rest pays for what was spared
    assert spared.macs_fraction <= 0.5
    assert spared.channels["backbone.layer4.1.conv2"][1] <= uniform.channels["backbone.layer4.1.conv2"][1]
    assert model(example).shape[-2:] == example.shape[-2:]


def test_protect_fine_names_the_stride_2_and_4_path_from_the_shapes(example):
    """``fine``: the encoder's convs on grids at least as fine as the skip input (stem at stride 2,
    layer1 at stride 4), and the skip projection; not layer2, nor the decoder's fusion convs,
    which run on the same grid at keep 1."""
    model = small_model()
    path = ("backbone.conv1", "backbone.layer1.0.conv1", "backbone.layer1.0.conv2", "backbone.layer1.1.conv1",
            "backbone.layer1.1.conv2", "decoder.project.0")
    assert fine_path(model) == path
    assert fine_path(model, "decoder") == ("decoder.project.0",)  # what of it --scope decoder may prune
    assert resolve_protect(model, "all", ("fine", "aspp.convs.0")) == (*path, "aspp.convs.0")
    named = prune_(small_model(), PruneConfig(target_macs=0.5, scope="all", importance="l1",
                                              protect="backbone.conv1,backbone.layer1,decoder.project"), example)
    fine = prune_(model, PruneConfig(target_macs=0.5, scope="all", importance="l1", protect="fine"), example)
    assert fine.channels == named.channels and fine.channel_ratio == named.channel_ratio
    assert fine.config.protect == ("fine",)  # the report keeps what was asked


def test_scope_all_protects_the_fine_path_unless_told_none(example):
    """Unset, ``protect`` is the scope's default: the stride-2/4 path at --scope all, nothing in the
    narrower scopes; ``none`` is uniform widths, and cannot be mixed with names."""
    default = prune_(small_model(), PruneConfig(target_macs=0.5, scope="all", importance="l1"), example)
    fine = prune_(small_model(), PruneConfig(target_macs=0.5, scope="all", importance="l1", protect="fine"), example)
    assert default.config.protect == ("fine",) and default.channels == fine.channels
    assert default.channels["backbone.conv1"] == (64, 64)
    uniform = PruneConfig(target_macs=0.5, scope="all", protect="none")
    assert uniform.protect == () and PruneConfig(target_macs=0.5, scope="all", protect="").protect == ()
    assert PruneConfig(channel_ratio=0.5).protect == () and PruneConfig(channel_ratio=0.5, scope="head").protect == ()
    with pytest.raises(ConfigError, match=r"--protect none,decoder.project is not valid: 'none' \(uniform widths\)"):
        PruneConfig(channel_ratio=0.5, scope="all", protect="none,decoder.project")


def test_the_floor_counts_the_layers_coupled_to_a_protected_one(example):
    """Protecting the stem keeps every layer1 block's last conv whole too (the residual adds share its
    channels): the floor the error names is what is really left whole, not the stem alone."""
    model = small_model()
    macs = count_macs(model, (HEIGHT, WIDTH))
    coupled = ["backbone.conv1", "backbone.layer1.0.conv2", "backbone.layer1.1.conv2"]
    whole = [n for n in macs.layers if n.startswith("classifier")] + coupled
    floor = sum(macs.layers[n] for n in whole) / macs.total_macs
    stem_only = sum(macs.layers[n] for n in whole if not n.startswith("backbone.layer1")) / macs.total_macs
    assert f"{floor:.2f}" != f"{stem_only:.2f}"  # the test tells the two apart
    with pytest.raises(ConfigError, match=rf"below the {floor:.2f} that the classifier and the --protect layers "
                                          r"\(backbone.conv1, with the layers that share their channels\) cost"):
        prune_(model, PruneConfig(target_macs=floor - 0.01, scope="all", importance="l1", protect="backbone.conv1"),
               example)


def test_protect_is_checked_before_any_change(example):
    model = small_model()
    with pytest.raises(ConfigError, match=r"--protect 'backbone.layer9' names no convolution that --scope all prunes "
                                          r"in DeepLabV3Plus; name modules such as "):
        prune_(model, PruneConfig(channel_ratio=0.5, scope="all", importance="l1", protect="backbone.layer9"), example)
    with pytest.raises(ConfigError, match=r"--protect 'backbone.conv1' names no convolution that --scope decoder"):
        prune_(model, PruneConfig(channel_ratio=0.5, importance="l1", protect=["backbone.conv1"]), example)
    with pytest.raises(ConfigError, match=r"--protect .* is not valid: give module names"):
        PruneConfig(channel_ratio=0.5, protect=[3])
    # the protected layers' MACs join the floor: a target below it names them
    with pytest.raises(ConfigError, match=r"below the 0.\d\d that the classifier and the --protect layers "
                                          r"\(backbone.layer4, with the layers that share their channels\) cost "
                                          r"with --scope all; use fewer --protect layers"):
        prune_(model, PruneConfig(target_macs=0.15, scope="all", importance="l1", keep_freq=0.5,
                                  protect="backbone.layer4"), example)
    assert model.backbone.conv1.out_channels == 64 and model.decoder.keep == 1.0  # nothing cut, nor truncated
