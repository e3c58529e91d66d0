"""The run: resolve names -> corpus -> features (cached) -> QATask -> Trainer -> best checkpoint -> outputs.

`run(config)` does what `qaframe run` does and `evaluate_model(...)` what `qaframe evaluate`
does. Everything cheap that can fail (unknown names, a model that cannot be found, a
max_seq_length above the model's position limit, a bad --resume, an option the checkpoint
holds changed on resume) fails in `prepare`, before data is read; `qaframe run --print-config`
makes the same checks but one: earlier results in the output folder (a run's, an evaluation's),
which it does not touch.

Checkpoints. In <output>/checkpoints one ModelCheckpoint keeps the best by val_f1 and another
last.ckpt, both written after every validation (at each epoch's end, and where --max-steps stops
training, which is validated there even in mid-epoch), each atomically (`CheckpointFiles`): a
checkpoint that cannot be written stops the run in one line saying how to continue it.
Lightning 2.6 reads a checkpoint with `torch.load(path, weights_only=...)` (lightning_fabric's
`_load`); `fit(ckpt_path=..., weights_only=True)` is passed explicitly, and the best checkpoint
is read here with `torch.load(..., weights_only=True)`, so nothing in a checkpoint is unpickled
beyond tensors and plain containers. QATask stores no hyperparameters (nothing to pickle):
the config lives in config.yaml.

The final evaluation runs on global rank 0 only, in one process, with the best weights (a
plain inference loop, see qaframe.predictor.window_logits), so it is the same for every
strategy; the other ranks return after training.

Outputs are written as one set (`write_outputs`), metrics.json last: its presence means the run
completed. Its scores name the data they are about (`scored_metrics`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
from pickle import UnpicklingError
import resource
import shutil
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from functools import partial
from io import BytesIO
from pathlib import Path
from typing import Any, Callable, Sequence

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint, TQDMProgressBar
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.plugins import TorchCheckpointIO
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from qaframe import io, plugins
from qaframe.config import RunConfig
from qaframe.errors import UserError, first_few, held_back, one_line
from qaframe.features import build_featurizer, load_or_build, require_offsets
from qaframe.models import (check_max_seq_length, cuda_kernels, load_config, load_tokenizer, native_bf16,
                            require_weights, resolve_model)
from qaframe.predictor import METADATA_FILE, Predictor, featurizer_name, window_logits
from qaframe.task import Evaluator, QADataModule, QATask
from qaframe.types import (REFINER_STATE_FILE, CorpusOptions, CorpusSplit, Features, FeaturizerSettings, ModelSpec,
                           OptimizerSettings, SchedulerSettings, TrainableRefiner, check_examples, no_such_split)

Echo = Callable[[str], None]
RANK_ZERO_LOG = logging.getLogger("pytorch_lightning.utilities.rank_zero")  # Lightning's messages, from global rank 0 only
# Lightning advertises a cloud logger on every Trainer it builds, and notes Ctrl-C before it stops (the CLI's
# `Interrupted` line says what was kept); a run's output keeps to the run
RANK_ZERO_LOG.addFilter(lambda record: not record.getMessage().lstrip().startswith(("💡 Tip", "Detected KeyboardInterrupt")))
# warnings of Lightning's with nothing to act on, hidden while a run trains (`quiet_training`)
EXPECTED_WARNINGS = (
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",  # torch 2.13 deprecates a pytree class Lightning 2.6 builds every step
    r"The number of training batches \(\d+\) is smaller than the logging interval",  # the last step is logged anyway
)
RESUME_WARNING = r"Checkpoint directory .* exists and is not empty"  # where --resume continues, the checkpoints are


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def quiet_training(resuming: bool):
    """Hide EXPECTED_WARNINGS (and RESUME_WARNING when `resuming`) inside the block."""
    with warnings.catch_warnings():
        for message in (*EXPECTED_WARNINGS, RESUME_WARNING) if resuming else EXPECTED_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        yield


@dataclass
class RunResult:
    """What a run produced: the output folder and the final metrics (rank 0)."""

    output_dir: Path
    metrics: dict[str, Any]
    is_global_zero: bool = True


def resolve_precision(precision: str, accelerator: str) -> str:
    """`auto` -> bf16-mixed on a CUDA GPU that computes bfloat16 natively, else 32; other values pass through."""
    if precision != "auto":
        return precision
    return "bf16-mixed" if accelerator in ("auto", "gpu", "cuda") and native_bf16() else "32"


# what Lightning needs to resume training from a checkpoint (a weights-only file lacks the optimizer and loop states)
CHECKPOINT_KEYS = {"state_dict", "pytorch-lightning_version", "optimizer_states", "loops"}


def check_checkpoint_fits(checkpoint: str, task: QATask, model_name: str) -> None:
    """UserError unless the weights in `checkpoint` have the names and shapes of `task`'s (the model --model builds)."""
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)["state_dict"]
    wanted = task.state_dict()
    missing, unexpected = sorted(wanted.keys() - saved.keys()), sorted(saved.keys() - wanted.keys())
    reshaped = sorted(k for k in wanted.keys() & saved.keys() if getattr(saved[k], "shape", None) != wanted[k].shape)
    problems = [f"{label} {first_few(names, 3)}" for label, names in
                (("missing", missing), ("unexpected", unexpected), ("of another shape", reshaped)) if names]
    if problems:
        raise UserError(f"--resume {checkpoint}: its weights do not fit the model of --model {model_name} ({'; '.join(problems)}); "
                        "resume with the --model and --head it was trained with")


