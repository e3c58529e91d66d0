"""RunConfig: every option of `qaframe run`, its default, its help text, YAML loading and validation.

Sources, lowest to highest priority: the defaults below, a YAML file (`--config run.yaml`),
then command-line flags. The CLI is generated from the fields here, so a new option is added
in one place. In a YAML file, `option: null` (or an empty value) leaves the option at its
default, and relative paths are read from the current folder, as on the command line (so the
config.yaml a run writes, whose paths are those the run was given, is reused from the folder
the run started in).

Defaults. With no flags at all, `qaframe run` is the offline quickstart: the built-in
`synthetic` corpus and the packaged `tiny` model (KcBERT vocabulary, 2 layers, random
weights). Every other default is chosen for a real fine-tuning run (`--corpus korquad --model
kcbert`): windows of 256 tokens (KcBERT allows 300 positions) overlapping by 64, warmup over
10 % of the steps, gradient clipping at 1.0. A model trained from scratch and a pretrained one
need different recipes, so three options are chosen per model when left unset (see
`MODEL_DEFAULTS`; the epochs only without `--max-steps`, which then alone sets the length): a
pretrained model (KcBERT, any hub id or folder) gets the usual BERT fine-tuning recipe,
learning rate 5e-5, 3 epochs, batch 32; a model built with random weights (the `tiny` alias)
gets learning rate 1e-3, 8 epochs, batch 16, which takes the synthetic set to exact match
above 90 (measured: 96.7 on its dev split, 94 already after epoch 4; fewer
steps left it at 50-80 depending on the seed). `--print-config` shows the values chosen.
`precision` left at `auto` means bf16-mixed on a GPU that computes bfloat16 natively (Ampere
or newer), else 32-bit.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qaframe.errors import UserError, one_line
from qaframe.io import cache_root

PRECISIONS = ("auto", "32", "bf16-mixed", "16-mixed")
MATMUL_PRECISIONS = ("highest", "high", "medium")  # torch.set_float32_matmul_precision's values
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")  # torch.compile's modes
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")  # the modes that record CUDA graphs on a GPU
SPAWNING_STRATEGIES = ("ddp_spawn", "ddp_fork", "ddp_notebook")  # Lightning strategies that train in child processes
# what tells a process of a multi-node run its node, as Lightning 2.6 reads it (lightning_fabric.plugins.environments):
# NODE_RANK or GROUP_RANK (a start by hand on each node, torchrun), TORCHELASTIC_RUN_ID (torchrun), an MPI launcher's
# OMPI_COMM_WORLD_SIZE or PMI_SIZE (OpenMPI, MPICH; Lightning also needs mpi4py), SLURM_NTASKS (srun; not in a job
# named bash or interactive, which Lightning leaves to the others), and LSF's jsrun, all of LSF_VARIABLES.
# Lightning never detects Kubeflow's environment itself: a Kubeflow job passes when it runs torchrun or sets NODE_RANK.
NODE_VARIABLES = ("NODE_RANK", "GROUP_RANK", "TORCHELASTIC_RUN_ID", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE")
LSF_VARIABLES = ("LSB_JOBID", "LSB_DJOB_RANKFILE", "JSM_NAMESPACE_LOCAL_RANK", "JSM_NAMESPACE_SIZE")
# options left unset get these values, by whether the model starts from random weights
MODEL_DEFAULTS = {
    "random_init": {"learning_rate": 1e-3, "max_epochs": 8, "train_batch_size": 16},
    "pretrained": {"learning_rate": 5e-5, "max_epochs": 3, "train_batch_size": 32},
}
PER_MODEL = "; default: {pretrained} for a pretrained model, {random_init} for one built with random weights."
# what a checkpoint holds (the weights' shapes, the optimizer's and scheduler's state): a resumed run must keep them,
# since the checkpoint's state would fail to load or silently replace a new value (a new learning rate had no effect)
# what a checkpoint holds or was chosen on: the model and its training, and the data (dev F1 picks the best checkpoint)
KEPT_ON_RESUME = ("model", "head", "optimizer", "scheduler", "learning_rate", "weight_decay", "corpus", "data_dir", "train_file",
                  "dev_file")
SEEDS = (0, 2**32 - 1)  # the seeds numpy (and so Lightning's seed_everything) accepts
# what the Korean NLP book (nlpbook, ratsnlp's QATrainArguments) names otherwise: its name -> qaframe's option (and value)
NLPBOOK_NAMES = {
    "batch_size": "train_batch_size",  # the book's training batch
    "epochs": "max_epochs",
    "pretrained_model_name": "model",
    "downstream_model_dir": "output_dir",
    "downstream_corpus_name": "corpus",
    "downstream_corpus_root_dir": "data_dir",
    "cpu_workers": "num_workers",
    "fp16": "precision: 16-mixed",
}


def per_model(name: str) -> str:
    """The help text's note on a per-model default."""
    return PER_MODEL.format(**{kind: values[name] for kind, values in MODEL_DEFAULTS.items()})


