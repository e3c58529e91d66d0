"""The Lightning pieces: QATask, the LightningModule (model logic only: loss, optimizer wiring, evaluation over
windows), and QADataModule, which serves train and dev Features as batches (qaframe.data).

The model comes from a head factory and the optimizer and scheduler from injected factories
(the runner builds all three from the registries). The scheduler is returned under
`lr_scheduler` with interval "step", so it steps once per optimizer step.

Evaluation under several processes (DDP): every rank evaluates its own shard of the dev
windows (the batch sampler shards them), keeps each window's start/end logits under its window
index, and at the end of the epoch the logits of all ranks are gathered (`all_gather`), so
every rank holds the logits of every window, decodes them and computes the same metrics. The
logged values are therefore identical on all ranks and need no further reduction; windows
repeated to even out the shards are written twice to the same slot, so they count once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.plugins.precision import MixedPrecision, Precision
from pytorch_lightning.strategies import FSDPStrategy
from torch.utils.data import DataLoader

from qaframe.data import UNSEEN, LengthGroupedBatchSampler, PadCollator, ResumableDataLoader, example_lengths
from qaframe.decoding import postprocess
from qaframe.models import model_inputs, takes_prepared_mask
from qaframe.types import Features, Metric, QAExample, Refiner


@dataclass
class Evaluation:
    """Scores of one evaluation pass and the decoded answers they came from."""

    scores: dict[str, float]  # exact_match, f1 (refined), exact_match_raw, f1_raw, examples
    predictions: dict[str, str]
    nbest: dict[str, list[dict]]


@dataclass
class Evaluator:
    """Decodes the logits of every dev window and scores the answers with the corpus's metric."""

    examples: Sequence[QAExample]
    features: Features
    metric: Metric
    refiner: Refiner | None = None
    n_best_size: int = 20
    max_answer_length: int = 30

    @cached_property
    def width(self) -> int:
        """Columns of the logit arrays: the longest window."""
        return int(self.features.lengths.max())

    def evaluate(self, start_logits: np.ndarray, end_logits: np.ndarray, seen: np.ndarray | None = None) -> Evaluation:
        """Decode (windows, width) left-aligned logits; score the examples whose windows were all `seen`."""
        decoded = postprocess(
            self.examples, self.features, start_logits, end_logits,
            refiner=self.refiner, n_best_size=self.n_best_size, max_answer_length=self.max_answer_length,
        )
        complete = np.ones(len(self.examples), dtype=bool)
        if seen is not None:
            complete[self.features.example_index[~seen]] = False
        scored = [e for e, ok in zip(self.examples, complete) if ok and e.answers]
        references = {e.id: [a.text for a in e.answers] for e in scored}
        refined = self.metric.compute({e.id: decoded.predictions[e.id] for e in scored}, references)
        raw = self.metric.compute({e.id: decoded.raw_predictions[e.id] for e in scored}, references)
        scores = {
            "exact_match": float(refined["exact_match"]),
            "f1": float(refined["f1"]),
            "exact_match_raw": float(raw["exact_match"]),
            "f1_raw": float(raw["f1"]),
            "examples": len(scored),
        }
        keep = {e.id for e in scored}
        return Evaluation(
            scores,
            {k: v for k, v in decoded.predictions.items() if k in keep},
            {k: v for k, v in decoded.nbest.items() if k in keep},
        )