def resolve_resume(resume: str | None, output_dir: Path, max_steps: int = -1) -> str | None:
    """The checkpoint path for --resume (a file, or `last`), None without; refuses a checkpoint that cannot resume
    training, and one already past `max_steps` (its outputs would report more steps than asked for)."""
    if resume is None:
        return None
    if not resume.strip():
        raise UserError("--resume is empty; pass last (the output folder's last checkpoint) or a .ckpt file")
    path = output_dir / "checkpoints" / "last.ckpt" if resume == "last" else Path(resume)
    if not path.is_file():
        raise UserError(f"--resume {resume}: no checkpoint at {path}; start without --resume, or pass an existing .ckpt file")
    try:  # read it safely now, so a bad file fails before anything is featurized or written
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as error:
        reason = one_line(str(error))[:200]
        raise UserError(f"--resume {resume}: {path} is not a checkpoint that can be loaded safely ({reason}); "
                        "pass a checkpoint written by `qaframe run`") from None
    if not isinstance(state, dict):
        lacks = f"a dict of training state: it holds a {type(state).__name__}"
    elif not CHECKPOINT_KEYS <= state.keys():
        lacks = ", ".join(sorted(CHECKPOINT_KEYS - state.keys()))
    else:
        lacks = "" if isinstance(state["state_dict"], dict) else "a state_dict of tensors"
    if lacks:
        raise UserError(f"--resume {resume}: {path} is not a training checkpoint of `qaframe run` (it lacks {lacks}); "
                        "pass a .ckpt file from <output-dir>/checkpoints")
    if max_steps != -1 and int(state.get("global_step", 0)) > max_steps:
        raise UserError(f"--resume {resume}: {path} was written after {state['global_step']} optimizer steps, past "
                        f"--max-steps {max_steps}; resume with --max-steps {state['global_step']} or more")
    return str(path)


def _require_split(corpus, name: str, split: str, options: CorpusOptions) -> None:
    if split not in corpus.splits():
        error = no_such_split(name, split, corpus.splits())
        if split in ("train", "dev") and (options.train_file or options.dev_file):  # a corpus that reads no files refuses these
            error = UserError(f"{error}; pass the {split} file with --{split}-file")
        raise error


def _load_split(corpus, name: str, split: str, options: CorpusOptions, echo: Echo) -> CorpusSplit:
    _require_split(corpus, name, split, options)
    loaded = corpus.load(split)
    where = f"corpus '{name}', {split} split"
    check_examples(loaded.examples, where)
    if not any(example.answers for example in loaded.examples):  # a plugin's split; the built-in loaders refuse this already
        raise UserError(f"{where}: no answerable questions ({len(loaded.examples)} examples, none with an answer); "
                        "training and scoring need answered questions")
    parts = []
    if loaded.repaired:
        parts.append(f"repaired {len(loaded.repaired)} answers or records (text brought to Unicode NFC, whitespace trimmed "
                     f"from an answer's ends, or answer_start moved to the nearest occurrence of the text): {first_few(loaded.repaired)}")
    if loaded.skipped:
        parts.append(f"skipped {len(loaded.skipped)} answers or records: "
                     f"{first_few([f'{record} ({reason})' for record, reason in loaded.skipped])}")
    if parts:
        files = ", ".join(str(path) for path in loaded.files)
        echo(f"{split}{f' ({files})' if files else ''}: " + "; ".join(parts))
    return loaded


def create_metric(host, corpus_name: str, corpus) -> Any:
    """The metric `corpus` names, tried once on one exact answer: it must give exact_match and f1 numbers, before any training."""
    name, registry = corpus.metric, host.registry("metric")
    if name not in registry:
        raise UserError(f"corpus '{corpus_name}' is scored with metric '{name}', which is not registered: {registry.unknown_message(name)}")
    metric = registry.create(name)
    scores = metric.compute({"q": "서울"}, {"q": ["서울"]})
    if not isinstance(scores, dict) or not all(isinstance(scores.get(key), (int, float)) for key in ("exact_match", "f1")):
        raise UserError(f"metric '{name}' returned {scores!r} for one exact answer; a metric's compute() must return "
                        "a dict with exact_match and f1 numbers")
    return metric