def option(default: Any, help: str, kind: str = "str", choices: tuple[str, ...] | None = None):
    """A RunConfig field with its help text, value kind (str, int, float, bool, path, count, devices) and choices."""
    return field(default=default, metadata={"help": help, "kind": kind, "choices": choices})


@dataclass
class RunConfig:
    """Every option of a training run; see the module docstring for how the defaults were chosen."""

    # data
    corpus: str = option("synthetic", "Corpus to train and evaluate on (see `qaframe plugins`).")
    data_dir: Path | None = option(None, "Folder holding the corpus files (corpora that read files).", "path")
    train_file: Path | None = option(None, "Training file, overriding the corpus's default location.", "path")
    dev_file: Path | None = option(None, "Dev (evaluation) file, overriding the corpus's default location.", "path")
    strict: bool = option(False, "Fail on records that loading would otherwise repair or skip.", "bool")
    # model and components
    model: str = option("tiny", "Model: an alias (`kcbert`, `tiny`), a local folder, or a Hugging Face hub id.")
    head: str = option("span", "Head that turns encoder states into start/end logits.")
    featurizer: str = option("sliding-window", "Featurizer that cuts examples into token windows.")
    optimizer: str = option("adamw", "Optimizer factory.")
    scheduler: str = option("linear-warmup", "Learning-rate schedule, stepped once per optimizer step.")
    refiner: str | None = option(None, "Answer-boundary refiner, or `none`; default: the corpus's own.")
    # optimization
    max_epochs: int | None = option(None, "Number of passes over the training windows" + per_model("max_epochs"), "int")
    max_steps: int = option(-1, "Stop after this many optimizer steps (-1: no limit); without --max-epochs it alone sets "
                                "the length of training.", "int")
    train_batch_size: int | None = option(None, "Training windows per batch, per device" + per_model("train_batch_size"), "int")
    eval_batch_size: int = option(64, "Evaluation windows per batch, per device.", "int")
    learning_rate: float | None = option(None, "Peak learning rate" + per_model("learning_rate"), "float")
    weight_decay: float = option(0.01, "AdamW weight decay (not applied to biases and LayerNorm weights).", "float")
    warmup_ratio: float = option(0.1, "Fraction of the optimizer steps spent warming the learning rate up.", "float")
    accumulate_grad_batches: int = option(1, "Batches whose gradients are summed before each optimizer step.", "int")
    gradient_clip_val: float = option(1.0, "Clip the gradient norm to this value (0: no clipping).", "float")
    seed: int = option(42, f"Random seed for weights, shuffling and dropout ({SEEDS[0]} to {SEEDS[1]}).", "int")
    # windows and decoding
    max_seq_length: int = option(256, "Tokens per window, question and special tokens included (KcBERT allows 300).", "int")
    doc_stride: int = option(64, "Overlap in tokens between consecutive windows of a long context.", "int")
    max_query_length: int = option(64, "Questions are cut to this many tokens.", "int")
    max_answer_length: int = option(30, "Longest answer, in tokens, that decoding may return.", "int")
    n_best_size: int = option(20, "Start and end candidates kept per window when decoding.", "int")
    # hardware and speed
    precision: str = option("auto", "Numeric precision: auto (bf16-mixed on a GPU with native bfloat16, Ampere or newer; "
                                    "else 32), 32, bf16-mixed, 16-mixed.", choices=PRECISIONS)
    accelerator: str = option("auto", "Lightning accelerator: auto, cpu, gpu, cuda, mps.")
    devices: str = option("auto", "Devices per node: a count, a list such as 0,1, or auto.", "devices")
    strategy: str = option("auto", "Lightning strategy: auto, ddp, fsdp, deepspeed ... (not the spawning ones: ddp_spawn, ddp_fork, ddp_notebook).")
    num_nodes: int = option(1, "Number of machines (nodes) for distributed training.", "int")
    num_workers: int = option(0, "DataLoader worker processes (0: load in the main process).", "int")
    group_by_length: bool = option(True, "Batch windows of similar length together so padding stays small.", "bool")
    pad_to_multiple_of: int = option(8, "Pad each batch's width up to a multiple of this (1: to its longest window only).", "int")
    matmul_precision: str = option("high", "Float32 matmuls on a CUDA GPU: highest (full fp32), high (TF32), medium (bf16).",
                                   choices=MATMUL_PRECISIONS)
    cudnn_attention: bool = option(False, "On a GPU, let attention use cuDNN's kernels (fast for fixed shapes, but they plan each new batch width anew).", "bool")
    progress_every: int = option(10, "Refresh the progress bar and log the training loss every N steps (each reads the loss, which waits for the GPU).", "int")
    compile: bool = option(False, "Compile the model with torch.compile (faster on GPU after a warm-up).", "bool")
    compile_mode: str = option("default", "torch.compile mode under --compile: default; reduce-overhead (CUDA graphs on a GPU: "
                               "a step's kernels launched at once, one graph recorded per batch shape, so pair it with a "
                               "coarse --pad-to-multiple-of such as 64); max-autotune (also tunes kernels, compiling for "
                               "minutes).", choices=COMPILE_MODES)
    # runs, outputs and caches
    output_dir: Path | None = option(None, "Where config, checkpoints, model and predictions go; default runs/<corpus>-<model>.", "path")
    cache_dir: Path | None = option(None, "Feature cache folder; default $QAFRAME_CACHE_DIR, else $XDG_CACHE_HOME/qaframe, else ~/.cache/qaframe.", "path")
    overwrite_cache: bool = option(False, "Rebuild the features even when the cache holds them.", "bool")
    resume: str | None = option(None, "Resume training from a checkpoint file, or `last` for <output-dir>/checkpoints/last.ckpt.")
    limit_train_batches: float | None = option(None, "Smoke runs: training batches per epoch (an integer) or a fraction such as 0.25 (1.0: all).", "count")
    limit_val_batches: float | None = option(None, "Smoke runs: evaluation batches (an integer) or a fraction such as 0.25 (1.0: all).", "count")
    trust_remote_code: bool = option(False, "Allow models and tokenizers that run code from their folder or the hub.", "bool")

    # -- building ------------------------------------------------------------------
    @classmethod
    def options(cls) -> list[dataclasses.Field]:
        """The fields, in declaration order, each with metadata help/kind/choices."""
        return list(dataclasses.fields(cls))

    @classmethod
    def from_sources(cls, file: str | Path | None = None, overrides: dict[str, Any] | None = None) -> "RunConfig":
        """Defaults, then the YAML `file`, then `overrides` (command-line flags), validated."""
        values: dict[str, Any] = {}
        if file is not None:
            values.update(read_yaml(file))
        for name, value in (overrides or {}).items():
            values[name] = coerce(name, value, "the command line")
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        """Raise UserError (naming the flag) for values no run can use; whether the window settings leave room for
        context is the featurizer's check, which knows its windows' special tokens."""
        positive = ("max_epochs", "train_batch_size", "eval_batch_size", "accumulate_grad_batches", "max_seq_length",
                    "max_query_length", "max_answer_length", "n_best_size", "num_nodes", "pad_to_multiple_of", "progress_every")
        for name in positive:
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise UserError(f"{flag(name)} must be at least 1, got {getattr(self, name)}")
        for option_field in self.options():  # torch and numpy count in 64-bit integers
            value = getattr(self, option_field.name)
            if option_field.metadata["kind"] == "int" and abs(value or 0) >= 2**63:
                raise UserError(f"{flag(option_field.name)} must be below 2**63, got {value}")
        if not SEEDS[0] <= self.seed <= SEEDS[1]:
            raise UserError(f"--seed must be from {SEEDS[0]} to {SEEDS[1]}, got {self.seed}")
        if self.learning_rate is not None and self.learning_rate <= 0:
            raise UserError(f"--learning-rate must be positive, got {self.learning_rate}")
        if not 0 <= self.warmup_ratio < 1:
            raise UserError(f"--warmup-ratio must be in [0, 1), got {self.warmup_ratio}")
        for name in ("weight_decay", "gradient_clip_val", "num_workers", "doc_stride"):
            if getattr(self, name) < 0:
                raise UserError(f"{flag(name)} must not be negative, got {getattr(self, name)}")
        if self.max_steps == 0 or self.max_steps < -1:
            raise UserError(f"--max-steps must be -1 (no limit) or positive, got {self.max_steps}")
        if self.strategy.startswith(SPAWNING_STRATEGIES):
            raise UserError(
                f"--strategy {self.strategy} trains in processes that hand back none of the run's state (steps, timings, "
                "the best checkpoint's path) to write the outputs from; use --strategy ddp"
            )
        if self.compile_mode != "default" and not self.compile:
            raise UserError(f"--compile-mode {self.compile_mode} needs --compile")
        if self.compile_mode in CUDA_GRAPH_MODES and self.accumulate_grad_batches > 1:
            raise UserError(
                f"--compile-mode {self.compile_mode} records CUDA graphs, whose gradient buffers the next batch's backward "
                f"overwrites before --accumulate-grad-batches {self.accumulate_grad_batches} adds to them; use --compile-mode "
                "default, or a larger --train-batch-size instead of accumulating"
            )
        if self.limit_train_batches == 0:
            raise UserError("--limit-train-batches 0 would train on nothing; use at least 1, or a fraction such as 0.1")
        if self.limit_val_batches == 0:
            raise UserError("--limit-val-batches 0 would skip evaluation, which picks the best checkpoint; use at least 1")

    def check_machine(self) -> None:
        """Raise UserError for what no run started here can do: 16-mixed on the CPU, and several nodes without a
        launcher, which would wait for the others forever (checked when training, not for --print-config, which
        may prepare a cluster job's config on a login node)."""
        if self.num_nodes > 1 and not multi_node_launch():
            raise UserError(
                f"--num-nodes {self.num_nodes}: no multi-node launcher in the environment, so the run would wait for the "
                "other nodes forever; start the same command on each node with MASTER_ADDR, MASTER_PORT and NODE_RANK "
                "set, or under SLURM (srun) or torchrun"
            )
        if self.precision == "16-mixed" and self.accelerator in ("cpu", "auto"):
            import torch  # here only: the CLI starts without it

            # Lightning's auto accelerator: CUDA, else MPS (which computes float16 too), else the CPU
            if self.accelerator == "cpu" or not (torch.cuda.is_available() or torch.backends.mps.is_available()):
                raise UserError("--precision 16-mixed needs a CUDA GPU; on the CPU use 32 or bf16-mixed")

    # -- resolved values -------------------------------------------------------------
    def resolved_output_dir(self) -> Path:
        """The output folder: --output-dir, else runs/<corpus>-<model name>."""
        if self.output_dir is not None:
            return Path(self.output_dir)
        return Path("runs") / f"{self.corpus}-{Path(self.model.rstrip('/')).name}"

    def resolved_cache_dir(self) -> Path:
        """The feature cache folder: --cache-dir, else qaframe's cache folder (`qaframe.io.cache_root`)."""
        if self.cache_dir is not None:
            return Path(self.cache_dir)
        return cache_root()

    def model_defaults(self, random_init: bool) -> dict[str, Any]:
        """The options left unset and their values for a random-init or a pretrained model (MODEL_DEFAULTS);
        max_epochs stays unset under --max-steps, so the steps alone set the length (Lightning's reading)."""
        defaults = MODEL_DEFAULTS["random_init" if random_init else "pretrained"]
        steps_only = {"max_epochs"} if self.max_steps != -1 else set()
        return {k: v for k, v in defaults.items() if getattr(self, k) is None and k not in steps_only}

    def with_model_defaults(self, random_init: bool) -> "RunConfig":
        """A copy with the options left unset filled in for a random-init or a pretrained model (`model_defaults`)."""
        return dataclasses.replace(self, **self.model_defaults(random_init))

    def check_resume(self, checkpoint: Path, random_init: bool) -> None:
        """For --resume from `checkpoint`: UserError naming the first option of KEPT_ON_RESUME that differs from the
        config.yaml of the run that wrote it (beside its checkpoints/ folder); without that file there is nothing to compare."""
        source = checkpoint.parent.parent / "config.yaml"
        if checkpoint.parent.name != "checkpoints" or not source.is_file():
            return
        # the earlier run's options, read but not validated: they were, on the machines it ran on (another precision ...)
        now, earlier = self.with_model_defaults(random_init), RunConfig(**read_yaml(source)).with_model_defaults(random_init)
        for name in KEPT_ON_RESUME:
            if same_value(getattr(now, name)) != same_value(getattr(earlier, name)):
                raise UserError(
                    f"--resume {self.resume}: {flag_value(name, getattr(now, name))} here, but "
                    f"{flag_value(name, getattr(earlier, name))} in the run that wrote the checkpoint ({source}); resume "
                    f"with its options (e.g. --config {source}), or train on in a new run from the exported model "
                    f"(--model {source.parent / 'model'})"
                )

    def to_dict(self) -> dict[str, Any]:
        """Plain values (paths as strings) in declaration order, as config.yaml stores them."""
        return {f.name: (str(v) if isinstance(v := getattr(self, f.name), Path) else v) for f in self.options()}

    def to_yaml(self, model_defaults: dict[str, Any] | None = None) -> str:
        """The config as YAML that `--config` reads back, as config.yaml stores it: without `resume`, which names one
        command's checkpoint. `model_defaults`: the per-model options left unset and the values this run gives them,
        which stay null (a config reused with another model gets that model's defaults), the value in a comment."""
        import yaml

        text = yaml.safe_dump({**self.to_dict(), "resume": None}, sort_keys=False, allow_unicode=True)
        filled = model_defaults or {}
        return "".join(f"{line.rstrip()}  # {filled[name]}, the default for this model\n" if (name := line.split(":")[0]) in filled
                       else line for line in text.splitlines(keepends=True))


