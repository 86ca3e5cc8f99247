"""benchmarks/headline.py and benchmarks/evidence.py: the figures they derive from runs (no training, no clock)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load(name: str):
    sys.path.insert(0, str(REPO / "benchmarks"))  # the benchmarks import their shared camvid_setup
    try:
        spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    return module


VAL = "CamVid val (0016E5)"


def _report(target: float | None, mious: dict[str, list[float]], fraction: float, baseline: str = "base.safetensors",
            original: float = 58.0, split: str = VAL) -> dict:
    """A finetune_budget.py report with the fields the real ones have (see pareto_macs0.33.json)."""
    runs = [{"importance": arm, "seed": seed, "miou": miou, "miou_original": original,
             "macs_fraction": 1.0 if arm == "control" else fraction}
            for seed in range(len(next(iter(mious.values())))) for arm, values in mious.items()
            for miou in [values[seed]]]
    return {"target_macs": target, "runs": runs, "summary": {arm: {} for arm in mious}, "command": "x",
            "config": f"176x240_area_calib32_keep0.75_all_macs{target}_ep8_lr0.0005_kd1", "accuracy_split": split,
            "baseline": baseline, "size": "176x240", "epochs": 8, "lr": 5e-4, "kd": 1.0, "keep_freq": 0.75,
            "scope": "all", "prune_steps": 1, "feature_kd": 0.0}


def test_headline_pairs_rankings_by_seed_and_takes_medians():
    headline = _load("headline")
    reports = [_report(0.5, {"control": [59, 59.5, 60], "spectral-l1": [58, 58.5, 59], "l1": [57, 57, 57]}, 0.49),
               _report(0.33, {"control": [59, 59.5, 60], "spectral-l1": [57, 56, 58], "l1": [55, 57, 56]}, 0.329)]
    point = headline.headline(reports, 0.33, "spectral-l1")
    assert point["miou_median"] == 57 and point["control_median"] == 59.5 and point["baseline_miou"] == 58.0
    assert point["paired"] == {0: 2, 1: -1, 2: 2} and point["macs_fraction"] == pytest.approx(0.329)
    assert headline.headline(reports, 0.25, "spectral-l1") is None
    rows = {(r["target_macs"], r["arm"]): r for r in headline.pareto(reports)}
    assert rows[(0.5, "l1")]["miou_median"] == 57 and rows[(0.33, "spectral-l1")]["miou_min"] == 56
    assert rows[(None, "control")]["macs_fraction"] == 1.0 and rows[(0.5, "spectral-l1")]["seeds"] == [0, 1, 2]
    assert rows[(None, "control")]["miou_runs"] == [59, 59.5, 60]  # one control, shared, not one per target
    assert len(rows) == 5


def test_pareto_points_share_the_control_of_their_baseline_and_budget_only():
    """A target run without --control takes the control of the same baseline and budget; a retrained
    baseline at the same path (another val score) or another budget is not on the curve."""
    headline = _load("headline")
    with_control = _report(0.33, {"control": [59, 60], "spectral-l1": [57, 56], "l1": [55, 57]}, 0.33)
    without = _report(0.25, {"spectral-l1": [54, 53], "l1": [54, 52]}, 0.25)
    point = headline.headline([without, with_control], 0.25, "spectral-l1")
    assert point["control_runs"] == {0: 59, 1: 60} and point["control_median"] == 59.5
    assert headline.mismatch(without, with_control, headline.CURVE_KEYS) is None
    retrained = _report(0.25, {"spectral-l1": [54, 53]}, 0.25, original=57.1)
    assert headline.mismatch(retrained, with_control, headline.CURVE_KEYS) == "baseline_miou 57.1 != 58.0"
    assert headline.headline([retrained, with_control], 0.25, "spectral-l1")["control_runs"] == {}
    longer = {**without, "epochs": 20}
    assert headline.mismatch(longer, with_control, headline.CURVE_KEYS) == "epochs 20 != 8"
    other = _report(0.5, {"control": [58, 60], "l1": [50, 51]}, 0.5)
    with pytest.raises(ValueError, match="two controls for seed 0"):
        headline.pareto([with_control, other])


def test_other_points_are_the_rankings_same_seed_at_every_other_target():
    """The models timed beside the headline: one per other MACs target, same ranking and seed."""
    headline = _load("headline")
    reports = [_report(t, {"spectral-l1": [50, 51], "l1": [50, 51]}, t) for t in (0.5, 0.33, 0.25)]
    for report in reports:
        for run in report["runs"]:
            run["checkpoint"] = f"{report['target_macs']}/{run['importance']}_{run['seed']}"
    reports[2]["runs"][0].pop("checkpoint")  # spectral-l1 seed 0 at 0.25 recorded none
    assert headline.other_points(reports, reports[1], "spectral-l1", 0) == {"macs0.5": "0.5/spectral-l1_0"}
    assert headline.other_points(reports, reports[1], "l1", 1) == {"macs0.5": "0.5/l1_1", "macs0.25": "0.25/l1_1"}


def test_curve_keys_are_fields_of_the_real_reports_and_each_one_separates_curves():
    """A misspelt key would read None on both sides and never separate anything: the committed report
    has every field, and a change in any one of them takes a report off the curve."""
    import json

    headline = _load("headline")
    real = json.loads((REPO / "benchmarks" / "results" / "pareto_macs0.33.json").read_text())
    derived = {"baseline_miou", "mode", "calib_images"}
    assert set(headline.CURVE_KEYS) - derived <= set(real) and derived <= set(headline.CURVE_KEYS)
    assert {k: headline.recipe(real)[k] for k in ("mode", "calib_images")} == {"mode": "area", "calib_images": "32"}
    base = _report(0.33, {"spectral-l1": [57]}, 0.33)
    for key in set(headline.CURVE_KEYS) - derived:
        assert headline.mismatch({**base, key: "other"}, base, headline.CURVE_KEYS).startswith(f"{key} other != ")
    assert headline.recipe(real)["protect"] == []  # absent before --protect: uniform widths
    spared = {**base, "protect": ["decoder.project"]}  # on the curve, as its own arm
    assert headline.mismatch(spared, base, headline.CURVE_KEYS) is None
    assert headline.arm_name("l1", spared) == "l1, protect decoder.project" and headline.arm_name("l1", base) == "l1"
    bilinear = {**base, "config": base["config"].replace("area", "bilinear")}
    assert headline.mismatch(bilinear, base, headline.CURVE_KEYS) == "mode bilinear != area"
    absolute = {**base, "baseline": str(REPO / "base.safetensors")}  # the same file, written absolute
    rescored = _report(0.33, {"spectral-l1": [57]}, 0.33, original=58.0 + 1e-9)
    assert headline.mismatch(absolute, base, headline.CURVE_KEYS) is None
    assert headline.mismatch(rescored, base, headline.CURVE_KEYS) is None


def test_a_protected_headline_is_its_own_arm_and_pairs_the_rankings_on_the_uniform_report():
    """With layers protected both rankings may give one model, so spectral-l1 minus L1 comes from the
    uniform-width report at the same target, and the protected runs are paired against each uniform ranking."""
    headline = _load("headline")
    uniform = _report(0.33, {"control": [59, 60], "spectral-l1": [55, 54], "l1": [56, 55]}, 0.33)
    spared = {**_report(0.33, {"spectral-l1": [57, 55]}, 0.328), "protect": ["backbone.layer1", "backbone.conv1"]}
    low = _report(0.25, {"spectral-l1": [53, 52]}, 0.25)
    paths = {Path("u.json"): uniform, Path("p.json"): spared, Path("l.json"): low}
    reports = headline.select_curve(paths, 0.33, explicit=True, protect=["backbone.conv1", "backbone.layer1"])
    assert len(reports) == 3  # two reports at 0.33, told apart by what they protect
    point = headline.headline(reports, 0.33, "spectral-l1", ["backbone.conv1", "backbone.layer1"])
    assert point["report"] is spared and point["miou_runs"] == {0: 57, 1: 55} and point["control_median"] == 59.5
    assert point["paired"] == {0: -1, 1: -1}  # from the uniform report, not the protected one
    assert point["over_uniform"] == {"spectral-l1": {0: 2, 1: 1}, "l1": {0: 1, 1: 0}}
    assert headline.headline(reports, 0.33, "spectral-l1")["over_uniform"] == {}
    rows = {r["arm"]: r for r in headline.pareto(reports) if r["target_macs"] == 0.33}
    assert rows["spectral-l1, protect backbone.conv1+backbone.layer1"]["miou_median"] == 56
    assert rows["spectral-l1"]["miou_median"] == 54.5 and len(rows) == 3
    assert [headline.point_name(r) for r in reports] == ["macs0.33", "macs0.33_protect", "macs0.25"]
    with pytest.raises(ValueError, match="no Pareto run has target 0.33 protecting decoder.project"):
        headline.select_curve(paths, 0.33, explicit=True, protect=["decoder.project"])
    with pytest.raises(ValueError, match="u.json and v.json are both at target 0.33 with the same protected"):
        headline.select_curve({**paths, Path("v.json"): dict(uniform)}, 0.33, explicit=True)


def test_a_longer_budget_headline_pairs_the_rankings_on_the_named_budgets_uniform_report():
    """--ranking-from: a 16-epoch protected headline has no uniform-width runs of its own; the pairs come from
    the 8-epoch uniform report of the same baseline, size and scope, and the JSON says from which budget."""
    headline = _load("headline")
    spared = {**_report(0.33, {"control": [59, 61], "spectral-l1": [58, 57]}, 0.32), "epochs": 16,
              "keep_freq": 1.0, "protect": ["backbone.conv1"]}
    point = headline.headline([spared], 0.33, "spectral-l1", ["backbone.conv1"])
    assert point["paired"] == {} and point["control_median"] == 60
    short = _report(0.33, {"control": [58, 59], "spectral-l1": [55, 54], "l1": [56, 53]}, 0.33)
    elsewhere = headline.ranking_elsewhere(point, [short], 0.33)
    assert elsewhere["paired"] == {0: -1, 1: 1} and elsewhere["l1_runs"] == {0: 56, 1: 53}
    assert elsewhere["paired_from"] == {"command": "x", "keep_freq": 0.75, "epochs": 8}
    with pytest.raises(ValueError, match="no --ranking-from report has target 0.33 at uniform widths"):
        headline.ranking_elsewhere(point, [{**short, "protect": ["backbone.conv1"]}], 0.33)
    with pytest.raises(ValueError, match=r"ranks another model \(size 90x120 != 176x240\)"):
        headline.ranking_elsewhere(point, [{**short, "size": "90x120"}], 0.33)
    with pytest.raises(ValueError, match="no seed run with both spectral-l1 and l1"):
        headline.ranking_elsewhere(point, [_report(0.33, {"spectral-l1": [55]}, 0.33)], 0.33)
    own = headline.headline([short], 0.33, "spectral-l1")
    with pytest.raises(ValueError, match="pairs spectral-l1 against L1 at its target: drop --ranking-from"):
        headline.ranking_elsewhere(own, [short], 0.33)


def test_the_loss_goal_counts_only_over_three_seeds_of_the_model_and_of_the_control():
    headline = _load("headline")
    summary = {"macs_fraction": 0.323, "miou_runs": {0: 55.2, 1: 53.6, 2: 55.8}, "control_runs": {0: 56.2, 1: 55.6},
               "loss_vs_control": 0.7, "paired_spectral_minus_l1": {0: 1.2, 1: 1.1}, "paired_mean": 1.15}
    assert headline.accuracy_goals(summary) == {"macs_fraction": True, "within_1_of_control": False,
                                                "paired_spectral_minus_l1": False}
    summary |= {"control_runs": {0: 56.2, 1: 55.6, 2: 55.9}, "paired_spectral_minus_l1": {0: 1.2, 1: 1.1, 2: 0.8}}
    assert headline.accuracy_goals(summary) == {"macs_fraction": True, "within_1_of_control": True,
                                                "paired_spectral_minus_l1": True}
    assert not headline.accuracy_goals({**summary, "loss_vs_control": 1.01})["within_1_of_control"]
    assert not headline.accuracy_goals({**summary, "macs_fraction": 0.34})["macs_fraction"]


def test_curve_selection_refuses_two_reports_at_one_target_and_reports_without_one(tmp_path, capsys):
    headline = _load("headline")
    a, b = _report(0.33, {"spectral-l1": [57]}, 0.33), _report(0.33, {"spectral-l1": [56]}, 0.33)
    with pytest.raises(ValueError, match="2 reports at target 0.33"):
        headline.select_curve({Path("a.json"): a, Path("b.json"): b}, 0.33, explicit=False)
    low = _report(0.25, {"spectral-l1": [54]}, 0.25)
    with pytest.raises(ValueError, match="a.json and c.json are both at target 0.25 with the same"):
        headline.select_curve({Path("a.json"): low, Path("b.json"): a, Path("c.json"): dict(low)}, 0.33, True)
    ratio = _report(None, {"spectral-l1": [50]}, 0.4)  # a --channel-ratio run: no MACs target
    with pytest.raises(ValueError, match=r"r.json is not on the headline's curve \(no --target-macs\)"):
        headline.select_curve({Path("b.json"): a, Path("r.json"): ratio}, 0.33, explicit=True)
    assert headline.select_curve({Path("b.json"): a, Path("r.json"): ratio}, 0.33, explicit=False) == [a]
    assert "leaving out r.json: no --target-macs" in capsys.readouterr().err
    held = _report(0.33, {"spectral-l1": [51]}, 0.31, baseline="without.safetensors", split=VAL + "; held_out: x")
    assert headline.select_curve({Path("h.json"): held, Path("b.json"): a}, 0.33, explicit=False) == [a]
    with pytest.raises(ValueError, match="no spectral-l1 runs: pass --ranking one of l1"):
        headline.headline([_report(0.33, {"l1": [50]}, 0.33)], 0.33, "spectral-l1")


def test_headline_cli_leaves_out_reports_of_another_baseline_or_refuses_them_when_named(tmp_path, capsys,
                                                                                       monkeypatch):
    """The default glob also finds the held-out video's report (another baseline): it is left out of the
    curve, with a line saying why; named with --pareto, it is refused before any export."""
    import json

    headline = _load("headline")
    mine = tmp_path / "pareto_macs0.33.json"
    mine.write_text(json.dumps(_report(0.33, {"control": [59, 60], "spectral-l1": [57, 56]}, 0.33)))
    held = tmp_path / "pareto_macs0.33_without_0006R0.json"
    held.write_text(json.dumps(_report(0.33, {"control": [55, 56], "spectral-l1": [51, 52]}, 0.31,
                                       baseline="without.safetensors", original=55.3, split=VAL + "; held_out")))
    assert headline.main(["--pareto", str(mine), str(held), "--out", str(tmp_path / "h.json")]) == 2
    assert "is not on the headline's curve (baseline without.safetensors != base.safetensors)" in \
        capsys.readouterr().err
    monkeypatch.setattr(headline, "RESULTS", tmp_path)
    assert headline.main(["--out", str(tmp_path / "h.json")]) == 2  # its runs recorded no checkpoint
    err = capsys.readouterr().err
    assert "leaving out pareto_macs0.33_without_0006R0.json: baseline" in err and "recorded its checkpoint" in err
    assert headline.main(["--seed", "7", "--out", str(tmp_path / "h.json")]) == 2
    assert "has no spectral-l1 run with seed 7: pass --seed one of [0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "h.json").exists()
    (tmp_path / "pareto_macs0.25.json").write_text(json.dumps(_report(0.25, {"spectral-l1": [54, 55]}, 0.25)))
    assert headline.main(["--curve-only", "--out", str(tmp_path / "curve.json")]) == 0  # no checkpoint needed
    curve = json.loads((tmp_path / "curve.json").read_text())
    assert curve["control_runs"] == {"0": 59, "1": 60} and "speedup_ort_fp32" not in curve
    assert sorted((r["target_macs"] or 1, r["miou_median"]) for r in curve["pareto"]) == [(0.25, 54.5), (0.33, 56.5),
                                                                                          (1, 59.5)]
    assert (tmp_path / "curve.png").stat().st_size > 0 and set(curve["goals"]) == {
        "macs_fraction", "within_1_of_control", "paired_spectral_minus_l1"}


def test_headline_cli_times_every_target_it_has_a_model_for_and_puts_the_speed_on_its_row(tmp_path, monkeypatch):
    """The glue between the timed models and the curve's rows, with the export and timing stubbed out."""
    import json

    headline = _load("headline")
    reports = {0.33: _report(0.33, {"control": [59, 60], "spectral-l1": [57, 56], "l1": [56, 56]}, 0.33),
               0.25: _report(0.25, {"spectral-l1": [54, 55], "l1": [53, 55]}, 0.25),
               0.5: _report(0.5, {"spectral-l1": [58, 58]}, 0.5)}
    (tmp_path / "base.safetensors").write_bytes(b"")
    for target, report in reports.items():
        for run in report["runs"]:
            run["checkpoint"] = f"m{target}_{run['importance']}_{run['seed']}.safetensors"
        (tmp_path / f"m{target}_spectral-l1_0.safetensors").write_bytes(b"")
        (tmp_path / f"pareto_macs{target}.json").write_text(json.dumps(report))
    (tmp_path / "m0.5_spectral-l1_0.safetensors").unlink()  # not on this machine: not timed
    seen = {}

    def fake(baseline, model, data, size, sizes, args, others):
        seen.update(model=model.name, others=sorted(others))
        return {"summary": {"int8_miou": 56.9, "fp32_onnx_miou": 57.0, "int8_delta_miou": -0.1,
                            "speedup_ort_fp32": {"360x480": 2.4}, "p50_ms": {},
                            "pareto_speedup_ort_fp32": {"macs0.25": {"360x480": 3.1}}}, "runs": {}}

    monkeypatch.setattr(headline, "RESULTS", tmp_path)
    monkeypatch.setattr(headline, "ROOT", tmp_path)
    monkeypatch.setattr(headline, "measure_deployment", fake)
    assert headline.main(["--out", str(tmp_path / "h.json")]) == 0
    assert seen == {"model": "m0.33_spectral-l1_0.safetensors", "others": ["macs0.25"]}
    out = json.loads((tmp_path / "h.json").read_text())
    speed = {(r["target_macs"], r["arm"]): r.get("speedup_ort_fp32") for r in out["pareto"]}
    assert speed[(0.33, "spectral-l1")] == {"360x480": 2.4} and speed[(0.25, "spectral-l1")] == {"360x480": 3.1}
    assert speed[(0.5, "spectral-l1")] is None and speed[(0.25, "l1")] is None
    assert out["goals"]["speedup_ort_fp32"] is False and out["goals"]["int8_within_0.5"] is True
    assert out["deployment_from"] is None
    (tmp_path / "m0.33_spectral-l1_0.safetensors").unlink()  # the run cache is gone: only h.json holds the timing
    assert headline.main(["--out", str(tmp_path / "again.json")]) == 2
    monkeypatch.setattr(headline, "measure_deployment", lambda *a: pytest.fail("taken from h.json, not measured"))
    assert headline.main(["--out", str(tmp_path / "again.json"), "--deployment-from", str(tmp_path / "h.json")]) == 0
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["speedup_ort_fp32"] == {"360x480": 2.4} and again["int8_delta_miou"] == -0.1
    assert again["pareto"] == out["pareto"] and again["goals"] == out["goals"]
    assert again["deployment_from"]["report"] == "h.json"  # relative to the repository, as every path in the JSON


