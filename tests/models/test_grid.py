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