def _features(featurizer, tokenizer, loaded, split: str, cache_dir: Path, overwrite: bool, echo: Echo):
    start = time.perf_counter()
    features, hit = load_or_build(featurizer, tokenizer, loaded, cache_dir, overwrite=overwrite)
    source = "from cache" if hit else f"built in {time.perf_counter() - start:.1f}s"
    echo(f"{split}: {len(loaded.examples)} examples -> {len(features)} windows ({source})")
    return features


def peak_memory_mb(device_type: str) -> float:
    """Peak GPU memory allocated (CUDA) or peak resident memory of this process (CPU), in MiB."""
    if device_type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


@dataclass
class Plan:
    """What a run resolves and checks before it reads any data."""

    config: RunConfig  # model defaults filled in; refiner, output and cache folders resolved (as config.yaml holds it)
    host: Any
    corpus: Any
    corpus_options: CorpusOptions
    metric: Any
    refiner: Any  # None for "none"
    spec: ModelSpec
    tokenizer: Any  # None where prepare() was told not to fetch a hub model's files
    featurizer: Any
    resume: str | None  # the checkpoint to resume from
    config_yaml: str  # what config.yaml holds: the options as given, the per-model defaults left unset (RunConfig.to_yaml)


def prepare(config: RunConfig, *, fetch: bool = True, training: bool = True) -> Plan:
    """Resolve and check everything cheap before data is read: names, corpus options and splits, metric, refiner, model
    (its config and tokenizer: from the hub only with `fetch`), --max-seq-length, --resume, --output-dir, window settings.

    Without `training` (--print-config, which trains and writes nothing) neither an earlier run in the output folder nor
    this machine (`RunConfig.check_machine`) is an obstacle.
    """
    if training:
        config.check_machine()
    host = plugins.get_host()
    for kind in ("featurizer", "head", "optimizer", "scheduler"):
        host.registry(kind).get(getattr(config, kind))
    corpus_options = CorpusOptions(config.data_dir, config.train_file, config.dev_file, config.strict)
    corpus = host.create("corpus", config.corpus, corpus_options)
    for split in ("train", "dev"):
        _require_split(corpus, config.corpus, split, corpus_options)
    metric = create_metric(host, config.corpus, corpus)
    refiner_name = config.refiner or corpus.refiner
    refiner = host.create_refiner(refiner_name)
    spec = dataclasses.replace(resolve_model(config.model), trust_remote_code=config.trust_remote_code)
    fetched = fetch or Path(spec.source).is_dir()
    model_config = load_config(spec) if fetched else None
    check_max_seq_length(spec, model_config, config.max_seq_length)
    if config.resume is None:
        require_weights(spec)  # a resumed run's weights come from its checkpoint
    tokenizer = load_tokenizer(spec) if fetched else None
    given = dataclasses.replace(config, refiner=refiner_name, output_dir=config.resolved_output_dir(),
                                cache_dir=config.resolved_cache_dir())
    config = given.with_model_defaults(spec.random_init)
    io.check_writable_folder(config.cache_dir, f"--cache-dir {config.cache_dir}")
    check_output_dir(config.output_dir, new_run=training and config.resume is None)
    resume = resolve_resume(config.resume, config.output_dir, config.max_steps)
    if resume is not None:
        config.check_resume(Path(resume), spec.random_init)
    featurizer = build_featurizer(config.featurizer, FeaturizerSettings(config.max_seq_length, config.doc_stride, config.max_query_length))
    return Plan(config, host, corpus, corpus_options, metric, refiner, spec, tokenizer, featurizer, resume,
                given.to_yaml(given.model_defaults(spec.random_init)))


RUN_FOLDERS = ("checkpoints", "logs", "model")
RUN_FILES = ("config.yaml", "predictions.json", "nbest_predictions.json", "metrics.json")