def test_evidence_medians_pair_the_claim_with_its_control_by_seed():
    evidence = _load("evidence")
    runs = [{"arm": "ce", "seed": 0, "miou": 50.0}, {"arm": "ce", "seed": 1, "miou": 52.0},
            {"arm": "recall", "seed": 1, "miou": 51.0}, {"arm": "recall", "seed": 0, "miou": 53.0}]
    out = evidence._medians(runs, ["ce", "recall"], ("miou",))
    assert out["ce_miou_median"] == 51.0 and out["recall_miou_runs"] == [51.0, 53.0]
    assert out["miou_paired_delta"] == {1: -1.0, 0: 3.0}


@pytest.mark.slow
def test_evidence_arms_run_end_to_end_on_tiny_data(tiny_checkpoint, tmp_path, monkeypatch):
    """The fine-tuning and from-scratch claims run through the library on synthetic scenes, are cached, and
    self-regulation leaves the deployed graph as it was."""
    import torch

    from tests.helpers import TINY_DATA

    torch.set_num_threads(1)
    evidence = _load("evidence")
    monkeypatch.setattr(evidence, "CACHE", tmp_path)
    data = TINY_DATA.format(n=8, n_val=3)
    sr = evidence.finetune_claim("sr", data, tiny_checkpoint, (32, 48), [0], 1, 1e-3)
    assert [r["arm"] for r in sr["runs"]] == ["ce", "sr"] and set(sr["summary"]["miou_paired_delta"]) == {0}
    assert sr["summary"]["deployed_unchanged"] == {"macs": True, "onnx_graph": True}
    recall = evidence.finetune_claim("recall", data, tiny_checkpoint, (32, 48), [0], 1, 1e-3)
    assert recall["runs"][0] == sr["runs"][0]  # the CE control is shared, taken from the cache
    assert set(recall["summary"]["rare_class_recall"]) == {"ce", "recall"}
    assert recall["runs"][1]["arm"] == "recall" and set(recall["runs"][1]["per_class_acc"]) == set(
        recall["runs"][0]["per_class_iou"])
    atrous = evidence.scratch_claim("atrous", data, (32, 48), [0], 1)
    rates = atrous["summary"]["rates"]
    assert rates["control"] != rates["atrous"] and atrous["summary"]["erf"]["atrous"]["radius_90"] > 0
    blocks = evidence.scratch_claim("blocks", data, (32, 48), [0], 1)
    assert blocks["runs"][0] == atrous["runs"][0]  # the from-scratch control is shared, taken from the cache
    assert blocks["runs"][1]["block"] == 8 and set(blocks["summary"]["miou_paired_delta"]) == {0}


