"""A model folder's qaframe.json and weights: every bad value is a one-line error naming the file, exit code 2.

Each test gets its own folder of links to one saved tiny KcBERT span model (random weights,
300 positions) plus the qaframe.json (or damaged weights file) under test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from plugins_for_tests import offsetless_featurizer, origin_featurizer

from qaframe import hookimpl
from qaframe.cli import main
from qaframe.errors import UserError
from qaframe.predictor import Predictor, validate_metadata

SETTINGS = {"max_seq_length": 64, "doc_stride": 16, "max_query_length": 16}


@pytest.fixture(autouse=True)
def isolated_host(qaframe_host):
    """In-process commands use a fresh built-ins-only plugin host, never the cached process-wide one."""
    return qaframe_host


@pytest.fixture(scope="module")
def saved_model(tiny_model_dir, tmp_path_factory) -> Path:
    """A span model with random weights from the packaged tiny KcBERT config, saved with its tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForQuestionAnswering, AutoTokenizer

    folder = tmp_path_factory.mktemp("saved-model")
    torch.manual_seed(0)
    AutoModelForQuestionAnswering.from_config(AutoConfig.from_pretrained(tiny_model_dir)).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(folder)
    return folder


@pytest.fixture
def model_folder(saved_model, tmp_path) -> Path:
    """A fresh model folder whose files link to the saved model's, so a test can add or replace one."""
    folder = tmp_path / "model"
    folder.mkdir()
    for path in saved_model.iterdir():
        (folder / path.name).symlink_to(path)
    return folder


def write_metadata(folder: Path, metadata: dict) -> Path:
    """Write `metadata` as the folder's qaframe.json; returns its path."""
    path = folder / "qaframe.json"
    path.write_text(json.dumps(metadata), encoding="utf-8")
    return path


