"""Training data that need not fit in memory: images read and preprocessed on demand by DataLoader
workers, in the class-balanced batches training uses, split over torchrun's processes.

- `FolderImages`: files (and labels) -> uint8 images, decoded and preprocessed with `to_model_image` (the
  page's preprocessing) when a worker asks for them;
- `ArrayImages`: the same interface over arrays already in memory (the sprites), so one loop serves both;
- `BalancedBatches`: each step the global P x K batch (seeded by epoch, the same on every rank) and this
  rank's whole classes of it. PyTorch's DistributedSampler shards a list of single samples, which would
  break the P x K balance SupCon needs, so the batches are drawn here and split like DDP's data;
- `unlabeled_batches`: unlabeled images in random batches for ever, sharded over the ranks by PyTorch's
  DistributedSampler (no image on two ranks in the same pass).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler, Sampler

from ..images import decode_image, to_model_image


class ArrayImages(Dataset):
    """images (N, S, S, 3) uint8, alpha (N, S, S) uint8, labels (N,) -> (image (3, S, S) uint8,
    alpha (1, S, S) uint8, label, index)."""

    def __init__(self, images: np.ndarray, alpha: np.ndarray, labels: np.ndarray):
        self.images, self.alpha, self.labels = images, alpha, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return (torch.from_numpy(np.ascontiguousarray(self.images[index])).permute(2, 0, 1),
                torch.from_numpy(np.ascontiguousarray(self.alpha[index]))[None], int(self.labels[index]), index)


class FolderImages(Dataset):
    """Image files read when asked for (by DataLoader workers), preprocessed as the page preprocesses an
    upload; opaque (alpha 255). labels: (N,) or None (unlabeled: -1)."""

    def __init__(self, files: list[Path], labels: np.ndarray | None, image_size: int):
        self.files, self.image_size = list(files), image_size
        self.labels = np.full(len(self.files), -1) if labels is None else np.asarray(labels)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        image = None
        for offset in range(len(self.files)):  # an unreadable file gives way to the next one of its class
            candidate = (index + offset) % len(self.files)
            if offset and self.labels[candidate] != self.labels[index]:
                continue
            try:
                path = self.files[candidate]
                image = to_model_image(decode_image(Path(path).read_bytes(), str(path)), self.image_size)
                break
            except (OSError, ValueError) as error:
                print(f"skipped: {error}", flush=True)
        if image is None:
            raise ValueError(f"no readable image of class {self.labels[index]} in the folder")
        return (torch.from_numpy(np.array(image)).permute(2, 0, 1),   # a copy: decoded pictures are read-only
                torch.full((1, self.image_size, self.image_size), 255, dtype=torch.uint8), int(self.labels[index]),
                index)


def balanced_batch(labels_by_class: list[np.ndarray], classes_per_batch: int, images_per_class: int,
                   rng: np.random.Generator) -> np.ndarray:
    """P classes x K images, class-major (with replacement only when a class has fewer than K)."""
    classes = rng.choice(len(labels_by_class), min(classes_per_batch, len(labels_by_class)), replace=False)
    return np.concatenate([rng.choice(labels_by_class[c], images_per_class,
                                      replace=len(labels_by_class[c]) < images_per_class) for c in classes])


class BalancedBatches(Sampler[list[int]]):
    """`steps` batches an epoch: the global class-balanced batch, seeded by (seed, epoch) so every rank draws
    the same one, then this rank's contiguous share of its classes (`rank` of `world_size`)."""

    def __init__(self, labels: np.ndarray, classes_per_batch: int, images_per_class: int, steps: int,
                 seed: int = 0, rank: int = 0, world_size: int = 1):
        self.by_class = [np.flatnonzero(labels == c) for c in range(int(labels.max()) + 1)]
        self.classes_per_batch, self.images_per_class, self.steps = classes_per_batch, images_per_class, steps
        self.seed, self.rank, self.world_size, self.epoch = seed, rank, world_size, 0
        if min(classes_per_batch, len(self.by_class)) % world_size:
            raise ValueError(f"a batch of {min(classes_per_batch, len(self.by_class))} classes does not split into "
                             f"whole classes over {world_size} processes: make --classes-per-batch a multiple of "
                             "the processes")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng(self.seed * 1000 + self.epoch)
        for _ in range(self.steps):
            batch = balanced_batch(self.by_class, self.classes_per_batch, self.images_per_class, rng)
            yield batch.reshape(self.world_size, -1)[self.rank].tolist()


def loader(dataset: Dataset, batches: Sampler, workers: int = 0, pin_memory: bool = False,
           collate=None) -> DataLoader:
    """A DataLoader over `batches` (lists of indices); `workers` processes decode while the model trains."""
    return DataLoader(dataset, batch_sampler=batches, num_workers=workers, pin_memory=pin_memory,
                      persistent_workers=workers > 0, collate_fn=collate, prefetch_factor=4 if workers else None)


def in_order(dataset: Dataset, batch_size: int = 256, workers: int = 0) -> DataLoader:
    """Every item once, in order (teacher targets, the base mean)."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)


def unlabeled_batches(dataset: Dataset, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1,
                      workers: int = 0, pin_memory: bool = False) -> Iterator:
    """Random batches of unlabeled images for ever; under torchrun each rank reads its own shard of every pass
    (DistributedSampler), on one process a RandomSampler."""
    epoch = 0
    while True:
        if world_size > 1:
            sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
            sampler.set_epoch(epoch)
        else:
            sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(seed * 1000 + epoch))
        yield from DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                              pin_memory=pin_memory, drop_last=len(dataset) >= batch_size * world_size)
        epoch += 1
