"""benchmarks/model_zoo.py and benchmarks/unet_headline.py: what they derive from their runs (no model, no clock)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench.test_headline import _load

REPO = Path(__file__).resolve().parents[2]


def _zoo_report() -> dict:
    cases = [{"id": "DeepLabV3Plus:resnet18", "group": "encoder", "arch": "DeepLabV3Plus", "encoder": "resnet18",
              "status": "ok", "truncated": True},
             {"id": "DeepLabV3Plus:vgg11", "group": "encoder", "arch": "DeepLabV3Plus", "encoder": "vgg11",
              "status": "refused", "stage": "build", "reason": "SMP cannot build DeepLabV3Plus(encoder_name='vgg11'): no dilation"},
             {"id": "DeepLabV3Plus:vgg13", "group": "encoder", "arch": "DeepLabV3Plus", "encoder": "vgg13",
              "status": "refused", "stage": "build", "reason": "SMP cannot build DeepLabV3Plus(encoder_name='vgg13'): no dilation"},
             {"id": "UnetPlusPlus:resnet18", "group": "decoder", "arch": "UnetPlusPlus", "encoder": "resnet18",
              "status": "ok", "truncated": False, "truncation_refused": "its nested skips fix each grid"},
             {"id": "tv:fcn_resnet50", "group": "torchvision", "arch": "fcn_resnet50", "status": "timeout",
              "reason": "not finished in 10 s"}]
    return {"cases": cases, "counts": {"ok": 2, "refused_outside_segprune": 2, "refused_by_segprune": 0,
                                       "internal_error": 0},
            "not_finished": ["tv:fcn_resnet50"], "case_config": {"size": [64, 64]}, "environment": {"cpu": "Xeon"}}


def test_the_families_table_says_what_works_and_why_the_rest_does_not() -> None:
    text = _load("model_zoo").table(_zoo_report())
    assert "| SMP encoders (DeepLabV3+) | 1: resnet18 | - | vgg11, vgg13 |" in text
    assert "| SMP decoders (resnet18) | 1: DeepLabV3Plus (the encoder rows) | UnetPlusPlus | - |" in text
    assert ("- `DeepLabV3Plus:vgg11`, `DeepLabV3Plus:vgg13` (refused, at build): SMP cannot build "
            "DeepLabV3Plus(encoder_name=E): no dilation") in text
    assert "- `UnetPlusPlus:resnet18` (ok): its nested skips fix each grid" in text
    assert "5 cases at 64x64: 2 ok, 2 refused for a cause outside segprune" in text
    assert "1 not finished" in text


def _assert_readme_quotes(result: str, module: str, begin: str, end: str, render: str, page: str) -> None:
    """The block between ``begin`` and ``end`` in ``page`` (a Markdown file of the repository) is
    ``module.render`` of the committed JSON."""
    path = REPO / "benchmarks" / "results" / result
    if not path.is_file():
        pytest.skip(f"benchmarks/results/{result} not committed")
    bench = _load(module)
    readme = (REPO / page).read_text()
    start, stop = readme.index(getattr(bench, begin)), readme.index(getattr(bench, end)) + len(getattr(bench, end))
    assert readme[start:stop] == getattr(bench, render)(json.loads(path.read_text())), \
        f"{page}'s block from {result} is stale: paste `python benchmarks/{module}.py --table` over it"


def test_the_families_page_table_is_the_committed_json() -> None:
    _assert_readme_quotes("model_zoo.json", "model_zoo", "TABLE_BEGIN", "TABLE_END", "table", "docs/families.md")


def _row(arm: str, seed: int, miou: float, keep: float = 1.0, macs: float = 1.0) -> dict:
    return {"arm": arm, "seed": seed, "miou": miou, "keep_freq": keep, "macs_fraction": macs}


def test_the_unet_summary_pairs_seeds_and_judges_the_goals() -> None:
    headline = _load("unet_headline")
    rows = [_row("control", 0, 55.0), _row("control", 1, 54.0), _row("control", 2, 56.0),
            _row("truncation e0.95", 0, 54.8, 0.4, 0.7), _row("truncation e0.99", 0, 55.1, 0.6, 0.85),
            _row("truncation keep 0.25", 0, 52.0, 0.25, 0.6),
            *[_row("channels 0.33", s, 50.0 + s, 1.0, 0.33) for s in range(3)],
            *[_row("truncation+channels 0.33", s, 51.5 + s, 0.4, 0.33) for s in range(2)]]
    grids = {k: {"decoder.blocks.4": [round(176 * k), round(240 * k)]} for k in (1.0, 0.4, 0.6, 0.25)}
    ceiling = {(176, 240): 99.0, (70, 96): 95.0, (106, 144): 97.0, (44, 60): 90.0}
    out = headline.summarize(rows, {0.95: {"keep_freq": 0.4}, 0.99: {"keep_freq": 0.6}}, ceiling, grids, (0.33,),
                             None)
    e95 = out["truncation_only"]["energy_0.95"]
    assert e95["delta_vs_control_median"] == pytest.approx(-0.2) and e95["macs_fraction"] == 0.7
    assert out["goals"]["truncation_alone_20pct_macs_within_0.5"]["met"]
    pairs = out["paired_trunc_plus_channels_minus_channels"]["0.33"]
    assert [p["seed"] for p in pairs] == [0, 1] and all(p["difference"] == pytest.approx(1.5) for p in pairs)
    assert not out["goals"]["truncation_plus_channels_plus_1_over_channels_at_0.33"]["met"]  # two seeds, not three
    assert [c["keep"] for c in out["keep_curve"]] == [1.0, 0.6, 0.4, 0.25]
    assert [c["predicted_ceiling"] for c in out["keep_curve"]] == [99.0, 97.0, 95.0, 90.0]
    assert not out["goals"]["compressed_le_0.33_within_1_and_2.5x_faster"]["met"]  # no speed measured


def test_the_unet_plan_pairs_every_seed_and_runs_the_smallest_target_first() -> None:
    plan = _load("unet_headline").arms(0.4, 1.0, (0.5, 0.25), (0.33, 0.5), {0.33: 3, 0.5: 2}, 2)
    names = [(arm, seed) for arm, _, seed in plan]
    assert names[:4] == [("control", 0), ("truncation e0.95", 0), ("channels 0.33", 0),
                         ("truncation+channels 0.33", 0)]
    assert ("truncation e0.99", 0) not in names  # its band needs the whole grid: it would be the control
    assert names.index(("channels 0.33", 1)) < names.index(("channels 0.5", 0))
    for target, seeds in ((0.33, 3), (0.5, 2)):
        for seed in range(seeds):
            assert (f"channels {target:g}", seed) in names and (f"truncation+channels {target:g}", seed) in names
    configs = {(arm, seed): cfg for arm, cfg, seed in plan}
    assert configs[("truncation+channels 0.33", 2)].keep_freq == 0.4
    assert configs[("channels 0.33", 2)].keep_freq == 1.0 and configs[("channels 0.33", 2)].target_macs == 0.33
    assert len(names) == len(set(names))


def test_the_unet_readme_block_quotes_the_report() -> None:
    headline = _load("unet_headline")
    rows = [_row("control", 0, 55.0), _row("truncation e0.95", 0, 54.25, 0.403, 0.869),
            _row("channels 0.33", 0, 26.0, 1.0, 0.317), _row("truncation+channels 0.33", 0, 23.5, 0.403, 0.29)]
    grids = {k: {"decoder.blocks.4": [round(176 * k), round(240 * k)]} for k in (1.0, 0.403)}
    summary = headline.summarize(rows, {0.95: {"keep_freq": 0.403}, 0.99: {"keep_freq": 1.0, "input_size_needed":
                                                                              [352, 480]}},
                                 {(176, 240): 99.0, (71, 97): 95.0}, grids, (0.33,), None)
    report = {"baseline_miou": {"val": 54.82, "held_out": 32.31}, "data": {"input_size": [176, 240]},
              "finetune": {"epochs": 4, "lr": 5e-4}, "runs": rows, "deploy": None, "not_run": ["channels 0.33 seed 1"],
              "environment": {"cpu": "Xeon"},
              "bands": {"0.95": {"grid": [66, 88], "decoder_grid": [176, 240], "label_size": [360, 480],
                                 "keep_freq": 0.403, "resolves": True, "held": 0.95},
                        "0.99": {"grid": [200, 260], "decoder_grid": [176, 240], "label_size": [360, 480],
                                 "keep_freq": 1.0, "resolves": False, "held": 0.982}},
              "stage_grids": {f"{k:g}": g for k, g in grids.items()}, **summary}
    text = headline.readme_block(report)
    assert "`--energy 0.95`: the 360x480 train labels need a 66x88 grid; at input 176x240 the U-Net's finest " \
           "decoder grid (176x240) holds it at keep-freq 0.403, a 71x97 grid." in text
    assert "holds 0.982 of that energy, so nothing is truncated" in text
    assert "CamVid val **54.82**" in text and "held-out video 0006R0 **32.31**" in text
    assert "| truncation e0.95 | 0.403 | 86.9% | 54.25 | -0.75 |" in text
    assert "- at 0.33 of the MACs: seed 0: -2.50 (29.0% vs 31.7%)" in text
    assert "| 0.403 | 71x97 | 86.9% | 54.25 | 95.00 |" in text
    assert "`--energy 0.99`: this band needs the whole decoder grid" in text and "352x480 input or larger" in text
    assert "Not run in this session (the plan's rest, `--budget`): channels 0.33 seed 1." in text


def test_the_results_page_unet_block_is_the_committed_json() -> None:
    _assert_readme_quotes("unet_headline.json", "unet_headline", "BLOCK_BEGIN", "BLOCK_END", "readme_block",
                          "docs/results.md")