def check_output_dir(output_dir: Path, *, new_run: bool) -> None:
    """UserError unless `qaframe run` can write in `output_dir`, where what it writes is absent or of its kind (a folder
    where it makes one, a file where it writes one): found after training, a clash would cost the run. A `new_run` (one
    that does not resume) is also refused where an earlier run's checkpoints or model are, or an evaluation's results
    (metrics.json), which it would replace. A folder's name must be UTF-8, and every run folder in it writable."""
    try:
        str(output_dir).encode("utf-8")
    except UnicodeEncodeError:  # transformers saves the model's files under names it encodes as UTF-8
        raise UserError(f"--output-dir {os.fsencode(output_dir).decode('utf-8', 'backslashreplace')}: the name is not UTF-8, "
                        "which the model's files cannot be saved under; choose a folder whose name is UTF-8") from None
    label = f"--output-dir {output_dir}"
    io.check_writable_folder(output_dir, label)
    for name in RUN_FOLDERS:
        if (output_dir / name).exists() and not (output_dir / name).is_dir():
            raise UserError(f"{label}: {output_dir / name} is a file where the run writes a folder; move it away or choose "
                            "another --output-dir")
        if (output_dir / name).is_dir():
            io.check_writable_folder(output_dir / name, label)
    for name in RUN_FILES:
        if (output_dir / name).is_dir():
            raise UserError(f"{label}: {output_dir / name} is a folder where the run writes a file; move it away or choose "
                            "another --output-dir")
    if not new_run:
        return
    checkpoints = output_dir / "checkpoints"
    if checkpoints.is_dir() and any(checkpoints.glob("*.ckpt")):
        raise UserError(f"{checkpoints} already holds checkpoints of an earlier run; pass --resume last to continue it, "
                        f"choose another --output-dir, or delete {output_dir} to start over")
    if (output_dir / "model").is_dir():
        raise UserError(f"{output_dir / 'model'} holds the model of an earlier run, which this run would replace; "
                        "choose another --output-dir, or remove that run to train again there")
    if (output_dir / "metrics.json").exists():
        raise UserError(f"{label} holds the results of an evaluation (metrics.json), which this run would replace; "
                        "choose another --output-dir")


def run(config: RunConfig, echo: Echo = _stderr, callbacks: Sequence[Callback] = ()) -> RunResult:
    """Train, pick the best checkpoint by dev F1, evaluate it and write every output; see the module docstring.

    `callbacks`: extra Lightning callbacks for the Trainer (progress reporting, timing), after qaframe's own.
    """
    plan = prepare(config)
    config, output_dir = plan.config, plan.config.output_dir
    with held_back(RANK_ZERO_LOG) as banner:  # Lightning's device lines wait for training: an error before it stays one line
        trainer, checkpoint, clock = _trainer(config, output_dir, [WriteConfig(plan.config_yaml), *callbacks])  # flags before data
    dev_split, train, dev = _data(plan, echo)
    evaluator = Evaluator(dev_split.examples, dev, plan.metric, plan.refiner, config.n_best_size, config.max_answer_length)
    task = _task(plan, trainer, evaluator)
    for record in banner:
        RANK_ZERO_LOG.handle(record)
    with cuda_kernels(trainer.strategy.root_device, matmul_precision=config.matmul_precision,
                      cudnn_attention=config.cudnn_attention):
        _fit(plan, trainer, task, train, dev)
        if not trainer.is_global_zero:
            return RunResult(output_dir, {}, is_global_zero=False)
        best = best_checkpoint(output_dir / "checkpoints", checkpoint.best_model_path)
        evaluation, eval_seconds = _evaluate_best(plan, trainer, task, best, evaluator, dev)
    metrics = {
        **scored_metrics(evaluation, dev_split, metric=plan.corpus.metric, corpus=config.corpus, split_name="dev",
                         model=config.model, refiner=config.refiner),
        "best_checkpoint": Path(best).name if best else None,
        "epochs": round(trainer.global_step / math.ceil(trainer.num_training_batches / config.accumulate_grad_batches), 2),
        "optimizer_steps": trainer.global_step,
        "train_seconds": round(clock.train_seconds, 2),
        "train_windows": clock.windows * trainer.world_size,
        "train_windows_per_second": round(clock.windows * trainer.world_size / max(clock.train_seconds, 1e-9), 1),
        "eval_seconds": round(eval_seconds, 2),
        "precision": str(trainer.precision),
        "devices": trainer.world_size,
        "peak_memory_mb": round(peak_memory_mb(trainer.strategy.root_device.type), 1),
    }
    write_model(task.model, plan.tokenizer, output_dir / "model",
                model_metadata(config, plan.featurizer.settings, str(trainer.precision)), plan.refiner)
    write_outputs(output_dir, evaluation, metrics)
    return RunResult(output_dir, metrics)


def _data(plan: Plan, echo: Echo) -> tuple[CorpusSplit, Features, Features]:
    """The dev split and the windows of train and dev (cached), with a trainable refiner fitted on the training examples."""
    config, tokenizer = plan.config, plan.tokenizer
    train_split = _load_split(plan.corpus, config.corpus, "train", plan.corpus_options, echo)
    dev_split = _load_split(plan.corpus, config.corpus, "dev", plan.corpus_options, echo)
    dev = _features(plan.featurizer, tokenizer, dev_split, "dev", config.cache_dir, config.overwrite_cache, echo)
    require_offsets(dev, config.featurizer)  # evaluation decodes answers through the offsets: checked before the train split
    train = _features(plan.featurizer, tokenizer, train_split, "train", config.cache_dir, config.overwrite_cache, echo)
    if isinstance(plan.refiner, TrainableRefiner):
        plan.refiner.fit(train_split.examples, tokenizer)
        echo(f"refiner {config.refiner}: fitted on the {len(train_split.examples)} training examples")
    return dev_split, train, dev


