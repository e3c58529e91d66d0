"""RunConfig: defaults, YAML loading, flag precedence, validation, per-model defaults and `--print-config`."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from plugins_for_tests import mlp_head

from qaframe import cli as cli_module
from qaframe.config import LSF_VARIABLES, MODEL_DEFAULTS, NODE_VARIABLES, RunConfig
from qaframe.errors import UserError
from qaframe.runner import prepare


def run_cli(monkeypatch, capsys, argv) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["qaframe", *argv])
    with pytest.raises(SystemExit) as exit_info:
        cli_module.main(argv)
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_defaults_are_the_offline_quickstart():
    config = RunConfig.from_sources()
    assert (config.corpus, config.model, config.head, config.featurizer) == ("synthetic", "tiny", "span", "sliding-window")
    assert (config.optimizer, config.scheduler, config.precision) == ("adamw", "linear-warmup", "auto")
    assert config.max_seq_length <= 300  # fits KcBERT's position table
    assert config.group_by_length and not config.compile and not config.trust_remote_code
    assert config.resolved_output_dir() == Path("runs/synthetic-tiny")


@pytest.mark.parametrize("qaframe_cache, xdg_cache, root", [
    ("q", "x", "q"),
    (None, "x", "x/qaframe"),
    (None, None, "home/.cache/qaframe"),
], ids=["QAFRAME_CACHE_DIR", "XDG_CACHE_HOME", "home"])
def test_features_and_downloaded_korquad_share_one_cache_root(qaframe_host, monkeypatch, tmp_path, qaframe_cache, xdg_cache, root):
    from qaframe.types import CorpusOptions

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name, value in (("QAFRAME_CACHE_DIR", qaframe_cache), ("XDG_CACHE_HOME", xdg_cache)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, str(tmp_path / value))
    assert RunConfig().resolved_cache_dir() == tmp_path / root
    assert qaframe_host.create("corpus", "korquad", CorpusOptions()).data_dir == tmp_path / root / "korquad"
    assert RunConfig(cache_dir=Path("mine")).resolved_cache_dir() == Path("mine")


def test_recipe_defaults_depend_on_whether_the_model_starts_from_random_weights():
    config = RunConfig.from_sources()
    assert config.learning_rate is None and config.max_epochs is None and config.train_batch_size is None
    scratch = config.with_model_defaults(random_init=True)
    pretrained = config.with_model_defaults(random_init=False)
    assert (scratch.learning_rate, scratch.max_epochs, scratch.train_batch_size) == (1e-3, 8, 16)
    assert (pretrained.learning_rate, pretrained.max_epochs, pretrained.train_batch_size) == (5e-5, 3, 32)
    chosen = RunConfig.from_sources(overrides={"learning_rate": 3e-5, "max_epochs": 1})
    filled = chosen.with_model_defaults(random_init=True)
    assert (filled.learning_rate, filled.max_epochs, filled.train_batch_size) == (3e-5, 1, 16)


def test_yaml_file_then_flags_override(tmp_path):
    file = tmp_path / "run.yaml"
    file.write_text("corpus: korquad\nmax-epochs: 5\nprecision: 32\nlimit_train_batches: 0.5\ndevices: 2\ncompile: yes\n")
    config = RunConfig.from_sources(file, {"max_epochs": 2})
    assert config.corpus == "korquad" and config.max_epochs == 2 and config.precision == "32"
    assert config.limit_train_batches == 0.5 and config.devices == 2 and config.compile is True


def test_unknown_key_names_key_and_file(tmp_path):
    file = tmp_path / "run.yaml"
    file.write_text("max_epoch: 3\n")
    with pytest.raises(UserError, match=r"unknown option 'max_epoch' in config file .*run.yaml; did you mean 'max_epochs'"):
        RunConfig.from_sources(file)


@pytest.mark.parametrize("key, meant", [
    ("batch_size", "train_batch_size"),  # not eval_batch_size, the closest spelling: the book's batch is the training one
    ("epochs", "max_epochs"),
    ("pretrained_model_name", "model"),
    ("downstream_model_dir", "output_dir"),
    ("downstream_corpus_name", "corpus"),
    ("downstream-corpus-root-dir", "data_dir"),
    ("cpu_workers", "num_workers"),
    ("fp16", "precision: 16-mixed"),
])
def test_an_option_named_as_in_the_korean_nlp_book_names_qaframes(tmp_path, key, meant):
    """Readers of the Korean NLP book (ratsnlp's QATrainArguments) write its names; difflib alone guessed wrong or nothing."""
    file = tmp_path / "run.yaml"
    file.write_text(f"{key}: 1\n")
    with pytest.raises(UserError) as error:
        RunConfig.from_sources(file)
    assert str(error.value) == f"unknown option '{key}' in config file {file}; did you mean '{meant}'?"


@pytest.mark.parametrize(
    "text, message",
    [
        ("- a\n- b\n", "must hold a mapping"),
        ("max_epochs: [1\n", "not valid YAML"),
        ("max_epochs: three\n", "--max-epochs in config file .* must be an integer"),
        ("precision: 64\n", "--precision in config file .* must be one of auto, 32, bf16-mixed, 16-mixed"),
        ("group_by_length: maybe\n", "--group-by-length in config file"),
        ("learning_rate: .nan\n", "--learning-rate in config file .* must be a finite number, got nan"),
        ("limit_val_batches: .nan\n", "--limit-val-batches in config file"),
        ("output_dir: {a: 1}\n", "--output-dir in config file .*, got \\{'a': 1\\}"),
        ("corpus: [sample]\n", "--corpus in config file .*, got \\['sample'\\]"),
        ("devices: [cpu]\n", "--devices in config file .* must be a count of devices, a list such as 0,1, or auto"),
        ("devices: yes\n", "--devices in config file .* got True"),
        ("output_dir: ''\n", "--output-dir in config file .* must be a non-empty path"),
        ("seed: 1\nmax_epochs: 2\nseed: 3\n", "config file .* sets seed twice \\(lines 1 and 3\\); keep one"),  # YAML kept 3
        ("max-epochs: 2\nmax_epochs: 3\n", "sets max_epochs twice \\(lines 1 and 2\\)"),
    ],
)
def test_bad_files_are_one_line_errors(tmp_path, text, message):
    file = tmp_path / "run.yaml"
    file.write_text(text)
    with pytest.raises(UserError, match=message) as error:
        RunConfig.from_sources(file)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"train_batch_size": 0}, "--train-batch-size must be at least 1"),
        ({"warmup_ratio": 1.5}, "--warmup-ratio"),
        ({"limit_val_batches": 0}, "--limit-val-batches 0"),
        ({"learning_rate": -1.0}, "--learning-rate must be positive"),
        ({"learning_rate": "nan"}, "--learning-rate in the command line must be a finite number, got 'nan'"),
        ({"weight_decay": "inf"}, "--weight-decay in the command line must be a finite number"),
        ({"gradient_clip_val": "nan"}, "--gradient-clip-val in the command line must be a finite number"),
        ({"limit_train_batches": "0"}, "--limit-train-batches 0 would train on nothing"),
        ({"seed": -1}, "--seed must be from 0 to 4294967295, got -1"),  # Lightning's seed_everything raised ValueError
        ({"seed": 2**32}, "--seed must be from 0 to 4294967295, got 4294967296"),
        ({"output_dir": ""}, "--output-dir in the command line must be a non-empty path, got ''"),  # not the current folder
        ({"train_file": " "}, "--train-file in the command line must be a non-empty path"),
        ({"strategy": "ddp_spawn"}, "--strategy ddp_spawn trains in processes .*; use --strategy ddp"),  # OverflowError at the end
    ],
)
def test_validation_names_the_flag(overrides, message):
    with pytest.raises(UserError, match=message):
        RunConfig.from_sources(overrides=overrides)


