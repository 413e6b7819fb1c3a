"""Resumable, deterministic batches: the data side of the training loop.

A stage hands the loop any object with the :class:`DataSource` methods. The
one provided here, :class:`ShuffledBatches`, serves a map-style dataset
(``len`` + ``[i]``) in an order that is a pure function of ``(seed, epoch)``,
so its whole position is two integers — ``epoch`` and ``index`` (micro-batches
already served this epoch) — saved in every checkpoint and restored exactly.

Under DDP every rank draws the same permutation; global micro-batch ``i`` is
``perm[i·B·W : (i+1)·B·W]`` and rank ``r`` takes its ``r``-th slice of ``B``.
So two ranks with ``B`` samples see exactly the samples one process with
``2B`` would: the property the DDP test checks.

**Length buckets** (optional, ``lengths=``): clips of 0.6 to 4.4 s drawn at
random into a batch are padded to the longest, and on the world's speech 43 %
of every padded batch is padding the model still computes on. With
``lengths`` (one number per item, e.g. seconds) the epoch's permutation is
cut into pools of ``bucket_pool`` global batches, each pool is sorted by
length and cut into batches of neighbours, and the order of all the epoch's
batches is shuffled again. Each batch then holds clips of nearly one length
(padding falls to well under 1 %) while an epoch still visits every item once
in a random order of batches. The order is still a pure function of
``(seed, epoch)``, so resuming is unchanged.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, Sequence

import torch


class DataSource(Protocol):
    def next_batch(self) -> Any: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


def stack_collate(items: list) -> Any:
    """Stack tensors (or dicts of tensors) along a new batch dimension."""
    first = items[0]
    if isinstance(first, torch.Tensor):
        return torch.stack(items)
    if isinstance(first, dict):
        return {k: stack_collate([it[k] for it in items]) for k in first}
    raise TypeError(f"stack_collate handles tensors and dicts of tensors, got {type(first).__name__}; "
                    f"pass a collate_fn")


class ShuffledBatches:
    """Endless micro-batches from ``dataset``, reshuffled each epoch, last partial batch dropped."""

    def __init__(self, dataset: Sequence, batch_size: int, seed: int, *, rank: int = 0, world_size: int = 1,
                 collate_fn: Callable[[list], Any] = stack_collate, shuffle: bool = True,
                 lengths: Sequence[float] | None = None, bucket_pool: int = 50):
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        if lengths is not None and len(lengths) != len(dataset):
            raise ValueError(f"length buckets need one length per item: {len(lengths)} lengths "
                             f"for {len(dataset)} items")
        assert bucket_pool >= 1, f"bucket_pool must be ≥ 1 global batch, got {bucket_pool}"
        self.lengths = None if lengths is None else torch.tensor(lengths, dtype=torch.float64)
        self.bucket_pool = bucket_pool
        self.rank, self.world_size = rank, world_size
        self.collate_fn, self.shuffle = collate_fn, shuffle
        self.global_batch = batch_size * world_size
        self.batches_per_epoch = len(dataset) // self.global_batch
        if self.batches_per_epoch == 0:
            raise ValueError(f"dataset of {len(dataset)} samples is smaller than one global micro-batch "
                             f"({batch_size} × {world_size} processes = {self.global_batch})")
        self.epoch, self.index = 0, 0
        self._perm: torch.Tensor | None = None

    def _order(self) -> torch.Tensor:
        if self._perm is None:
            if self.shuffle:
                g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
                self._perm = torch.randperm(len(self.dataset), generator=g)
                if self.lengths is not None:
                    self._perm = self._bucketed(self._perm, g)
            else:
                self._perm = torch.arange(len(self.dataset))
        return self._perm

    def _bucketed(self, perm: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """perm (N,) → the same items, sorted by length within pools of ``bucket_pool`` global batches,
        then whole global batches shuffled; the leftover tail (fewer than one batch) stays last."""
        G = self.global_batch
        used = self.batches_per_epoch * G
        pool = self.bucket_pool * G
        pieces = []
        for start in range(0, used, pool):
            ids = perm[start:min(start + pool, used)]
            pieces.append(ids[torch.argsort(self.lengths[ids], stable=True)])
        batches = torch.cat(pieces).view(self.batches_per_epoch, G)                   # (batches, G)
        batches = batches[torch.randperm(self.batches_per_epoch, generator=g)]
        return torch.cat([batches.reshape(-1), perm[used:]])

    def next_batch(self) -> Any:
        if self.index == self.batches_per_epoch:
            self.epoch, self.index, self._perm = self.epoch + 1, 0, None
        start = self.index * self.global_batch + self.rank * self.batch_size
        ids = self._order()[start:start + self.batch_size].tolist()
        self.index += 1
        return self.collate_fn([self.dataset[i] for i in ids])

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "index": self.index, "seed": self.seed,
                "global_batch": self.global_batch, "dataset_len": len(self.dataset),
                "bucket_pool": 0 if self.lengths is None else self.bucket_pool}

    def load_state_dict(self, state: dict) -> None:
        mine = self.state_dict()
        state = {"bucket_pool": 0, **state}          # checkpoints from before length buckets had none
        for key in ("seed", "global_batch", "dataset_len", "bucket_pool"):
            if state[key] != mine[key]:
                raise ValueError(f"cannot resume the data position: checkpoint has {key}={state[key]}, "
                                 f"this run has {key}={mine[key]} (the order of batches would differ)")
        self.epoch, self.index, self._perm = state["epoch"], state["index"], None


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor in a (nested) batch to ``device``; other values pass through."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


class PairedBatches:
    """Several sources served in lockstep: ``next_batch()`` → {name: that source's next batch}.

    For a stage with two objectives on two datasets (the audio stage's speech
    clips for CTC and sound clips for the sound-attribute head): each step sees
    one batch of each, and the position is each source's own, so resuming is
    as exact as for one :class:`ShuffledBatches`.
    """

    def __init__(self, **sources: DataSource):
        assert sources, "PairedBatches needs at least one source"
        self.sources = sources

    def next_batch(self) -> dict:
        return {name: s.next_batch() for name, s in self.sources.items()}

    def state_dict(self) -> dict:
        return {name: s.state_dict() for name, s in self.sources.items()}

    def load_state_dict(self, state: dict) -> None:
        if set(state) != set(self.sources):
            raise ValueError(f"cannot resume the data position: checkpoint has sources {sorted(state)}, "
                             f"this run has {sorted(self.sources)}")
        for name, s in self.sources.items():
            s.load_state_dict(state[name])
