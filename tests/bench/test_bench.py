"""segprune bench: one schema for every backend, same mIoU for the same model, side-by-side ratios."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from segprune.bench import BenchSettings, bench, open_runner
from segprune.bench.run import _AsModule
from segprune.errors import BackendError, ConfigError
from tests.helpers import TINY_DATA, run_cli

pytestmark = pytest.mark.slow
DATA = TINY_DATA.format(n=24, n_val=8)


def test_torch_and_onnxruntime_agree_on_miou_and_report_one_schema(tiny_checkpoint, tiny_export):
    runners = {"torch": open_runner(tiny_checkpoint), "ort": open_runner(tiny_export / "model.fp32.onnx")}
    payload = bench(runners, BenchSettings(data=DATA, input_size=(32, 48), warmup=1, runs=4, rounds=2,
                                           progress=False))
    torch_r, ort_r = payload["results"]
    assert torch_r.keys() == ort_r.keys()
    assert (torch_r["backend"], ort_r["backend"]) == ("torch", "onnxruntime")
    assert torch_r["accuracy"]["images"] == 8 and torch_r["accuracy"]["full_split"]
    assert ort_r["accuracy"]["miou"] == pytest.approx(torch_r["accuracy"]["miou"], abs=0.05)
    assert torch_r["accuracy"]["miou"] > 20  # trained: the gate's accuracy checks mean something
    assert torch_r["latency"]["runs"] == 4 and len(torch_r["times_ms"]) == 4
    assert torch_r["device"]["kind"] == "cpu" and torch_r["device"]["key"].startswith("cpu:")
    (r,) = payload["ratios"]
    assert r["speedup_p50"] == pytest.approx(torch_r["latency"]["p50_ms"] / ort_r["latency"]["p50_ms"])


def test_fixed_batch_graphs_pad_the_last_batch():
    class Fixed:
        input_shape = [2, 3, 4, 4]

        def __call__(self, x):
            assert x.shape[0] == 2
            return x[:, :1] * 2

    import torch

    out = _AsModule(Fixed())(torch.ones(1, 3, 4, 4))
    assert out.shape == (1, 1, 4, 4) and float(out.max()) == 2.0


def test_cli_compare_prints_ratios_and_writes_json(tiny_checkpoint, tiny_export, tmp_path):
    code, out, err = run_cli(["bench", "--compare", tiny_export / "model.fp32.onnx", tiny_export / "model.int8.onnx",
                              "--data", DATA, "--runs", "3", "--warmup", "1", "--no-progress",
                              "--report", tmp_path / "r.json"])
    assert code == 0, err
    assert "speed-up (p50)" in out and "model.int8.onnx" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["schema"] == "segprune.bench/1"
    assert [r["precision"] for r in report["results"]] == ["fp32", "int8"]


def test_export_folder_resolves_by_precision(tiny_export):
    assert open_runner(tiny_export, precision="int8").path.name == "model.int8.onnx"
    with pytest.raises(ConfigError, match="is a fp32 graph, you asked for --precision int8"):
        open_runner(tiny_export / "model.fp32.onnx", precision="int8")


def test_bad_backend_requests(tiny_checkpoint, tmp_path):
    with pytest.raises(ConfigError, match="fp16 autocast needs a CUDA device"):
        open_runner(tiny_checkpoint, precision="fp16")
    with pytest.raises(ConfigError, match="cannot tell the backend"):
        open_runner(tiny_checkpoint.with_suffix(".json"))


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None,
                    reason="TensorRT is installed here: the refusal is for machines without it")
def test_engine_without_tensorrt_names_the_install(tmp_path):
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"not an engine")
    with pytest.raises(BackendError, match="needs TensorRT"):
        open_runner(engine)
    code, _, err = run_cli(["bench", engine, "--runs", "1"])
    assert code == 2 and "pip install 'segprune[trt]'" in err


def test_wrong_dataset_for_the_model(tiny_export):
    code, _, err = run_cli(["bench", tiny_export / "model.fp32.onnx", "--data", "synthetic:n=4,size=32x48,classes=5",
                            "--runs", "1", "--no-progress"])
    assert code == 2 and "predicts 3 classes" in err


def test_input_size_a_fixed_graph_cannot_take(tmp_path, tiny_checkpoint):
    code, _, err = run_cli(["export", tiny_checkpoint, "--out", tmp_path, "--input-size", "32x48", "--quiet"])
    assert code == 0, err
    runner = open_runner(tmp_path / "model.fp32.onnx")
    with pytest.raises(Exception, match="exported for input size 32x48"):
        runner(np.zeros((1, 3, 64, 96), np.float32))


def test_torch_runner_on_the_cpu_times_end_to_end_only(tiny_checkpoint):
    runner = open_runner(tiny_checkpoint)
    assert runner.timings == ("end_to_end",) and runner.info()["timings"] == ["end_to_end"]
    images = np.zeros((1, 3, 32, 48), np.float32)
    assert len(runner.time_inference(images, 0, 2)) == 2
    with pytest.raises(ConfigError, match="times end_to_end, not device"):
        runner.time_inference(images, 0, 1, kind="device")