@pytest.fixture
def one_machine(monkeypatch):
    """A machine without CUDA (or MPS) whose environment names no multi-node launcher; the monkeypatch, to change it."""
    import torch

    for name in (*NODE_VARIABLES, *LSF_VARIABLES, "SLURM_NTASKS", "SLURM_JOB_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    return monkeypatch


@pytest.mark.parametrize("environment, launched", [
    ({}, False),  # Lightning waited forever at "Initializing distributed: GLOBAL_RANK: 0, MEMBER: 1/2"
    ({"NODE_RANK": "1"}, True),  # the command started by hand on each node
    ({"GROUP_RANK": "0"}, True),  # torchrun
    ({"TORCHELASTIC_RUN_ID": "job"}, True),  # torchrun
    ({"SLURM_NTASKS": "8"}, True),  # srun
    ({"SLURM_NTASKS": "8", "SLURM_JOB_NAME": "interactive"}, False),  # a job Lightning's SLURM environment leaves alone
    ({"OMPI_COMM_WORLD_SIZE": "8"}, True),  # mpirun
    ({name: "1" for name in LSF_VARIABLES}, True),  # jsrun
    ({"LSB_JOBID": "7"}, False),  # an LSF job, but not started with jsrun
])
def test_several_nodes_need_a_launcher(one_machine, environment, launched):
    for name, value in environment.items():
        one_machine.setenv(name, value)
    RunConfig(num_nodes=1).check_machine()
    if launched:
        RunConfig(num_nodes=2).check_machine()
        return
    with pytest.raises(UserError, match=r"^--num-nodes 2: no multi-node launcher in the environment, so the run would wait "
                                        r"for the other nodes forever; start the same command on each node with MASTER_ADDR, "
                                        r"MASTER_PORT and NODE_RANK set, or under SLURM \(srun\) or torchrun$"):
        RunConfig(num_nodes=2).check_machine()


@pytest.mark.parametrize("accelerator, cuda, refused", [
    ("cpu", True, True),
    ("auto", False, True),  # Lightning warned and trained in bf16-mixed
    ("auto", True, False),
    ("cuda", False, False),  # Lightning's own one-line error, as training is set up
])
def test_16_mixed_precision_needs_a_cuda_gpu(one_machine, accelerator, cuda, refused):
    import torch

    one_machine.setattr(torch.cuda, "is_available", lambda: cuda)
    config = RunConfig(precision="16-mixed", accelerator=accelerator)
    if not refused:
        config.check_machine()
        return
    with pytest.raises(UserError, match="^--precision 16-mixed needs a CUDA GPU; on the CPU use 32 or bf16-mixed$"):
        config.check_machine()


@pytest.mark.parametrize("argv", [["--precision", "16-mixed"], ["--num-nodes", "2"]])
def test_what_this_machine_cannot_run_is_one_line_before_anything_is_read(one_machine, capsys, tmp_path, argv):
    one_machine.chdir(tmp_path)
    argv = ["run", *argv, "--output-dir", "out", "--cache-dir", "cache"]
    code, out, err = run_cli(one_machine, capsys, argv)
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith(f"Error: {argv[1]} {argv[2]}")
    assert list(tmp_path.iterdir()) == []
    code, out, err = run_cli(one_machine, capsys, [*argv, "--print-config"])  # a cluster job's config, made on a login node
    assert code == 0 and f"{argv[1][2:].replace('-', '_')}: " in out and list(tmp_path.iterdir()) == []


def test_resume_on_another_machine_is_not_refused_for_the_precision_it_trained_in(one_machine, tmp_path):
    """The run that wrote the checkpoint chose its precision on its own machine: only this run's options are checked here."""
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "config.yaml").write_text(RunConfig(precision="16-mixed").to_yaml(), encoding="utf-8")
    config = RunConfig.from_sources(overrides={"precision": "32", "resume": "last"})
    config.check_resume(tmp_path / "run" / "checkpoints" / "last.ckpt", random_init=True)