def test_budget_schedule_runs_every_control_seed_asked_for():
    """--control-seeds 0,1,2 with --seeds 0,1 ran two controls, silently, before the schedule took their union;
    fewer control seeds than --seeds (the control is the costliest run) must still leave the others out."""
    budget = _load("finetune_budget")
    arms = ["control", "spectral-l1", "l1"]
    assert budget.schedule(arms, [0, 1], [0, 1, 2]) == [
        (0, "control"), (0, "spectral-l1"), (0, "l1"), (1, "control"), (1, "spectral-l1"), (1, "l1"), (2, "control")]
    assert budget.schedule(arms, [0, 1, 2], [0]) == [
        (0, "control"), (0, "spectral-l1"), (0, "l1"), (1, "spectral-l1"), (1, "l1"), (2, "spectral-l1"), (2, "l1")]
    assert budget.schedule(["l1"], [1, 0], []) == [(0, "l1"), (1, "l1")]


def test_plot_runs_draws_every_arm_and_the_goal_line(tmp_path, monkeypatch):
    """finetune_budget's plot, now the shared plot_runs: one column per arm, each seed a point, the lines named."""
    import segprune.plots

    budget = _load("finetune_budget")
    drawn = []
    monkeypatch.setattr(segprune.plots, "_save", lambda fig, path: drawn.append((fig, path)))
    report = _report(0.33, {"control": [59, 59.5, 60], "spectral-l1": [57, 56, 58], "l1": [55, 57, 56]}, 0.329)
    report.update(config="toy", epochs=2, summary={"control": {"miou_median": 59.5}, "spectral-l1": {}, "l1": {}})
    budget._plot(report, tmp_path / "p.png")
    (fig, path), = drawn
    ax = fig.axes[0]
    assert path == tmp_path / "p.png"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["control", "spectral-l1", "l1"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["baseline (not fine-tuned) 58.00",
                                                                    "control median - 1 (the goal) 58.50"]
    points = sorted(tuple(p) for c in ax.collections if c.get_offsets().shape == (3, 2) for p in c.get_offsets())
    assert len(points) == 9 and points[0] == (0.0, 59.0) and points[-1] == (2.0, 57.0)


def test_budget_plot_draws_the_held_out_video_beside_val(tmp_path, monkeypatch):
    """finetune_budget --held-out: a second plot of the same runs on the unseen video, its own references."""
    import segprune.plots

    budget = _load("finetune_budget")
    drawn = []
    monkeypatch.setattr(segprune.plots, "_save", lambda fig, path: drawn.append((fig, path)))
    report = _report(0.33, {"control": [59, 59.5, 60], "l1": [55, 57, 56]}, 0.329)
    for run in report["runs"]:
        run.update(miou_held_out=run["miou"] - 20, miou_original_held_out=36.0)
    report.update(config="toy", epochs=2, summary={"control": {}, "l1": {}})
    budget._plot(report, tmp_path / "p.png", "0006R0")
    assert [path.name for _, path in drawn] == ["p.png", "p_held_out.png"]
    ax = drawn[1][0].axes[0]
    assert "0006R0" in ax.get_ylabel()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["baseline (not fine-tuned) 36.00",
                                                                    "control median - 1 (the goal) 38.50"]
    points = sorted(tuple(p) for c in ax.collections if c.get_offsets().shape == (3, 2) for p in c.get_offsets())
    assert points[0] == (0.0, 39.0) and points[-1] == (1.0, 37.0)


@pytest.mark.slow
def test_export_camvid_exports_each_precision_with_its_manifest(tiny_checkpoint, tmp_path):
    """The export both deployment.py and headline.py call: calibrated on train, checked on val."""
    from segprune.models import load_checkpoint
    from tests.helpers import TINY_DATA

    setup = _load("camvid_setup")
    model, _ = load_checkpoint(tiny_checkpoint)
    manifest = setup.export_camvid(model, tmp_path / "x", (32, 48), ("fp32", "int8"), TINY_DATA.format(n=8, n_val=3),
                                   {"checkpoint": str(tiny_checkpoint)})
    assert (tmp_path / "x" / "model.fp32.onnx").is_file() and (tmp_path / "x" / "model.int8.onnx").is_file()
    assert manifest["source"]["checkpoint"] == str(tiny_checkpoint)


@pytest.mark.slow
def test_compress_run_scores_a_held_out_split_beside_val(tiny_checkpoint, tmp_path):
    """finetune_budget --held-out: the baseline and the result are scored on the held-out split too. Here the
    held-out split is val itself, so its scores must equal the val stages'."""
    import torch

    from segprune.compress import CompressConfig
    from segprune.train import FinetuneConfig
    from tests.helpers import TINY_DATA

    torch.set_num_threads(1)
    setup = _load("camvid_setup")
    report = setup.compress_run(TINY_DATA.format(n=8, n_val=3), tiny_checkpoint, (32, 48),
                                CompressConfig(target_macs=0.8, importance="l1", scope="all", round_to=2),
                                FinetuneConfig(epochs=1, crop_size=(32, 48), input_size=(32, 48), kd=1.0),
                                tmp_path / "run", calib_images=4, train_split="train", held_out="val")
    stages = {s["stage"]: s for s in report["stages"]}
    assert report["held_out"]["split"] == "val" and report["train_split"] == "train"
    assert report["held_out"]["original"]["miou"] == pytest.approx(stages["original"]["miou"])
    assert report["held_out"]["fine-tuned"]["miou"] == pytest.approx(stages["fine-tuned"]["miou"])
    assert setup.cached_report(tmp_path / "run")["held_out"] == report["held_out"]
    reused = setup.cached_report(tmp_path / "run", Path(tiny_checkpoint))  # same weights: reused
    assert reused is not None and reused["checkpoint_sha256"] == report["checkpoint_sha256"]


def test_a_cached_run_of_other_baseline_weights_at_the_same_path_is_redone(tmp_path, capsys):
    """The run folder is named by the recipe, not the weights: a retrained baseline must not reuse old runs."""
    import json

    setup = _load("camvid_setup")
    baseline = tmp_path / "last.safetensors"
    baseline.write_bytes(b"first weights")
    run = tmp_path / "run"
    run.mkdir()
    from segprune.io import file_sha256

    (run / "report.json").write_text(json.dumps({"checkpoint_sha256": file_sha256(baseline), "stages": []}))
    assert setup.cached_report(run, baseline) is not None
    baseline.write_bytes(b"retrained weights")
    assert setup.cached_report(run, baseline) is None
    assert "run from other weights than" in capsys.readouterr().err
    (run / "report.json").write_text(json.dumps({"stages": []}))  # recorded before the digest was kept
    assert setup.cached_report(run, baseline) is not None
    assert "its baseline cannot be checked" in capsys.readouterr().err


@pytest.mark.slow
def test_camvid_baseline_finishing_stage_starts_from_the_first_and_scores_at_its_size(tmp_path, monkeypatch):
    """--finish-size: the second stage fine-tunes the cached first stage, is scored at its own size on val and
    the held-out video, and both stages are reused when the recipe is unchanged."""
    import json

    import torch

    import segprune.train
    from segprune.models import load_checkpoint
    from tests.data.conftest import camvid_tree

    torch.set_num_threads(1)
    baseline = _load("camvid_baseline")
    starts, fit = [], segprune.train.fit

    def recording_fit(model, *args, **kwargs):
        starts.append({k: v.clone() for k, v in model.state_dict().items()})
        return fit(model, *args, **kwargs)

    monkeypatch.setattr(segprune.train, "fit", recording_fit)
    frames = {"train": [f"0001TP_{i:06d}" for i in range(4)] + [f"0006R0_{i:06d}" for i in range(2)],
              "val": [f"0016E5_{i:06d}" for i in range(2)]}
    root = camvid_tree(tmp_path / "camvid", frames, size=(36, 48))
    argv = ["--camvid", str(root), "--size", "32x48", "--epochs", "1", "--batch-size", "2", "--held-out", "0006R0",
            "--cache", str(tmp_path / "cache" / "r18"), "--out", str(tmp_path / "base.json"), "--threads", "1",
            "--finish-size", "48x64", "--finish-epochs", "1"]
    assert baseline.main(argv) == 0
    report = json.loads((tmp_path / "base.json").read_text())
    assert [s["input_size"] for s in report["stages"]] == [[32, 48], [48, 64]]
    assert report["data"]["input_resolution"] == [48, 64] and report["held_out"]["split"] == "video-0006R0"
    assert report["data"]["train_split"] == "train-without-0006R0" and report["data"]["train_images"] == 4
    first, second = tmp_path / "cache" / "r18" / "last.safetensors", tmp_path / "cache" / "r18_finish48x64_ep1"
    assert json.loads((second / "recipe.json").read_text())["finish"]["crop_size"] == [48, 64]
    trained = load_checkpoint(first)[0].state_dict()
    assert len(starts) == 2 and all(torch.equal(starts[1][k], trained[k]) for k in trained)
    stamps = first.stat().st_mtime_ns, (second / "last.safetensors").stat().st_mtime_ns
    assert baseline.main(argv) == 0  # same recipe: both stages come from the cache
    assert (first.stat().st_mtime_ns, (second / "last.safetensors").stat().st_mtime_ns) == stamps
    assert len(starts) == 2
    assert json.loads((tmp_path / "base.json").read_text())["val"] == report["val"]
    with pytest.raises(SystemExit):
        baseline.main(argv[:-2])  # --finish-size without --finish-epochs


def test_budget_reuse_goes_on_from_the_reports_runs_of_the_same_baseline_weights(tmp_path, monkeypatch, capsys):
    """The run cache is not committed: on a new machine, --reuse takes the runs the --out report holds for
    the same recipe and baseline weights and runs only the missing seeds; other weights redo everything,
    and a report older than the digest is matched by the baseline's val mIoU."""
    import json

    budget = _load("finetune_budget")
    done = []

    def fake_run(spec, baseline, size, compression, finetuning, out, *args):
        done.append((out.name, finetuning.seed))
        scores = {"miou": 50.0 + len(done), "macc": 60.0, "per_class_iou": {"Sky": 1.0}}
        return {"stages": [{"stage": "original", "gmacs": 4.0, "miou": 55.0},
                           {"stage": "compressed", "gmacs": 2.0, "miou": 40.0},
                           {"stage": "fine-tuned", "gmacs": 2.0, **scores}], "seconds": 1.0}

    monkeypatch.setattr(budget, "compress_run", fake_run)
    monkeypatch.setattr(budget, "_plot", lambda *a: None)
    monkeypatch.setattr(budget, "baseline_val_miou", lambda *a: pytest.fail("the digest decides; no scoring"))
    baseline, out = tmp_path / "last.safetensors", tmp_path / "report.json"
    baseline.write_bytes(b"weights")
    # a size and calibration no real sweep uses, so no run cache of this machine is found
    argv = ["--baseline", str(baseline), "--size", "8x8", "--calib-images", "3", "--target-macs", "0.33",
            "--importances", "l1", "--seeds", "0", "--control", "--reuse", "--out", str(out)]
    assert budget.main([*argv, "--control-seeds", "0,1"]) == 0
    assert done == [("control_seed0", 0), ("l1_seed0", 0), ("control_seed1", 1)]
    first = json.loads(out.read_text())
    assert first["baseline_sha256"]
    done.clear()
    assert budget.main([*argv, "--control-seeds", "0,1,2"]) == 0
    assert done == [("control_seed2", 2)]  # seeds 0 and 1 come from the report
    second = json.loads(out.read_text())
    assert second["summary"]["control"]["miou_runs"] == [*first["summary"]["control"]["miou_runs"], 51.0]
    assert second["runs"][0]["recorded_in"] and "taken from" in capsys.readouterr().err
    older = {k: v for k, v in second.items() if k != "baseline_sha256"}
    out.write_text(json.dumps(older))  # written before the digest was kept: the val mIoU decides
    done.clear()
    monkeypatch.setattr(budget, "baseline_val_miou", lambda *a: 55.0 + 1e-9)
    assert budget.main([*argv, "--control-seeds", "0,1,2"]) == 0
    assert done == []
    out.write_text(json.dumps(older))
    monkeypatch.setattr(budget, "baseline_val_miou", lambda *a: 55.4)  # retrained at the same path
    assert budget.main([*argv, "--control-seeds", "0,1,2"]) == 0
    assert len(done) == 4 and "another val mIoU" in capsys.readouterr().err
    baseline.write_bytes(b"retrained weights")
    done.clear()
    assert budget.main([*argv, "--control-seeds", "0,1,2"]) == 0
    assert len(done) == 4 and "other baseline weights" in capsys.readouterr().err
    done.clear()
    assert budget.main([*argv, "--control-seeds", "0,1,2", "--epochs", "7"]) == 0
    assert len(done) == 4 and "another recipe" in capsys.readouterr().err


def test_a_headline_takes_the_deployment_figures_of_the_same_model_only():
    """--deployment-from: a headline whose control gained a seed keeps the timing and int8 check of its model
    (checkpoint gone with the run cache); another model, or the same path holding another run, is refused."""
    headline = _load("headline")
    figures = {"int8_miou": 55.2, "fp32_onnx_miou": 55.1, "int8_delta_miou": 0.1, "speedup_ort_fp32": {"360x480": 2.9},
               "p50_ms": {"360x480": {"unpruned": 290.0, "headline": 100.0}}, "pareto_speedup_ort_fp32": {}}
    prior = {"model": "cache/run_seed0/model.safetensors", "miou_runs": {"0": 55.19, "1": 53.58}, "command": "c",
             "machine": {"cpu": "AMD EPYC"}, "created": "2026-12-03", "deployment": {"int8": {}}, **figures}
    taken = headline.deployment_elsewhere(prior, "cache/run_seed0/model.safetensors", 0, 55.19, "results/h.json")
    assert taken["summary"] == figures and taken["runs"] == {"int8": {}}
    assert taken["from"] == {"report": "results/h.json", "command": "c", "machine": {"cpu": "AMD EPYC"},
                             "created": "2026-12-03"}
    with pytest.raises(ValueError, match="not this headline's"):
        headline.deployment_elsewhere(prior, "cache/run_seed0/model.safetensors", 0, 54.0, "h.json")  # rerun
    with pytest.raises(ValueError, match="not this headline's"):
        headline.deployment_elsewhere(prior, "cache/run_seed0/model.safetensors", 1, 55.19, "h.json")  # other seed
    with pytest.raises(ValueError, match="not this headline's"):
        headline.deployment_elsewhere(prior, "cache/other/model.safetensors", 0, 55.19, "h.json")
    curve_only = {k: v for k, v in prior.items() if k not in figures}
    with pytest.raises(ValueError, match="--curve-only"):
        headline.deployment_elsewhere(curve_only, "cache/run_seed0/model.safetensors", 0, 55.19, "h.json")