class QATask(pl.LightningModule):
    """Extractive QA training: mean start/end cross-entropy, injected optimizer/scheduler, EM/F1 on dev."""

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        optimizer_factory: Callable[[torch.nn.Module], torch.optim.Optimizer],
        scheduler_factory: Callable[[torch.optim.Optimizer, int], Any] | None = None,
        evaluator: Evaluator | None = None,
    ):
        super().__init__()
        self.model = model
        self.prepared_mask = takes_prepared_mask(model)
        self.optimizer_factory = optimizer_factory
        self.scheduler_factory = scheduler_factory
        self.evaluator = evaluator
        self.last_evaluation: Evaluation | None = None
        self._windows: list[torch.Tensor] = []
        self._start: list[torch.Tensor] = []
        self._end: list[torch.Tensor] = []

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Float32 start and end logits with padding positions masked out."""
        output = self.model(**model_inputs(batch, self.prepared_mask))
        padding = batch["attention_mask"] == 0
        start = output.start_logits.float().masked_fill(padding, torch.finfo(torch.float32).min)
        end = output.end_logits.float().masked_fill(padding, torch.finfo(torch.float32).min)
        return start, end

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Mean of the start and end cross-entropy."""
        start, end = self(batch)
        loss = (F.cross_entropy(start, batch["start_positions"]) + F.cross_entropy(end, batch["end_positions"])) / 2
        self.log("train_loss", loss, batch_size=len(start))  # the runner's progress bar reads it when it refreshes
        return loss

    def on_fit_start(self) -> None:
        """Train mode for every module: transformers 5 returns from_pretrained models in eval mode, and Lightning keeps
        the modes it finds, so a pretrained encoder would otherwise train without dropout."""
        self.train()

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """Lightning's clipping, except under bf16-mixed, where nothing is loss-scaled, and under FSDP.

        Lightning's mixed-precision plugin refuses to clip for any optimizer that unscales
        internally (fused AdamW), even when there is no scaler (bf16); the gradients are true
        gradients then, so they are clipped by the plain precision plugin's method. Under
        16-mixed (a scaler) the runner asks for an unfused optimizer, which the scaler unscales first.
        Under FSDP each rank holds a shard of every gradient, and Lightning's FSDP plugin refuses to
        clip by norm: the norm over all shards is the root FSDP module's `clip_grad_norm_` (qaframe
        clips by norm only).
        """
        plugin = self.trainer.precision_plugin
        if isinstance(self.trainer.strategy, FSDPStrategy):
            if gradient_clip_val:
                self.trainer.strategy.model.clip_grad_norm_(gradient_clip_val)
        elif isinstance(plugin, MixedPrecision) and plugin.scaler is None:
            Precision.clip_gradients(plugin, optimizer, gradient_clip_val or 0.0, gradient_clip_algorithm or "norm")
        else:
            super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def configure_optimizers(self) -> dict[str, Any]:
        """The injected optimizer, and the scheduler under `lr_scheduler`, stepped every optimizer step."""
        optimizer = self.optimizer_factory(self.model)
        if self.scheduler_factory is None:
            return {"optimizer": optimizer}
        scheduler = self.scheduler_factory(optimizer, int(self.trainer.estimated_stepping_batches))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}

    # -- evaluation ------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._windows, self._start, self._end = [], [], []

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """Keep this batch's logits (column j: token j of the window) under their window indices, on the device until the
        epoch ends.

        Copying each batch's logits to the host would make the host wait for the GPU at every batch.
        """
        start, end = self(batch)
        width = self.evaluator.width
        for kept, logits in ((self._start, start), (self._end, end)):
            logits = logits[:, :width]
            kept.append(F.pad(logits, (0, width - logits.shape[1]), value=UNSEEN))
        self._windows.append(batch["window"])

    def on_validation_epoch_end(self) -> None:
        """Gather every rank's logits, decode, score and log val_exact_match, val_f1 and the raw scores."""
        if self.evaluator is None or not self._windows:
            return
        windows, start, end = torch.cat(self._windows), torch.cat(self._start), torch.cat(self._end)
        if self.trainer.world_size > 1:
            windows, start, end = self._gather(windows, start, end)
        windows, start, end = windows.cpu(), start.cpu(), end.cpu()
        total, width = len(self.evaluator.features), self.evaluator.width
        start_all = np.full((total, width), UNSEEN, dtype=np.float32)
        end_all = np.full((total, width), UNSEEN, dtype=np.float32)
        seen = np.zeros(total, dtype=bool)
        index = windows.numpy()
        start_all[index], end_all[index], seen[index] = start.numpy(), end.numpy(), True
        self.last_evaluation = self.evaluator.evaluate(start_all, end_all, seen)
        scores = self.last_evaluation.scores
        self.log("val_f1", scores["f1"], prog_bar=True)
        self.log("val_exact_match", scores["exact_match"], prog_bar=True)
        self.log("val_f1_raw", scores["f1_raw"])
        self.log("val_exact_match_raw", scores["exact_match_raw"])
        self._windows, self._start, self._end = [], [], []

    def _gather(self, windows, start, end):
        """All ranks' (window, logits) rows, padded to the longest shard for all_gather and unpadded again."""
        counts = self.all_gather(torch.tensor(len(windows), device=self.device))
        longest = int(counts.max())
        pad = longest - len(windows)
        rows = [F.pad(windows, (0, pad), value=-1), F.pad(start, (0, 0, 0, pad)), F.pad(end, (0, 0, 0, pad))]
        gathered = [self.all_gather(t) for t in rows]
        windows, start, end = (g.reshape(-1, *g.shape[2:]) for g in gathered)
        keep = windows >= 0
        return windows[keep], start[keep], end[keep]