def test_window_settings_are_checked_by_the_featurizer_before_the_run_starts(monkeypatch, capsys, tmp_path):
    """How much overlap fits is the featurizer's rule (it knows its special tokens): RunConfig leaves it to the featurizer,
    whose one-line error comes before the run writes anything, reads data or builds the model."""
    assert RunConfig.from_sources(overrides={"doc_stride": 256, "max_seq_length": 256}).doc_stride == 256
    monkeypatch.chdir(tmp_path)
    argv = ["run", "--doc-stride", "256", "--max-seq-length", "256", "--output-dir", "out", "--cache-dir", "cache"]
    code, out, err = run_cli(monkeypatch, capsys, argv)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("Error: --doc-stride 256 (the overlap between windows, in tokens) must be smaller than the room "
                          "for context, 189 = --max-seq-length 256 - --max-query-length 64 - 3 special tokens")
    assert list(tmp_path.iterdir()) == []


def test_a_yaml_null_or_empty_value_keeps_the_default(tmp_path):
    file = tmp_path / "run.yaml"
    file.write_text("max_steps:\nweight_decay: null\nseed: ~\ncorpus:\nprecision: null\nlearning_rate:\n")
    assert RunConfig.from_sources(file) == RunConfig()  # max_steps and weight_decay were None: a TypeError in validate


