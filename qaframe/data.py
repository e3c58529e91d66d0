"""From Features to batches: per-batch padding, length-grouped batches, resumable training batches.

Features are stored unpadded; `PadCollator` pads each batch only to its longest window, rounded
up to a multiple of `pad_to_multiple_of` (tensor-core friendly widths, fewer shapes for
torch.compile) but never past the longest window of the set, always on the right, and builds the
attention mask. On the right, every window's tokens keep their positions 0, 1, ... in any batch:
no position ids go to the model, so an encoder with absolute position embeddings (BERT, ELECTRA,
ALBERT, DistilBERT) would see a left-padded window at other positions in other batches, with
other logits. `LengthGroupedBatchSampler` puts
windows of similar length in the same batch so that padding stays small; it is deterministic
for a (seed, epoch) pair and shares every global batch out among distributed ranks itself, so
the Trainer runs with `use_distributed_sampler=False`. `ResumableDataLoader` lets a run resumed from
a mid-epoch checkpoint go on with the very batches an uninterrupted run would have trained on.
Lightning is not imported here (the Predictor uses this module); its DataModule is in qaframe.task.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from qaframe.types import Features

log = logging.getLogger("qaframe.data")

MEGA_BATCHES = 50  # windows are sorted by length inside groups of this many batches
UNSEEN = -1e4  # logit given to the columns of windows that evaluation did not reach (smoke-run limits)


def example_lengths(features: Features) -> np.ndarray:
    """Per window, the longest window of its example: sorting by it keeps an example's windows together.

    Evaluation batches are ordered by this key (a stable sort, windows being stored example by
    example), so a smoke-run limit on evaluation batches still covers whole examples.
    """
    longest = np.zeros(int(features.example_index.max()) + 1 if len(features) else 0, dtype=np.int64)
    np.maximum.at(longest, features.example_index, features.lengths)
    return longest[features.example_index]


class PadCollator:
    """Turns a list of window indices into padded tensors: input_ids, attention_mask, labels, window."""

    def __init__(self, features: Features, pad_token_id: int, pad_to_multiple_of: int = 1):
        if pad_to_multiple_of < 1:
            raise ValueError(f"pad_to_multiple_of must be at least 1, got {pad_to_multiple_of}")
        self.features = features
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of
        self.longest = int(features.lengths.max()) if len(features) else 0

    def __call__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        features = self.features
        index = np.asarray(indices, dtype=np.int64)
        starts = features.row_splits[index]
        lengths = features.row_splits[index + 1] - starts
        multiple = self.pad_to_multiple_of
        width = min(-(-int(lengths.max()) // multiple) * multiple, self.longest)
        # one flat gather: row r, column c holds token starts[r] + c when that is inside the window
        column = np.arange(width)[None, :]
        inside = column < lengths[:, None]
        source = np.where(inside, starts[:, None] + column, 0)
        input_ids = np.where(inside, features.input_ids[source], self.pad_token_id)
        batch = {
            "input_ids": torch.from_numpy(input_ids.astype(np.int64)),
            "attention_mask": torch.from_numpy(inside.astype(np.int64)),
            "start_positions": torch.from_numpy(features.start_positions[index]),
            "end_positions": torch.from_numpy(features.end_positions[index]),
            "window": torch.from_numpy(index),
        }
        if features.token_type_ids is not None:
            batch["token_type_ids"] = torch.from_numpy(np.where(inside, features.token_type_ids[source], 0).astype(np.int64))
        return batch


class LengthGroupedBatchSampler(Sampler):
    """Batches of window indices, grouped by length, shuffled per (seed, epoch), dealt out to ranks.

    The sampler first forms global batches of `batch_size * num_replicas` windows; rank r of R
    takes windows r, r+R, r+2R ... of each one. So R devices at batch size B see, step by step,
    exactly the windows that one device sees at batch size R*B, and DDP's averaged gradient is
    the same as the single device's (up to float summation order).

    Training (`shuffle=True`): a seeded permutation is cut into groups of MEGA_BATCHES global
    batches, each group sorted by length and cut into global batches; their order is shuffled
    and the one holding the longest window goes first, so an out-of-memory error shows at step
    one. Evaluation (`shuffle=False`): windows in order of `lengths` (pass
    `example_lengths(features)` to keep examples whole). With `group_by_length=False` batches are
    plain random (or sequential) slices. A rank whose share of the last global batch would be
    empty repeats that batch's first window (evaluation collects logits by window index, so a
    repeat counts once).
    """

    def __init__(self, lengths: np.ndarray, batch_size: int, *, shuffle: bool, seed: int = 0,
                 group_by_length: bool = True, num_replicas: int = 1, rank: int = 0):
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.group_by_length = group_by_length
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.skip = 0  # global batches the next iteration leaves out (set by ResumableDataLoader, used once)

    @property
    def sampler(self) -> "LengthGroupedBatchSampler":
        """Lightning calls `set_epoch` on `dataloader.batch_sampler.sampler`; that is this object."""
        return self

    def set_epoch(self, epoch: int) -> None:
        """Choose the shuffle of this epoch (Lightning calls this at every epoch start)."""
        self.epoch = epoch

    def global_batches(self) -> list[np.ndarray]:
        """Every global batch (all ranks together) of this epoch, in order."""
        n, size = len(self.lengths), self.batch_size * self.num_replicas
        if self.shuffle:
            rng = np.random.default_rng([self.seed, self.epoch])
            order = rng.permutation(n)
            if self.group_by_length:
                group = size * MEGA_BATCHES
                chunks = [order[i : i + group] for i in range(0, n, group)]
                order = np.concatenate([c[np.argsort(-self.lengths[c], kind="stable")] for c in chunks]) if n else order
        else:
            order = np.argsort(self.lengths, kind="stable") if self.group_by_length else np.arange(n)
        batches = [order[i : i + size] for i in range(0, n, size)]
        if self.shuffle and batches:
            batches = [batches[i] for i in rng.permutation(len(batches))]
            longest = max(range(len(batches)), key=lambda i: self.lengths[batches[i]].max())
            batches.insert(0, batches.pop(longest))
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        skip, self.skip = self.skip, 0
        for batch in self.global_batches()[skip:]:
            share = batch[self.rank :: self.num_replicas]
            yield (share if len(share) else batch[:1]).tolist()

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / (self.batch_size * self.num_replicas))


class ResumableDataLoader(DataLoader):
    """The training DataLoader (over a LengthGroupedBatchSampler), which Lightning resumes in mid-epoch.

    Lightning stores `state_dict()` in every checkpoint (the fit loop's `combined_loader`): the
    sampler's epoch and the global batches yielded in it. Resuming, it passes that state to
    `load_state_dict` before the first iteration, and that iteration, if it is of the same epoch,
    starts after those batches: the sampler leaves them out as index lists, so they are neither
    read nor collated. Lightning skips nothing itself (it counts batch_idx on from its restored
    progress). A checkpoint written at an epoch's end holds all of its batches; Lightning then
    sets the next epoch, which the state does not match, so that epoch starts at its first batch.
    `__iter__` is a generator, so the epoch is compared at the first batch, after Lightning's
    `set_epoch`, and worker processes start prefetching only then. A count of batches cut
    another way (a resumed run with another batch size, seed, device count or windows) cannot
    be continued: that epoch starts over, with a warning.
    """

    batches_yielded = 0  # global batches of the sampler's epoch handed out, those skipped on resuming included
    _resume: dict[str, Any] | None = None  # the state the next iteration continues from

    def batching(self) -> list[int]:
        """What a count of batches depends on: batch size, ranks, seed, grouping and the windows (count, tokens)."""
        sampler = self.batch_sampler
        return [sampler.batch_size, sampler.num_replicas, sampler.seed, int(sampler.group_by_length), len(sampler.lengths),
                int(sampler.lengths.sum())]

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.batch_sampler.epoch, "batches": self.batches_yielded, "batching": self.batching()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._resume = state_dict

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        sampler, resume, self._resume = self.batch_sampler, self._resume, None
        sampler.skip = 0
        if resume is not None and resume["epoch"] == sampler.epoch:
            if resume.get("batching") == self.batching():
                sampler.skip = resume["batches"]
            else:
                log.warning("the checkpoint stopped after %d batches of epoch %d, cut with another batch size, seed, device "
                            "count or set of windows; that epoch starts over", resume["batches"], sampler.epoch)
        self.batches_yielded = sampler.skip
        for batch in super().__iter__():
            self.batches_yielded += 1
            yield batch
