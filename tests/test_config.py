"""RunConfig: defaults, YAML loading, flag precedence, validation, per-model defaults and `--print-config`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from qaframe import cli as cli_module
from qaframe.config import MODEL_DEFAULTS, RunConfig
from qaframe.errors import UserError


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
        ("devices: [cpu]\n", "--devices in config file"),
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
        ({"doc_stride": 256, "max_seq_length": 256}, "--doc-stride 256 .* smaller than --max-seq-length 256"),
        ({"train_batch_size": 0}, "--train-batch-size must be at least 1"),
        ({"warmup_ratio": 1.5}, "--warmup-ratio"),
        ({"limit_val_batches": 0}, "--limit-val-batches 0"),
        ({"learning_rate": -1.0}, "--learning-rate must be positive"),
        ({"learning_rate": "nan"}, "--learning-rate in the command line must be a finite number, got 'nan'"),
        ({"weight_decay": "inf"}, "--weight-decay in the command line must be a finite number"),
        ({"gradient_clip_val": "nan"}, "--gradient-clip-val in the command line must be a finite number"),
        ({"limit_train_batches": "0"}, "--limit-train-batches 0 would train on nothing"),
    ],
)
def test_validation_names_the_flag(overrides, message):
    with pytest.raises(UserError, match=message):
        RunConfig.from_sources(overrides=overrides)


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


def test_print_config_round_trips(monkeypatch, capsys, tmp_path):
    file = tmp_path / "run.yaml"
    file.write_text("max_epochs: 7\ncorpus: sample\n")
    code, out, _ = run_cli(monkeypatch, capsys, ["run", "--config", str(file), "--corpus", "synthetic", "--print-config"])
    assert code == 0
    printed = yaml.safe_load(out)
    assert printed["max_epochs"] == 7 and printed["corpus"] == "synthetic" and printed["train_batch_size"] == 16
    assert printed["learning_rate"] == MODEL_DEFAULTS["random_init"]["learning_rate"]  # resolved for the tiny model
    again = tmp_path / "again.yaml"
    again.write_text(out)
    assert RunConfig.from_sources(again).to_dict() == printed


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