def _task(plan: Plan, trainer: pl.Trainer, evaluator: Evaluator) -> QATask:
    """The model (seeded; compiled under --compile) in a QATask with the optimizer and scheduler plugins; the weights of
    a checkpoint to resume from must fit it."""
    config = plan.config
    pl.seed_everything(config.seed, workers=True, verbose=False)
    model = plan.host.create("head", config.head, plan.spec, pretrained=plan.resume is None and not plan.spec.random_init)
    if config.compile:
        model.compile(dynamic=True, mode=config.compile_mode)
    # a loss-scaled step (16-mixed on a GPU) must unscale before clipping, which Lightning does only for unfused optimizers
    scaled = getattr(trainer.precision_plugin, "scaler", None) is not None
    optimizer_settings = OptimizerSettings(config.learning_rate, config.weight_decay,
                                           fused=False if scaled and config.gradient_clip_val else None)
    task = QATask(
        model,
        optimizer_factory=partial(_create_optimizer, plan.host.registry("optimizer"), config.optimizer, optimizer_settings),
        scheduler_factory=partial(_create_scheduler, plan.host.registry("scheduler"), config.scheduler, config.warmup_ratio),
        evaluator=evaluator,
    )
    if plan.resume is not None:
        check_checkpoint_fits(plan.resume, task, config.model)
    return task


# QATask's factories, bound with functools.partial; what they build is checked
def _create_optimizer(registry, name: str, settings: OptimizerSettings, model):
    return registry.create(name, model, settings)


def _create_scheduler(registry, name: str, warmup_ratio: float, optimizer, total_steps: int):
    return registry.create(name, optimizer, SchedulerSettings(total_steps=total_steps, warmup_steps=int(warmup_ratio * total_steps)))


def _fit(plan: Plan, trainer: pl.Trainer, task: QATask, train: Features, dev: Features) -> None:
    """Train `task` on the windows of `train`, validating on `dev`, from the checkpoint to resume from if any."""
    config, tokenizer = plan.config, plan.tokenizer
    device = trainer.strategy.root_device
    datamodule = QADataModule(
        train, dev, pad_token_id=tokenizer.pad_token_id or 0,
        train_batch_size=config.train_batch_size, eval_batch_size=config.eval_batch_size, seed=config.seed,
        group_by_length=config.group_by_length, pad_to_multiple_of=config.pad_to_multiple_of, num_workers=config.num_workers,
        pin_memory=device.type == "cuda",
    )
    try:
        with quiet_training(resuming=plan.resume is not None):
            trainer.fit(task, datamodule=datamodule, ckpt_path=plan.resume, weights_only=True)
    except SystemExit:
        if trainer.interrupted:  # Lightning turns Ctrl-C into exit(1) after its own shutdown; the CLI says what was kept
            last = plan.config.output_dir / "checkpoints" / "last.ckpt"
            raise KeyboardInterrupt(f"{last} holds the last validated step; continue with --resume last" if last.is_file()
                                    else "no checkpoint was written yet") from None
        raise
    except MisconfigurationException as error:  # found as training starts (a --limit-* fraction under one batch)
        raise UserError(f"cannot train with these options: {error}") from None


def _evaluate_best(plan: Plan, trainer: pl.Trainer, task: QATask, best: str | None, evaluator: Evaluator, dev: Features):
    """The evaluation on `dev` of the weights in `best` (the checkpoint with the best dev F1; None: the weights in memory),
    and its seconds (loading the weights excluded)."""
    config, tokenizer = plan.config, plan.tokenizer
    if best:
        task.load_state_dict(torch.load(best, map_location="cpu", weights_only=True)["state_dict"])
    device = trainer.strategy.root_device
    task.model.to(device)
    start_time = time.perf_counter()
    start, end, seen = window_logits(
        task.model, dev, pad_token_id=tokenizer.pad_token_id or 0,
        batch_size=config.eval_batch_size, device=device, precision=str(trainer.precision),
        pad_to_multiple_of=config.pad_to_multiple_of, limit_batches=config.limit_val_batches,
        group_by_length=config.group_by_length, replicas=trainer.world_size,
    )
    return evaluator.evaluate(start, end, seen), time.perf_counter() - start_time


def scored_metrics(evaluation, split: CorpusSplit, *, metric: str, corpus: str, split_name: str, model: str,
                   refiner: str) -> dict[str, Any]:
    """What metrics.json of `qaframe run` and `qaframe evaluate` says about the scores: EM and F1 (refined and raw), what
    scored them, on which data (the split's files; none for data made in memory) and what was not scored.

    `examples` counts the questions scored; `skipped_questions` those of the split that loading skipped as unusable,
    which the official scorer counts as wrong answers.
    """
    kept = {example.id for example in split.examples}
    return {
        **{key: evaluation.scores[key] for key in ("exact_match", "f1", "exact_match_raw", "f1_raw")},
        "metric": metric,
        "corpus": corpus,
        "split": split_name,
        "files": [str(path) for path in split.files],
        "model": model,
        "examples": evaluation.scores["examples"],
        "skipped_questions": len({record for record, _ in split.skipped} - kept),
        "refiner": refiner,
    }