def multi_node_launch() -> bool:
    """Whether the environment tells this process its node (NODE_VARIABLES, SLURM's srun, LSF_VARIABLES)."""
    slurm = "SLURM_NTASKS" in os.environ and os.environ.get("SLURM_JOB_NAME") not in ("bash", "interactive")
    return slurm or any(name in os.environ for name in NODE_VARIABLES) or all(name in os.environ for name in LSF_VARIABLES)


def same_value(value: Any) -> Any:
    """`value` in a form equal for equal options: a path resolved (data/x.json and ./data/x.json are one file)."""
    return value.resolve() if isinstance(value, Path) else value


def flag_value(name: str, value: Any) -> str:
    """An option as a command line gives it: `--name value`, or `no --name` when unset."""
    return f"no {flag(name)}" if value is None else f"{flag(name)} {value}"


def flag(name: str) -> str:
    """The command-line flag of a field: max_seq_length -> --max-seq-length."""
    return "--" + name.replace("_", "-")


def nlpbook_name(name: str, as_flag: bool = False) -> str | None:
    """qaframe's spelling of an option the Korean NLP book (ratsnlp) calls `name` (batch_size, --batch-size): a config
    file's key (and value), such as `precision: 16-mixed`, or with `as_flag` the flag (and value); None for other names."""
    setting = NLPBOOK_NAMES.get(name.lstrip("-").replace("-", "_"))
    if setting is None or not as_flag:
        return setting
    option, _, value = setting.partition(": ")
    return f"{flag(option)} {value}".rstrip()


