from tests.models._model_conformance import ModelConformance


class TestDeepLabV3Plus(ModelConformance):
    arch = "deeplabv3plus"


def test_matches_the_reference_decoder_written_out():
    """keep = 1 is DeepLabV3+ as published: no resize besides ASPP -> layer1 grid -> input size."""
    import torch
    import torch.nn.functional as F

    from segprune.models import create_model

    torch.manual_seed(0)
    model = create_model("deeplabv3plus_resnet18", 3, aspp_channels=16, decoder_channels=16).eval()
    x = torch.randn(1, 3, 41, 57)
    with torch.no_grad():
        feats = model.backbone(x)
        low = model.decoder.project(feats["layer1"])
        aspp = F.interpolate(model.aspp(feats["layer4"]), size=low.shape[-2:], mode="bilinear", align_corners=False)
        logits = model.decoder.classifier(model.decoder.fuse(torch.cat([aspp, low], 1)))
        expected = F.interpolate(logits, size=(41, 57), mode="bilinear", align_corners=False)
        assert torch.equal(model(x), expected)