def best_checkpoint(folder: Path, recorded: str) -> str | None:
    """The best-*.ckpt in `folder` with the highest dev F1 in its name, Lightning's record first among equals; None
    when nothing was validated (the weights in memory are then the last ones).

    Lightning's record alone can name a file elsewhere or gone: after a run folder was moved (Lightning
    then forgets the best score and records only the resumed run's best), or after a kill between
    writing a new best and last.ckpt.
    """
    scored = [(float(match.group(1)), str(path) == recorded, str(path))
              for path in folder.glob("best-*.ckpt") if (match := re.fullmatch(r"best-epoch\d+-f1(-?[\d.]+)\.ckpt", path.name))]
    return max(scored)[2] if scored else None


def _trainer(config: RunConfig, output_dir: Path, callbacks: Sequence[Callback]):
    checkpoint = ModelCheckpoint(
        dirpath=output_dir / "checkpoints", filename="best-epoch{epoch}-f1{val_f1:.2f}", auto_insert_metric_name=False,
        monitor="val_f1", mode="max", save_top_k=1, save_on_train_epoch_end=False, enable_version_counter=False,
    )
    # last.ckpt after every validation, a new best or not (save_last=True rewrites it only with a new best in Lightning 2.6).
    # Both after validation, best first: last.ckpt holds the best's record, and Lightning resuming under --max-steps from
    # a checkpoint written in the epoch-end hooks counted that epoch twice.
    last = ModelCheckpoint(dirpath=output_dir / "checkpoints", filename="last", save_on_train_epoch_end=False,
                           enable_version_counter=False)
    clock = TrainClock()
    limits = {k: v for k in ("limit_train_batches", "limit_val_batches") if (v := getattr(config, k)) is not None}
    try:
        trainer = pl.Trainer(
            accelerator=config.accelerator, devices=config.devices, strategy=config.strategy, num_nodes=config.num_nodes,
            precision=resolve_precision(config.precision, config.accelerator),
            max_epochs=config.max_epochs, max_steps=config.max_steps,
            accumulate_grad_batches=config.accumulate_grad_batches,
            gradient_clip_val=config.gradient_clip_val or None,
            callbacks=[checkpoint, last, ValidateAtMaxSteps(), BatchSeed(config.seed), clock,
                       LossProgressBar(refresh_rate=config.progress_every), *callbacks],
            logger=CSVLogger(output_dir, name="logs"), plugins=[CheckpointFiles()],
            default_root_dir=output_dir, num_sanity_val_steps=0, use_distributed_sampler=False,
            log_every_n_steps=config.progress_every,
            enable_model_summary=False, **limits,
        )
    except ImportError as error:  # an accelerator or strategy whose package is not installed (torch_xla for tpu)
        raise UserError(f"cannot set up training with --accelerator {config.accelerator} --strategy {config.strategy}: a package "
                        f"it needs is missing ({error}); install it, or choose another --accelerator or --strategy") from None
    except (MisconfigurationException, ValueError, RuntimeError, TypeError) as error:
        raise UserError(f"cannot set up training with --accelerator {config.accelerator} --devices {config.devices} "
                        f"--strategy {config.strategy}: {error}") from None
    return trainer, checkpoint, clock


