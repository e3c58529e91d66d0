"""QATask and its data path: per-batch padding on the right, length-grouped batches, loss, and the scheduler stepping."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from qaframe.data import LengthGroupedBatchSampler, PadCollator
from qaframe.task import Evaluator, QADataModule, QATask
from qaframe.types import Answer, Features, FeaturizerSettings, ModelSpec, OptimizerSettings, QAExample, SchedulerSettings


def ragged_features(lengths, seed=0, vocab=50) -> Features:
    """Windows of the given lengths with random tokens, labels inside each window, token types 0 then 1."""
    rng = np.random.default_rng(seed)
    lengths = np.asarray(lengths)
    splits = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    starts = np.array([rng.integers(1, n) for n in lengths])
    ends = np.array([min(n - 1, s + rng.integers(0, 3)) for s, n in zip(starts, lengths)])
    types = np.concatenate([(np.arange(n) >= n // 2).astype(np.int8) for n in lengths])
    return Features(
        input_ids=rng.integers(5, vocab, splits[-1]).astype(np.int32), row_splits=splits,
        example_index=np.arange(len(lengths)), start_positions=starts.astype(np.int64), end_positions=ends.astype(np.int64),
        token_type_ids=types,
    )


class TokenModel(torch.nn.Module):
    """Logits that depend on the token only (not its position)."""

    def __init__(self, vocab=30000):
        super().__init__()
        self.embedding = torch.nn.Embedding(vocab, 8)
        self.output = torch.nn.Linear(8, 2)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        logits = self.output(self.embedding(input_ids))
        return SimpleNamespace(start_logits=logits[..., 0], end_logits=logits[..., 1])


# -- collate ----------------------------------------------------------------------
def test_collate_pads_to_the_longest_window_on_the_right():
    features = ragged_features([3, 7, 5])
    batch = PadCollator(features, pad_token_id=0)([0, 1, 2])
    assert batch["input_ids"].shape == (3, 7)
    assert batch["attention_mask"].sum(1).tolist() == [3, 7, 5]
    for row, index in enumerate([0, 1, 2]):
        tokens = features.input_ids[features.row_splits[index] : features.row_splits[index + 1]]
        mask = batch["attention_mask"][row].bool()
        assert batch["input_ids"][row][mask].tolist() == tokens.tolist()
        assert (batch["input_ids"][row][~mask] == 0).all()
        assert batch["token_type_ids"][row][mask].tolist() == features.token_type_ids[
            features.row_splits[index] : features.row_splits[index + 1]].tolist()
        # the label still points at the same token after padding
        label = int(features.start_positions[index])
        assert batch["start_positions"][row] == label and batch["input_ids"][row, label] == tokens[label]
        assert mask.tolist() == [True] * len(tokens) + [False] * (7 - len(tokens))
    assert batch["window"].tolist() == [0, 1, 2]


def test_collate_rounds_the_width_up_to_the_multiple_but_not_past_the_longest_window():
    features = ragged_features([3, 7, 5, 21])
    plain = PadCollator(features, 0)([0, 1, 2])
    padded = PadCollator(features, 0, pad_to_multiple_of=8)([0, 1, 2])
    assert padded["input_ids"].shape == (3, 8)
    assert padded["attention_mask"].sum(1).tolist() == [3, 7, 5]
    # the same tokens at the same positions, the same labels
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        assert padded[key][:, :7].equal(plain[key]) and not padded[key][:, 7].any()
    for name in ("start_positions", "end_positions"):
        assert padded[name].equal(plain[name])
    # 21 rounds up to 24 but the set's longest window is 21 (a model's position limit lies at or above it)
    assert PadCollator(features, 0, pad_to_multiple_of=8)([3, 0])["input_ids"].shape == (2, 21)
    with pytest.raises(ValueError, match="pad_to_multiple_of"):
        PadCollator(features, 0, pad_to_multiple_of=0)


# -- batch sampler ----------------------------------------------------------------
def test_length_grouped_batches_cover_every_window_once_and_pad_little():
    lengths = np.random.default_rng(1).integers(10, 300, 1000)
    sampler = LengthGroupedBatchSampler(lengths, 16, shuffle=True, seed=3)
    batches = list(sampler)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1000)) and len(batches) == len(sampler)
    assert lengths[batches[0]].max() == lengths.max()  # the longest window goes first
    padded = sum(len(b) * lengths[b].max() for b in batches)
    random_batches = list(LengthGroupedBatchSampler(lengths, 16, shuffle=True, seed=3, group_by_length=False))
    random_padded = sum(len(b) * lengths[b].max() for b in random_batches)
    assert padded < 0.7 * random_padded


def test_batches_are_deterministic_per_seed_and_epoch():
    lengths = np.random.default_rng(2).integers(1, 100, 200)
    first = LengthGroupedBatchSampler(lengths, 8, shuffle=True, seed=5)
    second = LengthGroupedBatchSampler(lengths, 8, shuffle=True, seed=5)
    assert [b for b in first] == [b for b in second]
    epoch0 = list(first)
    first.set_epoch(1)
    assert list(first) != epoch0
    second.set_epoch(1)
    assert list(first) == list(second)
    assert first.sampler is first  # where Lightning's _set_sampler_epoch finds set_epoch


def test_ranks_share_out_the_global_batches_of_a_single_device():
    lengths = np.random.default_rng(4).integers(1, 50, 103)
    single = list(LengthGroupedBatchSampler(lengths, 20, shuffle=True, seed=1))
    shards = [list(LengthGroupedBatchSampler(lengths, 10, shuffle=True, seed=1, num_replicas=2, rank=r)) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == len(single) == 6
    for whole, first, second in zip(single, *shards):  # step by step, the two ranks see what one device sees
        assert sorted(first + second) == sorted(whole)
    evaluation = [list(LengthGroupedBatchSampler(lengths, 60, shuffle=False, num_replicas=2, rank=r)) for r in (0, 1)]
    assert len(evaluation[0]) == len(evaluation[1]) == 1
    assert sorted(evaluation[0][0] + evaluation[1][0]) == list(range(103))


# -- loss ------------------------------------------------------------------------
def test_loss_is_mean_start_end_cross_entropy_over_real_tokens():
    torch.manual_seed(0)
    features = ragged_features([4, 9, 6])
    batch = PadCollator(features, 0)([0, 1, 2])
    model = TokenModel(vocab=60)
    task = QATask(model, optimizer_factory=lambda m: torch.optim.SGD(m.parameters(), lr=0.1))
    task.log = lambda *args, **kwargs: None
    loss = task.training_step(batch, 0)
    output = model(batch["input_ids"], batch["attention_mask"])
    expected = []
    for row, n in enumerate([4, 9, 6]):  # cross-entropy over the window's own tokens only
        s = F.cross_entropy(output.start_logits[row, :n][None], batch["start_positions"][row : row + 1])
        e = F.cross_entropy(output.end_logits[row, :n][None], batch["end_positions"][row : row + 1])
        expected.append((s, e))
    mean = (torch.stack([s for s, _ in expected]).mean() + torch.stack([e for _, e in expected]).mean()) / 2
    assert torch.isclose(loss, mean, atol=1e-6)


# -- scheduler ---------------------------------------------------------------------
class RateProbe(pl.Callback):
    """Records the learning rate the optimizer uses at each optimizer step."""

    def __init__(self):
        self.rates = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.rates.append(optimizer.param_groups[0]["lr"])


@pytest.mark.parametrize("accumulate", [1, 2])
def test_scheduler_steps_once_per_optimizer_step(qaframe_host, accumulate):
    torch.manual_seed(0)
    features = ragged_features([5, 8, 6, 7] * 8)  # 32 windows: 8 batches of 4
    adamw = qaframe_host.registry("optimizer").get("adamw").factory
    linear = qaframe_host.registry("scheduler").get("linear-warmup").factory
    seen_total = []

    def schedule(optimizer, total_steps):
        seen_total.append(total_steps)
        return linear(optimizer, SchedulerSettings(total_steps=total_steps, warmup_steps=2))

    task = QATask(TokenModel(vocab=60), optimizer_factory=lambda m: adamw(m, OptimizerSettings(learning_rate=0.01)),
                  scheduler_factory=schedule)
    data = QADataModule(features, None, pad_token_id=0, train_batch_size=4)
    probe = RateProbe()
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", devices=1, accumulate_grad_batches=accumulate, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         use_distributed_sampler=False, callbacks=[probe])
    trainer.fit(task, train_dataloaders=data.train_dataloader())
    total = 16 // accumulate
    assert seen_total == [total] and trainer.global_step == total and len(probe.rates) == total
    expected = [0.01 * ((s + 1) / 2 if s < 2 else (total - s) / (total - 2)) for s in range(total)]
    assert probe.rates == pytest.approx(expected)


class NormRecordingAdamW(torch.optim.AdamW):
    """Fused AdamW that records the gradient norm it is stepped with (after any clipping)."""

    norms: list[float] = []

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        self.norms.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))))
        super().step()
        return loss


@pytest.mark.parametrize("precision", ["32", "bf16-mixed"])
def test_a_fused_optimizer_is_clipped_under_every_unscaled_precision(precision):
    # Lightning's mixed-precision plugin alone refuses to clip for a fused optimizer, even under bf16 (no scaler)
    torch.manual_seed(0)
    NormRecordingAdamW.norms = []
    task = QATask(TokenModel(vocab=60), optimizer_factory=lambda m: NormRecordingAdamW(m.parameters(), lr=0.01, fused=True))
    data = QADataModule(ragged_features([5, 8, 6, 7] * 2), None, pad_token_id=0, train_batch_size=4)
    trainer = pl.Trainer(max_steps=2, accelerator="cpu", devices=1, precision=precision, gradient_clip_val=1e-3, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         use_distributed_sampler=False)
    trainer.fit(task, train_dataloaders=data.train_dataloader())
    assert len(NormRecordingAdamW.norms) == 2
    assert NormRecordingAdamW.norms == pytest.approx([1e-3, 1e-3], rel=1e-3)  # the raw gradients are far larger


def test_a_model_handed_over_in_eval_mode_trains_in_train_mode():
    # transformers 5's from_pretrained returns the model in eval mode (dropout off); Lightning keeps the modes it finds
    from pytorch_lightning.callbacks import Callback

    class Modes(Callback):
        seen: list[bool] = []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.seen.append(all(module.training for module in pl_module.model.modules()))

    model = TokenModel(vocab=60).eval()
    task = QATask(model, optimizer_factory=lambda m: torch.optim.AdamW(m.parameters()))
    data = QADataModule(ragged_features([5, 8, 6, 7]), None, pad_token_id=0, train_batch_size=2)
    trainer = pl.Trainer(max_steps=2, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False, callbacks=[Modes()])
    trainer.fit(task, train_dataloaders=data.train_dataloader())
    assert Modes.seen == [True, True]


def test_under_fsdp_the_gradients_are_clipped_by_the_root_module_over_every_shard():
    # Lightning's FSDP precision plugin raises for clipping by norm; the root FSDP module's clip_grad_norm_ is the way
    from pytorch_lightning.plugins.precision import FSDPPrecision
    from pytorch_lightning.strategies import FSDPStrategy

    clipped = []
    strategy = FSDPStrategy()
    strategy.model = SimpleNamespace(clip_grad_norm_=clipped.append)
    task = QATask(TokenModel(vocab=60), optimizer_factory=lambda m: torch.optim.AdamW(m.parameters()))
    task._trainer = SimpleNamespace(strategy=strategy, precision_plugin=FSDPPrecision("bf16-mixed"))
    task.configure_gradient_clipping(None, gradient_clip_val=0.5)
    task.configure_gradient_clipping(None, gradient_clip_val=0.0)  # --gradient-clip-val 0: no clipping
    assert clipped == [0.5]


# -- validation --------------------------------------------------------------------
class ExactMetric:
    """Share of predictions equal to a gold answer (enough to compare two runs)."""

    name = "exact"

    def compute(self, predictions, references):
        exact = 100.0 * np.mean([predictions[k] in references[k] for k in references])
        return {"exact_match": exact, "f1": exact}


@pytest.fixture(scope="module")
def left_padding_bert(tiny_model_dir):
    """The tiny KcBERT (absolute positions, random weights) with a tokenizer that says padding_side="left", and windows of
    several lengths from it."""
    from transformers import AutoTokenizer

    from qaframe.features import build_featurizer
    from qaframe.predictor import Predictor
    from qaframe_plugins.heads import span

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir, padding_side="left")
    torch.manual_seed(0)
    model = span(ModelSpec(source=str(tiny_model_dir), random_init=True), pretrained=False).eval()
    featurizer = build_featurizer("sliding-window", FeaturizerSettings(max_seq_length=24, doc_stride=8, max_query_length=8))
    contexts = ["서울은 대한민국의 수도이다. 부산은 항구 도시이다.", "김철수는 1987년에 태어났다.", "사과는 빨갛고 바나나는 노랗다. " * 6]
    examples = [QAExample(str(i), "", "무엇?", c, (Answer(c[:2], 0),)) for i, c in enumerate(contexts)]
    features = featurizer.featurize(examples, tokenizer)
    assert len(set(features.lengths.tolist())) > 2  # windows of several lengths: batches of them are padded
    return SimpleNamespace(predictor=Predictor(model, tokenizer, featurizer, name="tiny"), examples=examples, features=features)


def test_a_window_gets_the_same_logits_in_any_batch_whatever_the_tokenizers_padding_side(left_padding_bert):
    """BERT adds absolute position embeddings and is given no position ids: a window padded on the left in a longer
    batch would be read at other positions, with other logits."""
    predictor, features = left_padding_bert.predictor, left_padding_bert.features
    logits = {}
    for batch_size in (1, 2, len(features)):
        predictor.batch_size = batch_size
        logits[batch_size] = predictor.logits(features)
    for start, end in logits.values():
        for window, n in enumerate(features.lengths):
            np.testing.assert_allclose(start[window, :n], logits[1][0][window, :n], atol=1e-5)
            np.testing.assert_allclose(end[window, :n], logits[1][1][window, :n], atol=1e-5)


def test_validation_decodes_the_answers_of_one_window_at_a_time(left_padding_bert):
    from qaframe.predictor import window_logits

    predictor, examples, features = left_padding_bert.predictor, left_padding_bert.examples, left_padding_bert.features
    evaluator = Evaluator(examples, features, ExactMetric())
    alone = evaluator.evaluate(*window_logits(predictor.model, features, pad_token_id=0, batch_size=1)[:2])
    task = QATask(predictor.model, optimizer_factory=lambda m: torch.optim.SGD(m.parameters(), lr=0.1), evaluator=evaluator)
    data = QADataModule(None, features, pad_token_id=0, eval_batch_size=len(features))
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, use_distributed_sampler=False)
    trainer.validate(task, dataloaders=data.val_dataloader(), verbose=False)
    assert {"val_f1", "val_exact_match", "val_f1_raw", "val_exact_match_raw"} <= set(trainer.callback_metrics)
    assert task.last_evaluation.predictions == alone.predictions and all(alone.predictions.values())
    for example in examples:
        best = task.last_evaluation.nbest[example.id][0]
        assert example.context[best["start"] : best["end"]] == best["text"] == alone.nbest[example.id][0]["text"]


def test_window_logits_are_each_windows_own_and_leave_the_mode_as_it_was():
    from qaframe.predictor import window_logits

    torch.manual_seed(0)
    features = ragged_features([5, 9, 3, 7, 8])
    model = TokenModel(vocab=60)
    for training in (True, False):
        model.train(training)
        start, end, seen = window_logits(model, features, pad_token_id=0, batch_size=2)
        assert model.training is training and seen.all() and start.shape == end.shape == (5, 9)
        for window, n in enumerate(features.lengths):
            tokens = torch.from_numpy(features.input_ids[features.row_splits[window] : features.row_splits[window + 1]]).long()
            with torch.no_grad():
                alone = model(tokens[None], torch.ones(1, n))
            np.testing.assert_allclose(start[window, :n], alone.start_logits[0].numpy(), rtol=1e-6)
            np.testing.assert_allclose(end[window, :n], alone.end_logits[0].numpy(), rtol=1e-6)
    _, _, seen = window_logits(model, features, pad_token_id=0, batch_size=2, limit_batches=1)
    assert seen.sum() == 2


def test_window_logits_pad_batches_as_validation_does():
    from qaframe.predictor import window_logits

    features = ragged_features([5, 9, 3, 7, 8, 30])
    model, widths = TokenModel(vocab=60), []
    model.register_forward_pre_hook(lambda module, args, kwargs: widths.append(kwargs["input_ids"].shape[1]), with_kwargs=True)
    start, _, _ = window_logits(model, features, pad_token_id=0, batch_size=2, pad_to_multiple_of=8)
    validation = QADataModule(None, features, pad_token_id=0, eval_batch_size=2, pad_to_multiple_of=8).val_dataloader()
    assert widths == [batch["input_ids"].shape[1] for batch in validation] == [8, 8, 30]  # capped at the longest window
    assert start.shape == (6, 30)


def test_the_predictor_loads_without_lightning():
    """`qaframe predict` and `serve` answer through the Predictor, which needs nothing of Lightning: importing it would slow every start."""
    code = "import sys, qaframe.predictor; print('pytorch_lightning' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