def test_max_steps_alone_sets_the_length_of_training():
    steps = RunConfig.from_sources(overrides={"max_steps": 500}).with_model_defaults(random_init=True)
    assert steps.max_epochs is None and steps.train_batch_size == 16  # Lightning reads max_epochs None as no epoch limit
    both = RunConfig.from_sources(overrides={"max_steps": 500, "max_epochs": 2}).with_model_defaults(random_init=False)
    assert (both.max_epochs, both.max_steps) == (2, 500)


def test_a_yaml_list_of_device_numbers_means_those_devices(tmp_path):
    file = tmp_path / "run.yaml"
    file.write_text("devices: [0, 1]\n")
    assert RunConfig.from_sources(file).devices == "0,1"  # Lightning's spelling of the devices 0 and 1


def test_limits_take_counts_or_fractions():
    config = RunConfig.from_sources(overrides={"limit_train_batches": "3", "limit_val_batches": "0.25"})
    assert config.limit_train_batches == 3 and isinstance(config.limit_train_batches, int)
    assert config.limit_val_batches == 0.25
    config = RunConfig.from_sources(overrides={"limit_train_batches": "1", "limit_val_batches": "1.0"})
    assert (config.limit_train_batches, config.limit_val_batches) == (1, 1.0)  # one batch; all of them, as Lightning reads 1.0
    assert isinstance(config.limit_val_batches, float)
    with pytest.raises(UserError, match="--limit-val-batches in the command line must be a number of batches .* got '2.5'"):
        RunConfig.from_sources(overrides={"limit_val_batches": "2.5"})


@pytest.mark.parametrize("name", [f.name for f in RunConfig.options() if f.metadata["kind"] == "int"])
def test_an_integer_beyond_64_bits_is_refused(name):
    """Lightning and torch turn these into 64-bit integers, where 10**30 overflowed in the middle of training."""
    with pytest.raises(UserError, match=rf"^--{name.replace('_', '-')} must be below 2\*\*63, got 10{'0' * 29}$"):
        RunConfig.from_sources(overrides={name: str(10**30)})


def test_print_config_round_trips(monkeypatch, capsys, tmp_path):
    file = tmp_path / "run.yaml"
    file.write_text("max_epochs: 7\ncorpus: sample\n")
    code, out, _ = run_cli(monkeypatch, capsys, ["run", "--config", str(file), "--corpus", "synthetic", "--print-config"])
    assert code == 0
    printed = yaml.safe_load(out)
    assert printed["max_epochs"] == 7 and printed["corpus"] == "synthetic"
    # left unset, the per-model options stay null; the values this model gets are in comments
    assert printed["train_batch_size"] is None and printed["learning_rate"] is None
    assert f"learning_rate: null  # {MODEL_DEFAULTS['random_init']['learning_rate']}, the default for this model\n" in out
    assert "train_batch_size: null  # 16, the default for this model\n" in out
    again = tmp_path / "again.yaml"
    again.write_text(out)
    assert RunConfig.from_sources(again).to_dict() == printed
    code, reprinted, _ = run_cli(monkeypatch, capsys, ["run", "--config", str(again), "--print-config"])
    assert code == 0 and reprinted == out


def test_a_config_reused_with_another_model_gets_that_models_defaults(printed_and_trained, monkeypatch, capsys, tmp_path):
    """A tiny run's config.yaml with a pretrained --model: the pretrained recipe, not the tiny one's learning rate 1e-3."""
    output = printed_and_trained[1]
    argv = ["run", "--config", str(output / "config.yaml"), "--model", str(output / "model"), "--output-dir", str(tmp_path / "k"),
            "--max-steps", "-1", "--print-config"]
    code, out, err = run_cli(monkeypatch, capsys, argv)
    assert code == 0, err
    printed = yaml.safe_load(out)
    assert "learning_rate: null  # 5e-05, the default for this model\n" in out
    assert "max_epochs: null  # 3, the default for this model\n" in out and printed["train_batch_size"] == 4  # SMOKE's