class CheckpointFiles(TorchCheckpointIO):
    """Lightning's checkpoint files (torch.save; read as Lightning reads them), each written through `io.atomic_path`.

    Lightning's own writer writes a local file in place (a full disk leaves a truncated one) and
    skips, silently, one it may not write; here no partial checkpoint ever appears, and one that
    cannot be written stops the run with a UserError saying how to go on from what was saved.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        path = Path(path)
        serialized = BytesIO()  # as Lightning does: an error in writing the file is then the OSError that says why
        torch.save(checkpoint, serialized)
        try:
            with io.atomic_path(path) as temporary:
                temporary.write_bytes(serialized.getbuffer())
        except OSError as error:
            raise UserError(f"cannot write checkpoint {path}: {error.strerror or error}; once files can be written there "
                            f"(free space, permissions), {_how_to_go_on(path.parent)}") from None


def _how_to_go_on(folder: Path) -> str:
    """How to continue a run whose checkpoints are in `folder` after a checkpoint failed to be written."""
    if (folder / "last.ckpt").is_file():
        return "continue with --resume last"
    saved = sorted(folder.glob("*.ckpt"))
    return f"continue with --resume {saved[0]}" if saved else "run the same command again"


class LossProgressBar(TQDMProgressBar):
    """Lightning's TQDM bar, on stderr (Lightning writes it to stdout, which keeps the run's results), showing the
    training loss as of its last refresh (every `refresh_rate` steps).

    The loss is logged without `prog_bar=True`: with it, Lightning turns the loss into a Python
    number after every batch, a read that makes the host wait for the GPU at every step whatever
    the bar's refresh rate. Here it is read only when the bar refreshes.
    """

    # Lightning builds each bar with file=sys.stdout; a run makes no sanity, test or predict bars
    def init_train_tqdm(self):
        with redirect_stdout(sys.stderr):
            return super().init_train_tqdm()

    def init_validation_tqdm(self):
        with redirect_stdout(sys.stderr):
            return super().init_validation_tqdm()

    def get_metrics(self, trainer, pl_module) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        loss = trainer.callback_metrics.get("train_loss")
        return metrics if loss is None else {**metrics, "train_loss": loss.item()}

    def on_exception(self, trainer, pl_module, exception) -> None:
        # closed now, the bars draw their last line before the error's, not after it as Python exits
        for bar in (self._train_progress_bar, self._val_progress_bar):
            if bar is not None:
                bar.close()


class WriteConfig(Callback):
    """Writes config.yaml as training starts (global rank 0): a command that fails before, or in Lightning's set-up,
    leaves the config of the run that wrote the folder's checkpoints as it was."""

    def __init__(self, text: str):
        self.text = text

    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            io.write_text(Path(trainer.default_root_dir) / "config.yaml", self.text)


class ValidateAtMaxSteps(Callback):
    """Stops training at --max-steps through `should_stop`, so that Lightning validates and checkpoints the last steps mid-epoch too."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.max_steps != -1 and trainer.global_step >= trainer.max_steps:
            trainer.should_stop = True


class BatchSeed(Callback):
    """Reseeds torch before every training batch from (seed, epoch, batch), so dropout after a resume matches an uninterrupted run.

    Per batch rather than per epoch: Lightning 2.6 skips on_train_epoch_start for the first
    epoch after resuming from an end-of-epoch checkpoint. Only the generators that training
    draws from are seeded, the CPU's and the module's GPU's: `torch.manual_seed` would also
    queue a lazy seeding, with a formatted stack, for every backend not initialized (XPU,
    MTIA, CUDA on a CPU run), about 1 ms a step.
    """

    def __init__(self, seed: int):
        self.seed = seed

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        seed = self.seed * 1_000_003 + trainer.current_epoch * 100_003 + batch_idx
        torch.default_generator.manual_seed(seed)
        device = pl_module.device
        if device.type == "cuda":
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        elif device.type != "cpu":
            torch.manual_seed(seed)  # another accelerator (mps ...): every backend's generator


class TrainClock(Callback):
    """Counts training windows and the wall time of training, evaluation and the checkpoint writes after it excluded.

    The clock stops when validation starts and runs again at the next training batch (or at the
    end), so the checkpoints written after validation do not count either.
    """

    def __init__(self):
        self.windows = 0
        self.train_seconds = 0.0
        self._started = 0.0
        self._paused: float | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        self._started = time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._resume()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.windows += len(batch["window"])

    def on_validation_start(self, trainer, pl_module) -> None:
        self._paused = time.perf_counter()

    def on_train_end(self, trainer, pl_module) -> None:
        self._resume()
        self.train_seconds = time.perf_counter() - self._started

    def _resume(self) -> None:
        if self._paused is not None:
            self._started += time.perf_counter() - self._paused
            self._paused = None


def model_metadata(config: RunConfig, settings: FeaturizerSettings, precision: str) -> dict[str, Any]:
    """The qaframe.json of an exported model: how to featurize, decode and refine for it, the plugins that provided
    those names (loading warns when another plugin provides one now), and how its run evaluated (precision, batch
    widths, GPU kernel choices: `qaframe evaluate` computes that way, to reproduce the scores)."""
    host = plugins.get_host()
    named = {kind: getattr(config, kind) for kind in ("head", "featurizer", "refiner") if getattr(config, kind) != "none"}
    return {
        "head": config.head,
        "featurizer": config.featurizer,
        "featurizer_settings": dataclasses.asdict(settings),
        "max_answer_length": config.max_answer_length,
        "n_best_size": config.n_best_size,
        "refiner": config.refiner,
        "corpus": config.corpus,
        "base_model": config.model,
        "precision": precision,
        "pad_to_multiple_of": config.pad_to_multiple_of,
        "matmul_precision": config.matmul_precision,
        "cudnn_attention": config.cudnn_attention,
        "plugins": {kind: host.registry(kind).get(name).provider.plugin for kind, name in named.items()},
    }


def write_model(model, tokenizer, folder: Path, metadata: dict[str, Any], refiner=None) -> None:
    """Write save_pretrained files, the tokenizer, qaframe.json and a trainable refiner's refiner.json into `folder`, replacing it as a whole."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the exported model is meant to be shared
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        io.write_json(staging / METADATA_FILE, metadata)
        if isinstance(refiner, TrainableRefiner):
            io.write_json(staging / REFINER_STATE_FILE, refiner.to_json())
        for file in staging.rglob("*"):
            if file.is_file():
                io.share(file)  # safetensors writes the weights private (0600): a serving account could not load them
        if folder.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old.", dir=folder.parent))
            folder.rename(old / folder.name)
            staging.rename(folder)
            shutil.rmtree(old)
        else:
            staging.rename(folder)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def write_outputs(output_dir: Path, evaluation, metrics: dict[str, Any]) -> None:
    """predictions.json ({id: text}), nbest_predictions.json and metrics.json, as one set (`io.write_texts`): none replaces
    an earlier command's until all three are written, and metrics.json goes last, so that it marks a complete set."""
    io.write_texts({output_dir / "predictions.json": io.json_text(evaluation.predictions),
                    output_dir / "nbest_predictions.json": io.json_text(evaluation.nbest),
                    output_dir / "metrics.json": io.json_text(metrics)})