def qaframe(capsys, *args) -> tuple[int, str, str]:
    """Run the real CLI entry point in this process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exited:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return exited.value.code, out, err


def predict(capsys, folder: Path) -> tuple[int, str, str]:
    """`qaframe predict` of one question on the model in `folder`."""
    return qaframe(capsys, "predict", "--model", folder, "--question", "한라산의 높이는?", "--context", "한라산의 높이는 1,947미터이다.")


def error_line(err: str) -> str:
    """The `Error: ...` line of stderr, asserting that stderr is that one line: qaframe.json is checked before the
    weights are loaded, so not even their progress bar comes first."""
    assert err.count("\n") == 1 and err.startswith("Error:"), err
    return err.strip()


@pytest.mark.parametrize("metadata, expected", [
    ({"featurizer_settings": {**SETTINGS, "stride": 8}}, "featurizer_settings has an unknown key 'stride'"),
    ({"featurizer_settings": [64, 16, 16]}, "featurizer_settings must be an object"),
    ({"featurizer_settings": {**SETTINGS, "max_seq_length": "64"}}, "featurizer_settings.max_seq_length must be an integer of at least 1, got '64'"),
    ({"featurizer_settings": {**SETTINGS, "doc_stride": -1}}, "featurizer_settings.doc_stride must be an integer of at least 0, got -1"),
    ({"n_best_size": "abc"}, "n_best_size must be a positive integer, got 'abc'"),
    ({"max_answer_length": 0}, "max_answer_length must be a positive integer, got 0"),
    ({"max_answer_length": True}, "max_answer_length must be a positive integer, got True"),
    ({"refiner": 5}, "refiner must be a name, got 5"),
    ({"head": ["span"]}, "head must be a name, got ['span']"),
    ({"featurizer": None}, "featurizer must be a name, got None"),
    ({"precision": "bf16"}, "precision must be one of 32, 32-true, bf16-mixed, 16-mixed, got 'bf16'"),
    ({"head": "spam"}, "unknown head 'spam'; did you mean 'span'?"),
    ({"featurizer": "sliding"}, "unknown featurizer 'sliding'"),
    ({"refiner": "korean"}, "unknown refiner 'korean'"),
    ({"plugins": ["qaframe.heads"]}, "plugins must be an object of plugin names, got ['qaframe.heads']"),
    ({"pad_to_multiple_of": 0}, "pad_to_multiple_of must be a positive integer, got 0"),
    ({"matmul_precision": "tf32"}, "matmul_precision must be one of highest, high, medium, got 'tf32'"),
    ({"cudnn_attention": "no"}, "cudnn_attention must be true or false, got 'no'"),
])
def test_bad_metadata_value_is_a_one_line_error_naming_the_file(model_folder, metadata, expected):
    path = write_metadata(model_folder, metadata)
    with pytest.raises(UserError) as caught:
        Predictor.load(model_folder)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and expected in message and "\n" not in message


def test_every_bad_field_is_reported_at_once(model_folder):
    write_metadata(model_folder, {"head": 3, "n_best_size": "abc", "precision": 16})
    with pytest.raises(UserError) as caught:
        Predictor.load(model_folder)
    assert str(caught.value).count("; ") == 2


@pytest.mark.parametrize("metadata, expected", [
    ({"n_best_size": "abc"}, "n_best_size must be a positive integer, got 'abc'"),
    ({"featurizer_settings": {"max_seq_length": 64, "bogus": 1}}, "unknown key 'bogus'"),
    ({"featurizer": "sliding"}, "did you mean 'sliding-window'?"),
    ({"featurizer_settings": {**SETTINGS, "max_seq_length": 9999}}, "featurizer_settings.max_seq_length 9999 exceeds the 300 positions"),
    ({"featurizer_settings": {**SETTINGS, "max_seq_length": 32}}, "--doc-stride 16 (the overlap between windows, in tokens) must be smaller"),
])
def test_predict_with_bad_metadata_exits_2_with_one_line_naming_the_file(capsys, model_folder, metadata, expected):
    path = write_metadata(model_folder, metadata)
    code, out, err = predict(capsys, model_folder)
    assert code == 2 and out == ""
    line = error_line(err)
    assert line.startswith(f"Error: {path}: ") and expected in line
    assert "Internal error" not in err and "Traceback" not in err


def test_truncated_weights_exit_2_with_one_line_naming_the_file(capsys, model_folder, saved_model):
    weights = model_folder / "model.safetensors"
    weights.unlink()
    weights.write_bytes((saved_model / "model.safetensors").read_bytes()[:5000])
    code, out, err = predict(capsys, model_folder)
    assert code == 2 and out == ""
    line = error_line(err)
    assert str(weights) in line and "truncated or corrupt" in line and "Internal error" not in err


def test_valid_metadata_still_answers_and_keeps_its_settings(capsys, model_folder):
    write_metadata(model_folder, {
        "head": "span", "featurizer": "sliding-window", "featurizer_settings": SETTINGS, "n_best_size": 5,
        "max_answer_length": 12, "refiner": None, "corpus": "squad-json", "base_model": "tiny", "precision": "bf16-mixed",
        "pad_to_multiple_of": 16, "matmul_precision": "highest", "cudnn_attention": True,
    })
    predictor = Predictor.load(model_folder, as_trained=True)
    assert (predictor.n_best_size, predictor.max_answer_length, predictor.precision) == (5, 12, "bf16-mixed")
    # as the run evaluated: its batch widths and GPU kernel choices
    assert predictor.pad_to_multiple_of == 16 and predictor.kernels == {"matmul_precision": "highest", "cudnn_attention": True}
    serving = Predictor.load(model_folder)  # the fastest way: batches as wide as their longest window, no per-shape plans
    assert serving.pad_to_multiple_of == 1 and serving.kernels == {}
    assert predictor.featurizer.settings.max_seq_length == 64 and predictor.refiner is None
    code, out, err = predict(capsys, model_folder)
    assert code == 0 and out.count("\n") == 1, err  # one answer: a span of the context, a tab, its score
    text, score = out.rstrip("\n").split("\t")
    assert text and text in "한라산의 높이는 1,947미터이다." and 0 <= float(score) <= 1


class Replacement:
    """A plugin overriding the built-in `sliding-window` featurizer with the same class (as a changed one would)."""

    @hookimpl
    def register_featurizers(self, register):
        from qaframe_plugins.featurizers import SlidingWindowFeaturizer

        register("sliding-window", SlidingWindowFeaturizer, override=True)


@pytest.mark.parametrize("state, expected", [
    ("{", ":1:2: malformed JSON: Expecting property name enclosed in double quotes; "),
    ('{"format": "other"}', ": not a learned-suffix state (expected format "),
])
def test_a_damaged_refiner_state_is_one_line_naming_the_file(capsys, model_folder, state, expected):
    write_metadata(model_folder, {"refiner": "learned-suffix"})
    path = model_folder / "refiner.json"
    path.write_text(state, encoding="utf-8")
    code, out, err = predict(capsys, model_folder)
    assert code == 2 and out == ""
    line = error_line(err)
    assert line.startswith(f"Error: {path}{expected}")
    assert line.endswith("`qaframe run` wrote it as the learned-suffix refiner's state: re-run it or delete the file")


def test_a_name_provided_by_another_plugin_since_training_is_warned_about(model_folder, register_plugin, caplog):
    path = write_metadata(model_folder, {"featurizer": "sliding-window", "head": "span",
                                         "plugins": {"featurizer": "qaframe.featurizers", "head": "qaframe.heads"}})
    Predictor.load(model_folder)
    assert "was provided by plugin" not in caplog.text  # the same plugins as in training
    register_plugin(Replacement(), name="replacement")
    validate_metadata(json.loads(path.read_text(encoding="utf-8")), path)
    assert "was provided by plugin" not in caplog.text  # validation only validates
    Predictor.load(model_folder)
    assert (f"{path}: featurizer 'sliding-window' was provided by plugin 'qaframe.featurizers' when this model was trained, "
            "and is by 'replacement' now (an override?); its answers can differ from the run's") in caplog.text
    assert "head 'span'" not in caplog.text


def test_a_qaframe_json_that_is_no_json_is_one_line_naming_file_line_and_column(capsys, model_folder):
    path = model_folder / "qaframe.json"
    path.write_text('{\n  "head": "span",\n  "featurizer": sliding-window\n}\n', encoding="utf-8")
    code, out, err = predict(capsys, model_folder)
    assert code == 2 and out == ""
    assert error_line(err) == (f"Error: {path}:3:17: malformed JSON: Expecting value; "
                               "rewrite it or delete it to use the defaults")


def test_predict_refuses_an_origin_style_featurizer_in_one_line(capsys, model_folder, register_plugin):
    register_plugin(origin_featurizer, name="origin")
    path = write_metadata(model_folder, {"featurizer": "origin-style", "featurizer_settings": SETTINGS})
    code, out, err = predict(capsys, model_folder)
    assert code == 2 and out == ""
    line = error_line(err)
    assert line.startswith(f"Error: {path}: featurizer 'origin-style' makes no offset mapping") and "origin-style function" in line


def test_predict_and_evaluate_refuse_a_featurizer_that_records_no_offsets_in_one_line(capsys, model_folder, register_plugin, tmp_path):
    register_plugin(offsetless_featurizer, name="offsetless")
    write_metadata(model_folder, {"featurizer": "offsetless", "featurizer_settings": SETTINGS})
    expected = "Error: featurizer 'offsetless' makes no offset mapping, so its windows cannot be decoded into answers"
    code, out, err = predict(capsys, model_folder)
    assert code == 2 and out == "" and err.strip().splitlines()[-1].startswith(expected)
    code, out, err = qaframe(capsys, "evaluate", "--model", model_folder, "--corpus", "synthetic", "--output-dir", tmp_path / "scores",
                             "--cache-dir", tmp_path / "cache")
    assert code == 2 and out == "" and err.strip().splitlines()[-1].startswith(expected)
    assert not (tmp_path / "scores" / "metrics.json").exists()


def test_a_run_records_the_plugins_behind_its_names():
    from qaframe.config import RunConfig
    from qaframe.runner import model_metadata
    from qaframe.types import FeaturizerSettings

    config = RunConfig(refiner="korean-particles")
    assert model_metadata(config, FeaturizerSettings(64, 16, 16), "32")["plugins"] == {
        "head": "qaframe.heads", "featurizer": "qaframe.featurizers", "refiner": "qaframe.refiners"}
    assert "refiner" not in model_metadata(RunConfig(refiner="none"), FeaturizerSettings(64, 16, 16), "32")["plugins"]


def test_plain_folder_without_metadata_still_answers(capsys, model_folder):
    code, out, err = predict(capsys, model_folder)
    assert code == 0 and out.count("\n") == 1, err  # one answer: a span of the context, a tab, its score
    text, score = out.rstrip("\n").split("\t")
    assert text and text in "한라산의 높이는 1,947미터이다." and 0 <= float(score) <= 1


def test_the_exported_model_is_readable_by_others(tiny_model_dir, tmp_path):
    """safetensors writes weights private (0600); write_model gives every file the usual permissions, for a serving account."""
    import os

    import torch
    from transformers import AutoConfig, AutoModelForQuestionAnswering, AutoTokenizer

    from qaframe.runner import write_model

    torch.manual_seed(0)
    model = AutoModelForQuestionAnswering.from_config(AutoConfig.from_pretrained(tiny_model_dir))
    write_model(model, AutoTokenizer.from_pretrained(tiny_model_dir), tmp_path / "model", {"featurizer_settings": SETTINGS})
    umask = os.umask(0)
    os.umask(umask)
    modes = {path.name: path.stat().st_mode & 0o777 for path in (tmp_path / "model").iterdir()}
    assert "model.safetensors" in modes and set(modes.values()) == {0o666 & ~umask}, modes


def replace_json(folder: Path, name: str, edit) -> None:
    """Replace the folder's link `name` by a file holding edit(its JSON)."""
    data = json.loads((folder / name).read_text(encoding="utf-8"))
    (folder / name).unlink()
    (folder / name).write_text(json.dumps(edit(data)), encoding="utf-8")


