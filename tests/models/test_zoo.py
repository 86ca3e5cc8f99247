"""The conformance suite over users' own models (SMP's zoo, SMP's decoders, torchvision's), a fast subset.

Each case builds the model tiny, compresses it (truncation where its family allows, channels at
``--scope all``), saves it, reloads it in a fresh process, exports fp32 ONNX with parity and
checks TensorRT's rules (:func:`segprune.conformance.run_case`); or it is refused in one line,
never with an internal error. The subset covers every code path the whole list goes through
(``benchmarks/model_zoo.py`` runs it all and its JSON makes the docs' families table): plain residual
encoders, squeeze-excitation layers narrower than ``--round-to``, a conv the forward never calls,
split-path attention torch-pruning maps wrongly, a transformer that cannot be built on the meta
device, same-padding conv subclasses with LayerNorm, every SMP decoder, torchvision's models.
"""

from __future__ import annotations

import pytest

smp = pytest.importorskip("segmentation_models_pytorch",
                          reason="SMP not installed: pip install 'segprune[smp]' (make test installs it)")
pytest.importorskip("torch_pruning")
pytest.importorskip("onnxruntime")

from segprune.conformance import CaseConfig, run_case, smp_builder  # noqa: E402

CASES = [
    ("DeepLabV3Plus", "resnet18"),
    ("DeepLabV3Plus", "efficientnet-b0"),  # unused conv head, 4-48 channel SE convs
    ("DeepLabV3Plus", "timm-skresnet18"),  # selective-kernel paths: held whole
    ("DeepLabV3Plus", "dpn68"),  # dual-path slices: torch-pruning's indices run past the widths
    ("DeepLabV3Plus", "mit_b0"),  # built for real where the meta device fails; attention held whole
    ("DeepLabV3Plus", "tu-convnext_atto"),  # timm same-padding convs, LayerNorm, layer scale
    ("DeepLabV3Plus", "mobileone_s0"),
    ("Unet", "resnet18"),
    ("FPN", "mobilenet_v2"),
    ("DeepLabV3", "resnet18"),
    ("PSPNet", "resnet18"),
    ("Segformer", "resnet18"),
    ("UnetPlusPlus", "resnet18"),  # no truncation: channels alone
    ("UPerNet", "resnet18"),
    ("DPT", "tu-vit_tiny_patch16_224"),  # a fixed-size ViT: no stride-2/4 path, its own head
]
SIZES = {"DPT": (224, 224)}
CHANNELS_ONLY = ("UnetPlusPlus", "UPerNet", "DPT")
REFUSED = [
    ("DeepLabV3Plus", "vgg11", "build", "SMP cannot build DeepLabV3Plus(encoder_name='vgg11')"),
    ("MAnet", "resnet18", "compress", "SMP MAnet's channels cannot be pruned: torch-pruning's channel grouping"),
    ("PAN", "resnet18", "compress", "the model does not run at 64x64"),
]


@pytest.mark.parametrize(("arch", "encoder"), CASES, ids=[f"{a}-{e}" for a, e in CASES])
def test_an_smp_model_compresses_reloads_and_exports(arch, encoder, tmp_path) -> None:
    result = run_case(smp_builder(arch, encoder), CaseConfig(size=SIZES.get(arch, (64, 64))), workdir=tmp_path)
    assert result["status"] == "ok", result.get("traceback") or result["reason"]
    assert result["truncated"] == (arch not in CHANNELS_ONLY)
    assert result["macs_fraction"] < 0.95 and result["reload_max_abs_diff"] == 0.0
    assert result["export"]["parity_agreement"] >= 0.999 and result["export"]["tensorrt_rules_passed"]


@pytest.mark.parametrize(("arch", "encoder", "stage", "message"), REFUSED, ids=[f"{a}-{e}" for a, e, *_ in REFUSED])
def test_what_cannot_be_supported_is_refused_in_one_line(arch, encoder, stage, message, tmp_path) -> None:
    result = run_case(smp_builder(arch, encoder), CaseConfig(fresh_process=False), workdir=tmp_path)
    assert result["status"] == "refused" and result["stage"] == stage and result["exit_code"] == 2
    assert result["reason"].startswith(message) and "\n" not in result["reason"]


@pytest.mark.parametrize("builder", ["fcn_resnet50", "lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large"])
def test_a_torchvision_model_compresses_reloads_and_exports(builder, tmp_path) -> None:
    from segprune.models.tv import build_tv

    result = run_case(lambda classes: build_tv(builder, classes), CaseConfig(), workdir=tmp_path)
    assert result["status"] == "ok", result.get("traceback") or result["reason"]
    assert result["truncated"] and result["family"] == "torchvision"
    assert result["export"]["parity_agreement"] >= 0.999 and result["export"]["tensorrt_rules_passed"]


def test_the_outcomes_are_counted_with_refusals_split_by_cause() -> None:
    from segprune.conformance import summarize

    rows = [{"status": "ok"}, {"status": "refused", "outside_segprune": True},
            {"status": "refused", "outside_segprune": False}, {"status": "internal-error"}]
    assert summarize(rows) == {"ok": 1, "refused_outside_segprune": 1, "refused_by_segprune": 1, "internal_error": 1}


def test_a_bug_is_reported_as_an_internal_error_with_its_traceback(tmp_path) -> None:
    def broken(classes: int):
        raise KeyError("a bug")

    result = run_case(broken, CaseConfig(fresh_process=False), workdir=tmp_path)
    assert result["status"] == "internal-error" and result["stage"] == "build"
    assert "KeyError" in result["reason"] and "Traceback" in result["traceback"]