def read_yaml(file: str | Path) -> dict[str, Any]:
    """Read a run config file into coerced values; unknown keys and bad values are UserErrors naming the file."""
    import yaml

    path = Path(file)
    try:
        loader = yaml.SafeLoader(path.read_text(encoding="utf-8"))
        root = loader.get_single_node()  # the nodes, which know each key's line, then the values built from them
        data = None if root is None else loader.construct_document(root)
    except OSError as error:
        raise UserError(f"cannot read config file {path}: {error.strerror or error}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise UserError(f"config file {path} is not valid YAML: {one_line(error)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of option: value, got {type(data).__name__}")
    lines: dict[str, int] = {}  # a key given twice (or as max-epochs and max_epochs): YAML would keep the last one silently
    for key, _ in root.value:
        name, line = str(key.value).replace("-", "_"), key.start_mark.line + 1
        if name in lines:
            raise UserError(f"config file {path} sets {name} twice (lines {lines[name]} and {line}); keep one")
        lines[name] = line
    known = {f.name for f in RunConfig.options()}
    values = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in known:
            import difflib

            matches = difflib.get_close_matches(name, sorted(known), n=1)
            close = nlpbook_name(name) or (matches[0] if matches else None)
            hint = f"; did you mean '{close}'?" if close else f"; known options: {', '.join(sorted(known))}"
            raise UserError(f"unknown option '{key}' in config file {path}{hint}")
        if value is not None:  # `option: null` keeps the default, as an option left out does
            values[name] = coerce(name, value, f"config file {path}")
    return values


def coerce(name: str, value: Any, source: str) -> Any:
    """Convert one value to its field's kind; a wrong value is a UserError naming the option and `source`."""
    meta = next(f for f in RunConfig.options() if f.name == name).metadata
    kind, choices = meta["kind"], meta["choices"]
    if value is None:
        return None
    try:
        if kind == "devices" and isinstance(value, list) and all(type(v) is int for v in value):
            value = ",".join(map(str, value))  # YAML [0, 1]: the devices 0 and 1
        if isinstance(value, (list, dict)) or (kind == "devices" and isinstance(value, bool)):
            raise ValueError
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("true", "yes", "on", "1"):
                return True
            if text in ("false", "no", "off", "0"):
                return False
            raise ValueError
        if kind == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if kind == "float":
            if isinstance(value, bool) or not math.isfinite(float(value)):
                raise ValueError
            return float(value)
        if kind == "count":  # an integer count of batches, or a fraction in (0, 1] (1.0: all), as Lightning reads them
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, int) or str(value).strip().isdigit():
                return int(value)
            number = float(value)
            if not 0 <= number <= 1:  # nan included
                raise ValueError
            return number
        if kind == "devices":
            text = str(value).strip()
            return int(text) if text.lstrip("-").isdigit() else text
        if kind == "path":
            if not str(value).strip():  # Path("") is the current folder
                raise ValueError
            return Path(str(value)).expanduser()
        text = str(value)
        if choices and text not in choices:
            raise ValueError
        return text
    except (TypeError, ValueError):
        words = {"int": "an integer", "float": "a finite number", "bool": "true or false", "path": "a non-empty path",
                 "devices": "a count of devices, a list such as 0,1, or auto",
                 "count": "a number of batches (an integer) or a fraction from 0.0 to 1.0"}
        expected = f"one of {', '.join(choices)}" if choices else words.get(kind, f"a {kind}")
        raise UserError(f"{flag(name)} in {source} must be {expected}, got {value!r}") from None