def test_config_yaml_holds_no_resume(printed_and_trained, monkeypatch, capsys):
    """--resume names one command's checkpoint: a config.yaml reused in a new folder must not resume."""
    output = printed_and_trained[1]
    code, out, err = run_cli(monkeypatch, capsys, ["run", "--config", str(output / "config.yaml"), "--resume", "last",
                                                   "--max-steps", "12", "--output-dir", str(output), "--print-config"])
    assert code == 0, err
    assert yaml.safe_load(out)["resume"] is None and yaml.safe_load((output / "config.yaml").read_text())["resume"] is None


def test_cli_unknown_config_key_exits_2(monkeypatch, capsys, tmp_path):
    file = tmp_path / "run.yaml"
    file.write_text("colour: blue\n")
    code, _, err = run_cli(monkeypatch, capsys, ["run", "--config", str(file), "--print-config"])
    assert code == 2
    assert err.count("\n") == 1 and "unknown option 'colour'" in err and "run.yaml" in err


def test_every_option_has_help_and_a_flag():
    from click.testing import CliRunner

    from qaframe.commands.run import run

    text = CliRunner().invoke(run, ["--help"], terminal_width=200).output
    for field in RunConfig.options():
        assert field.metadata["help"], field.name
        assert "--" + field.name.replace("_", "-") in text, field.name
    assert "Overlap in tokens between consecutive windows" in text


# a smoke run on the packaged sample corpus; --max-steps 10 is more than its 8 default epochs of one batch
SMOKE = ["--corpus", "sample", "--max-steps", "10", "--limit-train-batches", "1", "--limit-val-batches", "1",
         "--train-batch-size", "4", "--eval-batch-size", "16", "--max-seq-length", "128", "--doc-stride", "32"]


@pytest.fixture(scope="module")
def printed_and_trained(tmp_path_factory) -> tuple[str, Path]:
    """What `--print-config` printed for SMOKE, then the output folder of that run."""
    output, cache = tmp_path_factory.mktemp("run") / "out", tmp_path_factory.mktemp("cache")
    argv = ["run", *SMOKE, "--output-dir", str(output), "--cache-dir", str(cache)]
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(sys, "argv", ["qaframe"])
        printed = subprocess.run([sys.executable, "-m", "qaframe.cli", *argv, "--print-config"], capture_output=True, text=True)
        assert printed.returncode == 0, printed.stderr
        with pytest.raises(SystemExit) as exit_info:
            cli_module.main(argv)
    assert exit_info.value.code == 0
    return printed.stdout, output


def test_print_config_prints_the_config_the_run_writes(printed_and_trained):
    printed, output = printed_and_trained
    assert printed == (output / "config.yaml").read_text()  # refiner, output_dir and cache_dir resolved as the run does
    assert prepare(RunConfig.from_sources(output / "config.yaml", {"resume": "last"}), fetch=False).config_yaml == printed


def test_max_steps_alone_trains_that_many_steps(printed_and_trained):
    metrics = json.loads((printed_and_trained[1] / "metrics.json").read_text())
    assert metrics["optimizer_steps"] == 10  # not the 8 of the default 8 epochs


@pytest.mark.parametrize("change, message", [
    (["--learning-rate", "0.5"], "--learning-rate 0.5 here, but --learning-rate 0.001 in the run that wrote the checkpoint"),
    (["--scheduler", "cosine"], "--scheduler cosine here, but --scheduler linear-warmup in the run that wrote the checkpoint"),
    (["--model", "tiny-copy"], "--model tiny-copy here, but --model tiny in the run that wrote the checkpoint"),
    (["--weight-decay", "0.1"], "--weight-decay 0.1 here, but --weight-decay 0.01 in the run that wrote the checkpoint"),
    (["--head", "mlp-span"], "--head mlp-span here, but --head span in the run that wrote the checkpoint"),
    (["--corpus", "synthetic"], "--corpus synthetic here, but --corpus sample in the run that wrote the checkpoint"),
])
@pytest.mark.parametrize("print_config", [True, False], ids=["print-config", "run"])
def test_resume_refuses_an_option_the_checkpoint_holds(printed_and_trained, monkeypatch, capsys, tmp_path, tiny_model_dir,
                                                       register_plugin, change, message, print_config):
    register_plugin(mlp_head, name="mlp-head-plugin")  # a head of another kind, for --head
    shutil.copytree(tiny_model_dir, tmp_path / "tiny-copy")
    output = tmp_path / "out"
    shutil.copytree(printed_and_trained[1], output)
    before = {path: path.read_bytes() for path in output.rglob("*") if path.is_file()}
    monkeypatch.chdir(tmp_path)
    argv = ["run", "--config", str(output / "config.yaml"), "--output-dir", str(output), "--resume", "last", *change]
    code, _, err = run_cli(monkeypatch, capsys, [*argv, "--print-config"] if print_config else argv)
    assert code == 2 and err.count("\n") == 1
    assert message in err and f"({output / 'config.yaml'})" in err
    assert {path: path.read_bytes() for path in output.rglob("*") if path.is_file()} == before  # config.yaml kept


