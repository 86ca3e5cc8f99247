"""benchmarks/gpu_check.py: its CPU path runs end to end, and its committed architecture is the half-MACs one."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_architecture_rebuilds_to_half_the_macs_without_torch_pruning():
    from segprune.compress.macs import count_macs

    gpu_check = _load()
    spec = json.loads(gpu_check.ARCHITECTURES.read_text())
    models = gpu_check.build_models("cpu")
    before, after = (count_macs(models[name], (180, 240)).total_macs for name in ("unpruned", "compressed"))
    assert after / before == pytest.approx(spec["compression"]["macs_fraction"], rel=1e-6)
    assert 0.45 < after / before < 0.5 and spec["compression"]["keep_freq"] == 0.75
    assert "torch_pruning" not in json.dumps(spec)


@pytest.mark.slow
def test_cpu_quick_run_writes_both_timings_and_the_speedup_table(tmp_path, capsys):
    gpu_check = _load()
    out = tmp_path / "gpu_cpu.json"
    assert gpu_check.main(["--device", "cpu", "--quick", "--skip-tests", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["schema"] == "segprune.gpu_check/1" and report["quick"] and report["tests"] == {
        "skipped": "--skip-tests"}
    rows = report["measurements"]
    assert {(r["model"], r["variant"]) for r in rows} == {(m, v) for m in ("unpruned", "compressed")
                                                          for v in gpu_check.QUICK_CPU_VARIANTS}
    assert all(r["device_ms"] is None and r["end_to_end_ms"]["runs"] == 3 for r in rows)  # no device time on a CPU
    assert len(report["speedups"]) == 2 and all(s["end_to_end_speedup"] > 0 for s in report["speedups"])
    assert report["tensorrt"] == {"measured": False, "reason": "needs --device cuda"}
    printed = capsys.readouterr().out
    assert "end-to-end p50 ms" in printed and "eager-fp32-cl" in printed
