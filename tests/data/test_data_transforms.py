"""TrainTransform / EvalTransform: shapes, label safety, flips, padding, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segprune.data import IGNORE_INDEX, EvalTransform, TrainTransform, normalize, resize_mask


def _sample(h=37, w=51, seed=0):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    mask = rng.choice(np.array([0, 3, 7, IGNORE_INDEX]), size=(h, w)).astype(np.int64)
    return image, mask


@pytest.mark.parametrize("crop, scale, base", [((24, 32), (0.5, 2.0), None), ((64, 80), (0.5, 0.7), None),
                                               ((17, 23), (1.0, 1.0), (40, 30))])
def test_train_output_shapes_and_label_values(crop, scale, base):
    image, mask = _sample()
    t = TrainTransform(crop, scale_range=scale, base_size=base)
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        x, y = t(image, mask, g)
        assert x.shape == (3, *crop) and x.dtype == torch.float32
        assert y.shape == crop and y.dtype == torch.int64
        assert set(y.unique().tolist()) <= {0, 3, 7, IGNORE_INDEX}


def test_padding_uses_ignore_and_mean():
    image, mask = _sample(10, 12)
    mask[:] = 3
    x, y = TrainTransform((20, 30), scale_range=(1.0, 1.0), hflip=False)(image, mask)
    assert (y[:10, :12] == 3).all() and (y[10:] == IGNORE_INDEX).all() and (y[:, 12:] == IGNORE_INDEX).all()
    assert (x[:, 10:] == 0).all() and (x[:, :, 12:] == 0).all()  # zero after normalisation: the mean colour
    torch.testing.assert_close(x[:, :10, :12], normalize(torch.from_numpy(image).permute(2, 0, 1)))


def test_flip_flips_image_and_mask_together():
    image, mask = _sample(8, 9)
    mask = np.tile(np.arange(9, dtype=np.int64), (8, 1))  # column index: a flip is visible
    plain = EvalTransform()(image, mask)
    flips = 0
    g = torch.Generator().manual_seed(1)
    for _ in range(12):
        x, y = TrainTransform((8, 9), scale_range=(1.0, 1.0))(image, mask, g)
        flipped = bool(y[0, 0] == 8)
        flips += flipped
        ref_x, ref_y = (plain[0].flip(-1), plain[1].flip(-1)) if flipped else plain
        torch.testing.assert_close(x, ref_x)
        assert torch.equal(y, ref_y)
    assert 0 < flips < 12


def test_eval_without_size_preserves_shape_and_values():
    image, mask = _sample()
    x, y = EvalTransform()(image, mask)
    assert x.shape == (3, 37, 51) and torch.equal(y, torch.from_numpy(mask))
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    torch.testing.assert_close(x * std + mean, torch.from_numpy(image).permute(2, 0, 1).float() / 255)


def test_eval_resize_keeps_labels_nearest():
    image, mask = _sample()
    x, y = EvalTransform(size=(20, 101))(image, mask)
    assert x.shape == (3, 20, 101) and y.shape == (20, 101)
    assert set(y.unique().tolist()) <= {0, 3, 7, IGNORE_INDEX}


def test_resize_mask_matches_pil_nearest():
    from PIL import Image

    mask = np.random.default_rng(2).integers(0, 20, (13, 17)).astype(np.uint8)
    for size in [(5, 7), (26, 34), (13, 40)]:
        ref = np.asarray(Image.fromarray(mask).resize(size[::-1], Image.NEAREST))
        np.testing.assert_array_equal(resize_mask(torch.from_numpy(mask), size).numpy(), ref)


def test_reproducible_with_seeded_generator():
    image, mask = _sample()
    t = TrainTransform((20, 20))
    a = [t(image, mask, torch.Generator().manual_seed(7)) for _ in range(2)]
    assert torch.equal(a[0][0], a[1][0]) and torch.equal(a[0][1], a[1][1])
    g = torch.Generator().manual_seed(7)
    runs = [t(image, mask, g) for _ in range(4)]
    assert any(not torch.equal(runs[0][0], r[0]) for r in runs[1:])


def test_bad_arguments():
    with pytest.raises(ValueError):
        TrainTransform((0, 10))
    with pytest.raises(ValueError):
        TrainTransform((10, 10), scale_range=(2.0, 1.0))
    with pytest.raises(ValueError):
        EvalTransform()(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5), np.int64))


def test_color_jitter_changes_colours_only_and_keeps_the_geometry_stream():
    image, mask = _sample(48, 64)
    plain, jitter = TrainTransform((32, 40)), TrainTransform((32, 40), color_jitter=0.4)
    for seed in range(4):
        x0, y0 = plain(image, mask, torch.Generator().manual_seed(seed))
        x1, y1 = jitter(image, mask, torch.Generator().manual_seed(seed))
        assert torch.equal(y0, y1)  # the same crop, scale and flip: jitter draws after the geometry
        assert not torch.allclose(x0, x1)
    a = TrainTransform((32, 40), color_jitter=0.4)(image, mask, torch.Generator().manual_seed(9))[0]
    b = TrainTransform((32, 40), color_jitter=0.4)(image, mask, torch.Generator().manual_seed(9))[0]
    assert torch.equal(a, b)
    # s = 0 keeps the stream of runs made before jitter existed: four draws per call
    g = torch.Generator().manual_seed(5)
    TrainTransform((32, 40), color_jitter=0.0)(image, mask, g)
    ref = torch.Generator().manual_seed(5)
    torch.rand(4, generator=ref, dtype=torch.float64)
    assert torch.equal(torch.rand(2, generator=g), torch.rand(2, generator=ref))


@pytest.mark.parametrize("bad", [-0.1, 1.0, float("nan")])
def test_color_jitter_out_of_range_is_refused(bad):
    with pytest.raises(ValueError, match="color_jitter"):
        TrainTransform((8, 8), color_jitter=bad)
