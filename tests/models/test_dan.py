from tests.models._model_conformance import ModelConformance


class TestDAN(ModelConformance):
    arch = "dan"


def test_aggregates_layer1_and_layer2_and_documents_its_provenance():
    import torch

    from segprune.models import DAN, create_model

    with torch.device("meta"):
        model = create_model("dan_resnet18", 3)
    assert list(model.decoder.project) == ["layer1", "layer2"]
    assert model.decoder.fuse[0][0].in_channels == 256 + 48 + 96
    doc = __import__("segprune.models.dan", fromlist=["x"]).__doc__
    assert "NOT implemented" in doc and "reconstruction" in doc and DAN.__doc__