def test_resume_compares_data_files_as_files_and_names_an_unset_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    trained = RunConfig(corpus="squad-json", train_file=Path("data/train.json"), dev_file=Path("data/dev.json"))
    (tmp_path / "run" / "config.yaml").write_text(trained.to_yaml(), encoding="utf-8")
    same = RunConfig(corpus="squad-json", train_file=Path("./data/../data/train.json"), dev_file=tmp_path / "data" / "dev.json",
                     resume="last")
    same.check_resume(checkpoint, random_init=True)  # the same files, written otherwise
    with pytest.raises(UserError) as refused:
        dataclasses.replace(same, train_file=Path("data/mine.json")).check_resume(checkpoint, random_init=True)
    assert str(refused.value).startswith("--resume last: --train-file data/mine.json here, but --train-file data/train.json in "
                                         "the run that wrote the checkpoint")
    with pytest.raises(UserError, match="^--resume last: no --dev-file here, but --dev-file data/dev.json in the run"):
        dataclasses.replace(same, dev_file=None).check_resume(checkpoint, random_init=True)


def test_resume_may_change_the_length_and_the_hardware(printed_and_trained, monkeypatch, capsys):
    output = printed_and_trained[1]
    argv = ["run", "--config", str(output / "config.yaml"), "--resume", "last", "--max-steps", "12", "--accelerator", "cpu",
            "--print-config"]
    code, out, err = run_cli(monkeypatch, capsys, argv)
    assert code == 0, err
    assert yaml.safe_load(out)["max_steps"] == 12


SAMPLE_TRAIN = Path(__file__).parents[1] / "plugins" / "data" / "sample" / "train.json"


@pytest.mark.parametrize("argv", [
    ["--corpus", "synthetic", "--train-file", "x.json"],
    ["--corpus", "sample", "--dev-file", "x.json"],
    ["--corpus", "squad-json"],
    ["--corpus", "squad-json", "--train-file", str(SAMPLE_TRAIN)],  # no dev split
    ["--corpus", "nope"],
    ["--featurizer", "windows"],
    ["--head", "spam"],
    ["--refiner", "nope"],
    ["--model", "./no/such/folder"],
    ["--max-seq-length", "301"],
    ["--max-seq-length", "128"],  # the default overlap of 64 leaves no room for context
    ["--resume", "last"],  # no checkpoint
    ["--output-dir", "a-file/out"],
])
def test_print_config_refuses_what_the_run_refuses(monkeypatch, capsys, tmp_path, argv):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("")
    argv = ["run", "--output-dir", "out", "--cache-dir", "cache", *argv]
    code, out, err = run_cli(monkeypatch, capsys, [*argv, "--print-config"])
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("Error: "), err
    code, _, run_err = run_cli(monkeypatch, capsys, argv)
    assert code == 2 and run_err.splitlines()[-1] == err.strip()
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def test_print_config_checks_an_alias_limit_without_the_network(monkeypatch, capsys, tmp_path):
    from qaframe import models

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(models, "check_hub_reachable", lambda spec: pytest.fail("the hub was contacted"))
    code, _, err = run_cli(monkeypatch, capsys, ["run", "--model", "kcbert", "--max-seq-length", "301", "--print-config"])
    assert code == 2 and "--max-seq-length 301 exceeds the 300 positions of model 'beomi/kcbert-base'" in err
    code, out, err = run_cli(monkeypatch, capsys, ["run", "--model", "kcbert", "--print-config"])
    assert code == 0 and f"learning_rate: null  # {MODEL_DEFAULTS['pretrained']['learning_rate']}, the default for this model" in out