class QADataModule(pl.LightningDataModule):
    """Train and dev Features as DataLoaders with per-batch padding and length-grouped batches."""

    def __init__(self, train: Features | None, dev: Features | None, *, pad_token_id: int,
                 train_batch_size: int = 32, eval_batch_size: int = 64, seed: int = 0, group_by_length: bool = True,
                 pad_to_multiple_of: int = 1, num_workers: int = 0, pin_memory: bool = False):
        super().__init__()
        self.train_features = train
        self.dev_features = dev
        self.pad_token_id = pad_token_id
        self.train_batch_size = train_batch_size
        self.eval_batch_size = eval_batch_size
        self.seed = seed
        self.group_by_length = group_by_length
        self.pad_to_multiple_of = pad_to_multiple_of
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.train_loader: ResumableDataLoader | None = None  # the latest train_dataloader()
        self._train_state: dict[str, Any] | None = None  # a checkpoint's training position, for a train loader not built yet

    def _shard(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)

    def _loader(self, features: Features, batch_size: int, shuffle: bool) -> DataLoader:
        replicas, rank = self._shard()
        sampler = LengthGroupedBatchSampler(
            features.lengths if shuffle else example_lengths(features), batch_size, shuffle=shuffle, seed=self.seed, group_by_length=self.group_by_length,
            num_replicas=replicas, rank=rank,
        )
        loader = ResumableDataLoader if shuffle else DataLoader  # only training is checkpointed in mid-epoch
        return loader(
            range(len(features)),
            batch_sampler=sampler,
            collate_fn=PadCollator(features, self.pad_token_id, pad_to_multiple_of=self.pad_to_multiple_of),
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> ResumableDataLoader:
        """Shuffled, length-grouped training batches of this rank, from a resumed checkpoint's position (load_state_dict)."""
        self.train_loader = self._loader(self.train_features, self.train_batch_size, shuffle=True)
        if self._train_state is not None:
            self.train_loader.load_state_dict(self._train_state)
            self._train_state = None
        return self.train_loader

    def state_dict(self) -> dict[str, Any]:
        """The training loader's position, kept in checkpoints here as well as under Lightning's fit loop.

        Lightning 2.6 gives a loader its state back from the fit loop only where nothing built the
        loader before the checkpoint was read; QATask's `trainer.estimated_stepping_batches` does
        under --max-epochs (Lightning issue #20550). The datamodule's own state is always read back.
        Where both are, they are the same state, set twice.
        """
        return {"train_loader": self.train_loader.state_dict()} if self.train_loader is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if self.train_loader is not None:  # strategies that restore after setup (FSDP, DeepSpeed) have built it
            self.train_loader.load_state_dict(state_dict["train_loader"])
        else:
            self._train_state = state_dict["train_loader"]

    def val_dataloader(self) -> DataLoader:
        """Dev batches of this rank, sorted by length, each example's windows together."""
        return self._loader(self.dev_features, self.eval_batch_size, shuffle=False)
