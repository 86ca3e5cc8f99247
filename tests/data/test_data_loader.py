"""build_dataset specs for synthetic data, and make_loader's reproducibility."""

from __future__ import annotations

import pytest
import torch

from segprune.data import DATASET_KINDS, SyntheticScenes, TrainTransform, build_dataset, make_loader


def test_synthetic_spec_defaults_and_options():
    train, val = build_dataset("synthetic", "train"), build_dataset("synthetic", "val")
    assert isinstance(train, SyntheticScenes) and (len(train), len(val)) == (64, 16)
    assert train.size == (96, 128) and train.num_classes == 6 and train.seed == 0
    ds = build_dataset("synthetic:n=8, size=33x47,classes=9,seed=4", "val")
    assert (len(ds), ds.size, ds.num_classes, ds.seed, ds.split) == (2, (33, 47), 9, 4, "val")
    assert len(build_dataset("synthetic:n=8,n_val=5", "val")) == 5
    assert set(DATASET_KINDS) == {"camvid", "cityscapes", "voc", "folder", "synthetic"}


def _batches(loader):
    return [(x.clone(), y.clone()) for x, y in loader]


@pytest.mark.parametrize("workers", [0, 2])
def test_seeded_loader_is_reproducible(workers):
    data = SyntheticScenes(6, size=(20, 24), transform=TrainTransform((16, 16)))

    def run(seed):
        torch.manual_seed(123)  # workers=0 draws augmentations from the global RNG
        loader = make_loader(data, 2, shuffle=True, workers=workers, seed=seed)
        return _batches(loader)

    first, again, other = run(0), run(0), run(1)
    assert len(first) == 3
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(first, other, strict=True))


def test_loader_options():
    data = SyntheticScenes(5, size=(16, 16))
    loader = make_loader(data, 2, shuffle=False, drop_last=True)
    assert len(loader) == 2 and loader.pin_memory == torch.cuda.is_available()
    x, y = next(iter(loader))
    assert x.shape == (2, 3, 16, 16) and y.shape == (2, 16, 16)
    with pytest.raises(ValueError):
        make_loader(data, 0, shuffle=False)


def test_distributed_sampler_is_seeded_and_follows_set_epoch(tmp_path):
    import torch.distributed as dist
    from torch.utils.data import DistributedSampler

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        data = SyntheticScenes(16, size=(8, 8))
        loader = make_loader(data, 4, shuffle=True, seed=3, distributed=True)
        assert isinstance(loader.sampler, DistributedSampler) and loader.sampler.seed == 3
        orders = []
        for epoch in (0, 1, 0):
            loader.sampler.set_epoch(epoch)
            orders.append(list(loader.sampler))
        assert orders[0] == orders[2] != orders[1] and sorted(orders[0]) == list(range(16))
    finally:
        dist.destroy_process_group()