def evaluate_model(model_dir: Path, corpus_name: str, output_dir: Path, *, split: str = "dev",
                   options: CorpusOptions = CorpusOptions(), refiner: str | None = None, batch_size: int = 64,
                   device: str = "cpu", cache_dir: Path | None = None, trust_remote_code: bool = False,
                   echo: Echo = _stderr) -> dict[str, Any]:
    """Score a saved model on a corpus split; writes predictions.json, nbest_predictions.json and metrics.json."""
    io.check_writable_folder(output_dir, f"--output-dir {output_dir}")
    if (output_dir / "model").is_dir():
        raise UserError(f"--output-dir {output_dir} holds a `qaframe run` (model/), whose metrics.json and predictions.json "
                        "this would replace; evaluate into another folder")
    if (output_dir / "checkpoints").is_dir():
        raise UserError(f"--output-dir {output_dir} holds the checkpoints of an unfinished `qaframe run`, for which a "
                        "metrics.json would mean that the run completed; evaluate into another folder")
    cache = cache_dir or io.cache_root()
    io.check_writable_folder(cache, f"--cache-dir {cache}")
    host = plugins.get_host()
    if refiner not in (None, "none"):
        host.registry("refiner").get(refiner)  # an unknown name fails before the weights load
    corpus = host.create("corpus", corpus_name, options)
    metric = create_metric(host, corpus_name, corpus)
    loaded = _load_split(corpus, corpus_name, split, options, echo)  # a bad file is reported before the weights load
    predictor = Predictor.load(model_dir, device=device, trust_remote_code=trust_remote_code, as_trained=True)
    refiner_name = refiner or predictor.metadata.get("refiner") or corpus.refiner
    if refiner_name == predictor.metadata.get("refiner", "none"):
        refiner_obj = predictor.refiner  # fitted state included (refiner.json)
    else:
        refiner_obj = host.create_refiner(refiner_name)
        if isinstance(refiner_obj, TrainableRefiner):
            refiner_obj.fit(_load_split(corpus, corpus_name, "train", options, echo).examples, predictor.tokenizer)
    predictor.batch_size = batch_size
    features = _features(predictor.featurizer, predictor.tokenizer, loaded, split, cache, False, echo)
    require_offsets(features, featurizer_name(predictor.metadata))
    start_time = time.perf_counter()
    start, end = predictor.logits(features)
    evaluator = Evaluator(loaded.examples, features, metric, refiner_obj, predictor.n_best_size, predictor.max_answer_length)
    evaluation = evaluator.evaluate(start, end)
    metrics = {
        **scored_metrics(evaluation, loaded, metric=corpus.metric, corpus=corpus_name, split_name=split, model=str(model_dir),
                         refiner=refiner_name),
        "eval_seconds": round(time.perf_counter() - start_time, 2),
    }
    write_outputs(output_dir, evaluation, metrics)
    return metrics


def summary(metrics: dict[str, Any], output_dir: Path, written: Sequence[str] = ("metrics.json", "predictions.json")) -> str:
    """The lines `qaframe run` and `qaframe evaluate` print at the end (`metrics`: see `scored_metrics`); `written`: the
    outputs named."""
    data = f"{metrics['examples']} {metrics['split']} examples of {metrics['corpus']}"
    if metrics["files"]:
        data += f" from {', '.join(metrics['files'])}"
    if metrics["skipped_questions"]:
        data += f"; questions skipped while loading, not scored: {metrics['skipped_questions']}"
    return (
        f"exact match {metrics['exact_match']:.2f}  F1 {metrics['f1']:.2f}  ({metrics['metric']} metric, {data})\n"
        f"outputs: {output_dir}  ({', '.join(written)})"
    )

