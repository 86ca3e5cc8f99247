import math

import pytest
import torch

from segprune.models import decoder_grid, resize_to_grid


@pytest.mark.parametrize(("h", "w", "keep", "expected"), [
    (17, 25, 1.0, (17, 25)),
    (17, 25, 0.5, (9, 13)),
    (30, 30, 0.1, (3, 3)),  # 0.1 * 30 is 3.0000000000000004 in floating point
    (90, 120, 0.25, (23, 30)),
    (3, 5, 0.01, (1, 1)),
])
def test_decoder_grid(h, w, keep, expected):
    assert decoder_grid(h, w, keep) == expected


def test_decoder_grid_is_ceil_for_many_values():
    for keep in (0.2, 0.3, 0.37, 0.5, 0.75, 0.9):
        for side in range(1, 70):
            got = decoder_grid(side, side, keep)[0]
            assert got == max(1, math.ceil(round(keep * side, 9)))


def test_resize_to_grid():
    x = torch.randn(1, 2, 8, 12)
    assert resize_to_grid(x, (8, 12), "area") is x
    assert resize_to_grid(x, (4, 6), "area").shape == (1, 2, 4, 6)
    assert torch.allclose(resize_to_grid(x, (4, 6), "area"), torch.nn.functional.avg_pool2d(x, 2))
    up = resize_to_grid(x, (16, 6), "area")  # enlarging one axis: bilinear, not pixel replication
    assert torch.equal(up, torch.nn.functional.interpolate(x, (16, 6), mode="bilinear", align_corners=False))
    with pytest.raises(ValueError, match="not one of"):
        resize_to_grid(x, (4, 6), "cubic")


def _band_limited(h_big: int, w_big: int, h: int, w: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A random sum of the ``h x w`` lowest DCT-II basis functions on ``h_big x w_big``, and its coefficients."""
    from segprune.models.grid import dct_matrix

    coeffs = torch.zeros(h_big, w_big, dtype=torch.float64)
    coeffs[:h, :w] = torch.randn(h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    return dct_matrix(h_big).T @ coeffs @ dct_matrix(w_big), coeffs[:h, :w]


@pytest.mark.parametrize(("big", "small"), [((12, 16), (6, 8)), ((17, 25), (9, 13)), ((9, 7), (9, 3)), ((8, 8), (1, 1))])
def test_spectral_reproduces_band_limited_maps(big, small):
    from segprune.models.grid import dct_matrix

    x, coeffs = _band_limited(*big, *small)
    y = resize_to_grid(x[None, None], small, "spectral")[0, 0]
    # the same basis functions sampled on the small grid, scaled by sqrt(hw / HW) (orthonormal DC -> same mean)
    expected = math.sqrt(small[0] * small[1] / (big[0] * big[1])) * dct_matrix(small[0]).T @ coeffs @ dct_matrix(small[1])
    assert y.shape == small
    assert torch.allclose(y, expected, atol=1e-12)
    assert torch.allclose(y.mean(), x.mean(), atol=1e-12)


def test_spectral_keeps_constants_identity_and_upsamples_bilinearly():
    x = torch.randn(2, 3, 9, 13)
    assert resize_to_grid(x, (9, 13), "spectral") is x  # keep = 1: bit-exact short-cut
    const = torch.full((1, 2, 9, 13), 2.5)
    assert torch.allclose(resize_to_grid(const, (4, 6), "spectral"), torch.full((1, 2, 4, 6), 2.5), atol=1e-6)
    means = resize_to_grid(x, (5, 4), "spectral").mean((-2, -1))
    assert torch.allclose(means, x.mean((-2, -1)), atol=1e-5)
    up = resize_to_grid(x, (18, 6), "spectral")
    assert torch.equal(up, torch.nn.functional.interpolate(x, (18, 6), mode="bilinear", align_corners=False))


def test_spectral_matrices_are_cached_and_differentiable():
    from segprune.models.grid import dct_matrix, truncation_matrix

    assert dct_matrix(11, "cpu", torch.float32) is dct_matrix(11, None, torch.float32)
    a = truncation_matrix(4, 9, torch.device("cpu"), torch.float32)
    assert a.shape == (4, 9) and a is truncation_matrix(4, 9, torch.device("cpu"), torch.float32)
    with torch.inference_mode():  # a matrix first built in inference mode must still work with autograd
        resize_to_grid(torch.randn(1, 1, 10, 10), (3, 3), "spectral")
    x = torch.randn(1, 2, 10, 10, requires_grad=True)
    resize_to_grid(x, (3, 3), "spectral").sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_spectral_decoder_exports_to_onnx_as_matmul(tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from segprune.models import create_model, grid

    grid.truncation_matrix.cache_clear()  # matrices first built during the trace must still be constants
    grid._truncation_matrix_t.cache_clear()
    torch.manual_seed(0)
    model = create_model("deeplabv3plus_resnet18", 3, aspp_channels=8, decoder_channels=8, low_level_channels=8,
                         decoder_keep=0.5, decoder_resize="spectral").eval()
    x = torch.randn(1, 3, 64, 96)
    path = tmp_path / "spectral.onnx"
    from segprune.export import ExportConfig, export_onnx

    export_onnx(model, path, ExportConfig((64, 96)))  # torch.export: constants built in the trace are fake tensors
    graph = onnx.load(str(path)).graph
    ops = {node.op_type for node in graph.node}
    assert "MatMul" in ops and "Cos" not in ops
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"image": x.numpy()})
    with torch.no_grad():
        expected = model(x).numpy()  # eager after export: the cache must not hold the trace's fake tensors
    assert abs(got - expected).max() < 1e-4
