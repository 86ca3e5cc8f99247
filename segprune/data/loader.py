"""DataLoaders that give the same batches and augmentations on every run with the same seed.

Shuffling draws from a generator seeded with ``seed``; each worker's torch RNG (which the
transforms use) is seeded by the DataLoader from that same generator, and numpy's global RNG
is seeded from it too for any user transform that uses numpy. With ``workers=0`` the
transforms run in the main process on torch's global RNG: seed it (``torch.manual_seed``)
for reproducible augmentation.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset


def _seed_worker(worker_id: int) -> None:
    """Give numpy in each worker the seed torch already chose for it (distinct per worker)."""
    np.random.seed(torch.initial_seed() % 2**32)


def make_loader(dataset: Dataset, batch_size: int, *, shuffle: bool, workers: int = 0, seed: int = 0,
                drop_last: bool = False, distributed: bool = False,
                persistent_workers: bool = True) -> DataLoader:
    """Build a seeded DataLoader over ``dataset``.

    With ``distributed=True`` a :class:`~torch.utils.data.DistributedSampler` (seeded with
    ``seed``, shuffling as asked, requires an initialised process group) shards the data
    across ranks; the caller must call ``loader.sampler.set_epoch(epoch)`` before every epoch,
    or each epoch repeats the first one's order. Workers persist across epochs when
    ``workers > 0`` (``persistent_workers``), which saves their start-up each epoch; their
    RNG streams then continue from epoch to epoch instead of being reseeded, so a run resumed
    mid-way sees different augmentations unless ``persistent_workers=False``. Memory is
    pinned only when CUDA is available.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    generator = torch.Generator()
    generator.manual_seed(seed)
    sampler = None
    if distributed:
        sampler = DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=drop_last)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        num_workers=workers,
        generator=generator,
        drop_last=drop_last,
        persistent_workers=persistent_workers and workers > 0,
        pin_memory=torch.cuda.is_available(),
        worker_init_fn=_seed_worker if workers > 0 else None,
    )


def spread(n: int, count: int | None) -> list[int]:
    """``count`` indices evenly spaced over ``range(n)`` (all of them for ``None``, 0 or ``count >= n``)."""
    if not count or count >= n:
        return list(range(n))
    if count == 1:
        return [0]
    return [round(i * (n - 1) / (count - 1)) for i in range(count)]


def spread_loader(dataset: Dataset, count: int | None, batch_size: int, workers: int = 0) -> DataLoader:
    """An unshuffled loader over ``count`` samples evenly spaced over ``dataset`` (all for ``None``/0).

    Calibration, parity and quick evaluations take a few images from across a split rather
    than its first ones, which in road datasets are often frames of a single sequence.
    """
    return make_loader(Subset(dataset, spread(len(dataset), count)), batch_size, shuffle=False, workers=workers)


def image_batches(spec: str, split: str, size: tuple[int, int], count: int, batch_size: int,
                  num_classes: int | None = None) -> list:
    """``count`` images of ``spec``/``split`` evenly spread, resized to ``size`` and normalised, as NCHW arrays.

    Used for parity checks and int8 calibration, which need real images at the exported size.
    """
    from segprune.data.registry import build_dataset
    from segprune.data.transforms import EvalTransform
    from segprune.errors import DataError

    dataset = build_dataset(spec, split, transform=EvalTransform(size=size))
    if num_classes is not None and dataset.num_classes != num_classes:
        raise DataError(f"{spec} has {dataset.num_classes} classes, the model {num_classes}: pass the model's dataset "
                        "with --data")
    return [images.numpy() for images, _ in spread_loader(dataset, count, batch_size)]