@pytest.mark.parametrize("change", [{"hidden_size": 256, "num_attention_heads": 4}, {"type_vocab_size": 3}, {"vocab_size": 30001}])
def test_a_config_of_another_model_beside_the_weights_exits_2_in_one_line_without_the_load_report(capfd, model_folder, change):
    replace_json(model_folder, "config.json", lambda config: {**config, **change})
    with pytest.raises(SystemExit) as exited:
        main(["predict", "--model", str(model_folder), "--question", "한라산의 높이는?", "--context", "한라산의 높이는 1,947미터이다."])
    out, err = capfd.readouterr()
    assert exited.value.code == 2 and out == ""
    line = err.splitlines()[-1]  # after transformers' progress bar of the weights
    assert line.startswith(f"Error: model '{model_folder}' could not be loaded") and "come from different models" in line
    assert "LOAD REPORT" not in err and "MISMATCH" not in err and "Internal error" not in err


def without_weights_but_index(folder: Path, index) -> None:
    """Swap the folder's model.safetensors for a model.safetensors.index.json holding `index`."""
    (folder / "model.safetensors").unlink()
    (folder / "model.safetensors.index.json").write_text(json.dumps(index), encoding="utf-8")


def added_token_content(tokenizer: dict, content) -> dict:
    """tokenizer.json with its first added token's content replaced."""
    tokenizer["added_tokens"][0]["content"] = content
    return tokenizer


@pytest.mark.parametrize("damage, expected", [
    (lambda f: replace_json(f, "config.json", lambda c: {**c, "hidden_size": "abc"}), "hidden_size"),
    (lambda f: replace_json(f, "config.json", lambda c: [c]), "must be a mapping, not list"),
    (lambda f: replace_json(f, "tokenizer_config.json", lambda t: {**t, "pad_token": 5}), "Special token pad_token"),
    (lambda f: replace_json(f, "tokenizer.json", lambda t: added_token_content(t, 5)), "'int' object is not an instance of 'str'"),
    (lambda f: without_weights_but_index(f, {"weight_map": 5}), "model.safetensors.index.json"),
])
def test_a_malformed_model_file_exits_2_in_one_line(capsys, model_folder, damage, expected):
    damage(model_folder)
    code, out, err = predict(capsys, model_folder)
    assert code == 2 and out == ""
    line = err.splitlines()[-1]
    assert line.startswith("Error: ") and f"'{model_folder}'" in line and expected in line, err
    assert "Internal error" not in err and "Traceback" not in err
