"""`qaframe run`, `evaluate` and `predict` end to end on the packaged sample corpus with the tiny model (smoke limits)."""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from plugins_for_tests import mlp_head

from qaframe import cli as cli_module
from qaframe.types import QAExample

# transformers 5 removed the extractive question-answering pipeline; the export is checked through the Auto classes too
SMOKE = ["--corpus", "sample", "--model", "tiny", "--max-epochs", "2", "--limit-train-batches", "2",
         "--limit-val-batches", "1", "--train-batch-size", "8", "--eval-batch-size", "16", "--max-seq-length", "128", "--doc-stride", "32"]
SAMPLE_DEV = Path(__file__).parents[1] / "plugins" / "data" / "sample" / "dev.json"
SMOKE_OPTIONS = dict(zip((f.lstrip("-").replace("-", "_") for f in SMOKE[::2]), SMOKE[1::2]))  # as RunConfig overrides


def qaframe(monkeypatch, capsys, *argv) -> tuple[int, str, str]:
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    argv = [str(a) for a in argv]
    monkeypatch.setattr(sys, "argv", ["qaframe", *argv])
    with pytest.raises(SystemExit) as exit_info:
        cli_module.main(argv)
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One smoke run of `qaframe run` on the sample corpus, shared by the tests that read its outputs."""
    output = tmp_path_factory.mktemp("run")
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(sys, "argv", ["qaframe"])
        with pytest.raises(SystemExit) as exit_info:
            cli_module.main(["run", *SMOKE, "--output-dir", str(output), "--cache-dir", str(cache)])
    assert exit_info.value.code == 0
    return output


def test_run_writes_every_output(trained):
    names = {p.name for p in trained.iterdir()}
    assert {"config.yaml", "checkpoints", "model", "predictions.json", "nbest_predictions.json", "metrics.json"} <= names
    assert not [n for n in names if n.startswith(".")]  # no temporary files left behind
    metrics = json.loads((trained / "metrics.json").read_text())
    for key in ("exact_match", "f1", "exact_match_raw", "f1_raw"):
        assert 0.0 <= metrics[key] <= 100.0
    assert (metrics["metric"], metrics["corpus"], metrics["model"], metrics["refiner"]) == ("korquad", "sample", "tiny", "korean-particles")
    assert metrics["files"] == [str(SAMPLE_DEV)] and metrics["skipped_questions"] == 0
    assert metrics["train_windows_per_second"] > 0 and metrics["optimizer_steps"] == 4
    predictions = json.loads((trained / "predictions.json").read_text())
    assert len(predictions) == metrics["examples"] > 0
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in predictions.items())
    nbest = json.loads((trained / "nbest_predictions.json").read_text())
    assert set(nbest) == set(predictions)
    assert all(entries[0]["text"] == predictions[k] for k, entries in nbest.items() if entries)
    checkpoints = {p.name for p in (trained / "checkpoints").iterdir()}
    assert "last.ckpt" in checkpoints and any(n.startswith("best-") for n in checkpoints)
    meta = json.loads((trained / "model" / "qaframe.json").read_text())
    assert meta["featurizer_settings"]["max_seq_length"] == 128 and meta["refiner"] == "korean-particles"
    assert meta["precision"] == "32-true"  # what `qaframe evaluate` computes in


def test_checkpoints_load_with_weights_only(trained):
    for path in (trained / "checkpoints").glob("*.ckpt"):
        state = torch.load(path, map_location="cpu", weights_only=True)
        assert "state_dict" in state and "hyper_parameters" not in state


def test_exported_model_is_a_standard_hugging_face_qa_model(trained):
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from qaframe.predictor import Predictor

    folder = trained / "model"
    model = AutoModelForQuestionAnswering.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    question, context = "김철수는 어디에서 태어났나?", "김철수는 1987년에 서울에서 태어났다."
    encoded = tokenizer(question, context, return_tensors="pt")
    with torch.no_grad():
        output = model(**encoded)
    predictor = Predictor.load(folder)
    features = predictor.featurizer.featurize([QAExample("q", "", question, context)], predictor.tokenizer)
    start, end = predictor.logits(features)
    n = encoded["input_ids"].shape[1]
    assert np.allclose(start[0, :n], output.start_logits[0].numpy(), atol=1e-4)
    assert np.allclose(end[0, :n], output.end_logits[0].numpy(), atol=1e-4)


def test_evaluate_reproduces_the_run_metrics_on_the_scored_examples(trained, tmp_path, monkeypatch, capsys):
    code, out, err = qaframe(monkeypatch, capsys, "evaluate", "--model", trained / "model", "--corpus", "sample",
                             "--output-dir", tmp_path, "--cache-dir", tmp_path / "cache")
    assert code == 0, err
    assert "exact match" in out and str(tmp_path) in out
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    predictions = json.loads((tmp_path / "predictions.json").read_text())
    assert metrics["examples"] == len(predictions) == 72  # every dev question of the sample corpus
    run_predictions = json.loads((trained / "predictions.json").read_text())
    assert all(predictions[k] == v for k, v in run_predictions.items())


def test_evaluate_refines_as_the_model_was_trained_to_unless_told(trained, tmp_path, monkeypatch, capsys):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(trained / "model", folder)
    meta = json.loads((folder / "qaframe.json").read_text())
    (folder / "qaframe.json").write_text(json.dumps({**meta, "refiner": "none"}))  # as `qaframe run --refiner none` writes
    for extra, expected in (([], "none"), (["--refiner", "korean-particles"], "korean-particles")):
        output = tmp_path / expected
        code, _, err = qaframe(monkeypatch, capsys, "evaluate", "--model", folder, "--corpus", "sample",
                               "--output-dir", output, "--cache-dir", tmp_path / "cache", *extra)
        assert code == 0, err
        metrics = json.loads((output / "metrics.json").read_text())
        assert metrics["refiner"] == expected
        nbest = json.loads((output / "nbest_predictions.json").read_text())
        cut = [e for entries in nbest.values() for e in entries if e["text"] != e["raw_text"]]
        if expected == "none":
            assert (metrics["exact_match"], metrics["f1"]) == (metrics["exact_match_raw"], metrics["f1_raw"]) and not cut
        else:  # refined as in the run, which trained with the sample corpus's korean-particles
            assert cut
            predictions = json.loads((output / "predictions.json").read_text())
            run_predictions = json.loads((trained / "predictions.json").read_text())
            assert {k: predictions[k] for k in run_predictions} == run_predictions


def test_a_learned_refiner_is_saved_with_the_model_and_loaded_back(tmp_path, monkeypatch, capsys):
    from qaframe.predictor import Predictor
    from qaframe.types import REFINER_STATE_FILE

    folder = tmp_path / "out" / "model"
    code, _, err = qaframe(monkeypatch, capsys, "run", *SMOKE, "--refiner", "learned-suffix", "--output-dir", tmp_path / "out",
                           "--cache-dir", tmp_path / "cache")
    assert code == 0, err
    state_file = folder / REFINER_STATE_FILE
    assert state_file.name == "refiner.json" and state_file.is_file()
    state = json.loads(state_file.read_text(encoding="utf-8"))
    assert state["counts"]["tail"]  # fitted on the training answers
    predictor = Predictor.load(folder)
    assert predictor.refiner.name == "learned-suffix" and predictor.refiner.to_json() == state
    capsys.readouterr()  # the progress bar of loading the weights
    state_file.write_text("{", encoding="utf-8")
    code, out, err = qaframe(monkeypatch, capsys, "predict", "--model", folder, "--question", "누구?", "--context", "김철수는 교사이다.")
    assert code == 2 and not out and err.count("\n") == 1, err
    assert err.startswith(f"Error: {state_file}:1:2: malformed JSON") and "as the learned-suffix refiner's state" in err


def test_evaluate_reads_the_users_file_and_honours_strict(trained, tmp_path, monkeypatch, capsys):
    duplicates = Path(__file__).parent / "badinput" / "duplicate_ids.json"  # two questions with the id dup-1

    def evaluate(output, *extra):
        return qaframe(monkeypatch, capsys, "evaluate", "--model", trained / "model", "--corpus", "squad-json", "--dev-file", duplicates,
                       "--output-dir", output, "--cache-dir", tmp_path / "cache", *extra)

    code, _, err = evaluate(tmp_path / "o")
    assert code == 0, err
    assert f"dev ({duplicates}): skipped 1 answers or records: dup-1 (duplicate id" in err
    assert list(json.loads((tmp_path / "o" / "predictions.json").read_text())) == ["dup-1"]
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["examples"] == 1
    code, _, err = evaluate(tmp_path / "strict", "--strict")
    assert code == 2 and err.count("\n") == 1, err  # the file is read before the model's weights (and their progress bar)
    assert err.startswith(f"Error: {duplicates}: record dup-1: duplicate id"), err
    assert not (tmp_path / "strict" / "predictions.json").exists()


def test_the_scores_name_the_file_they_are_about_and_the_questions_loading_skipped(trained, tmp_path, monkeypatch, capsys):
    """The official scorer counts a question that qaframe skipped while loading as a wrong answer: the scores say so."""
    context = "이영희는 부산 출신이다. 이영희는 교사 일을 한다."
    questions = [
        {"id": "kept", "question": "이영희의 고향은?", "answers": [{"text": "부산", "answer_start": 5}]},
        {"id": "one-answer-dropped", "question": "이영희의 직업은?",
         "answers": [{"text": "교사", "answer_start": 19}, {"text": "의사", "answer_start": 19}]},
        {"id": "no-question", "question": "", "answers": [{"text": "부산", "answer_start": 5}]},
    ]
    dev = tmp_path / "dev.json"
    dev.write_text(json.dumps({"version": "1", "data": [{"paragraphs": [{"context": context, "qas": questions}]}]}, ensure_ascii=False))
    code, out, err = qaframe(monkeypatch, capsys, "evaluate", "--model", trained / "model", "--corpus", "squad-json",
                             "--dev-file", dev, "--output-dir", tmp_path / "o", "--cache-dir", tmp_path / "cache")
    assert code == 0, err
    assert "skipped 2 answers or records: one-answer-dropped (" in err and "no-question (" in err
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert (metrics["files"], metrics["examples"], metrics["skipped_questions"]) == ([str(dev)], 2, 1)
    assert f"2 dev examples of squad-json from {dev}; questions skipped while loading, not scored: 1)" in out.splitlines()[0]


def test_asking_for_more_answers_changes_neither_the_best_answer_nor_the_scores(trained):
    from qaframe.predictor import Predictor

    predictor = Predictor.load(trained / "model")
    predictor.n_best_size = 3  # as `qaframe run --n-best-size 3` saves it
    items = [("이영희의 직업은?", "이영희는 부산 출신이다. 이영희는 교사 일을 한다."), ("김철수는 어디에서 태어났나?", "김철수는 1987년에 서울에서 태어났다.")]
    one, many = predictor.answer(items, top_k=1), predictor.answer(items, top_k=50)
    for best, answers in zip(one, many):
        assert best == answers[:1] and len(answers) <= 3
    assert predictor.answer(items[:1], top_k=50)[0] == many[0]  # nor does the rest of a batch


def test_predict_one_question_and_a_file(trained, tmp_path, monkeypatch, capsys):
    context = "이영희는 부산 출신이다. 이영희는 교사 일을 한다."
    code, out, _ = qaframe(monkeypatch, capsys, "predict", "--model", trained / "model", "--question", "이영희의 직업은?",
                           "--context", context, "--top-k", "3", "--json")
    assert code == 0
    answers = json.loads(out)
    assert 1 <= len(answers) <= 3
    for answer in answers:
        assert context[answer["start"] : answer["end"]] == answer["text"] and 0 <= answer["score"] <= 1
    assert answers == sorted(answers, key=lambda a: -a["score"])

    questions = tmp_path / "questions.jsonl"
    questions.write_text(
        json.dumps({"id": "q1", "question": "이영희의 고향은?", "context": context}, ensure_ascii=False) + "\n"
        + json.dumps({"question": "직업은?", "context": "x" * 3000}, ensure_ascii=False) + "\n"
    )
    code, _, err = qaframe(monkeypatch, capsys, "predict", "--model", trained / "model", "--input", questions,
                           "--output", tmp_path / "answers.jsonl")
    assert code == 0, err
    lines = [json.loads(line) for line in (tmp_path / "answers.jsonl").read_text().splitlines()]
    assert [line["id"] for line in lines] == ["q1", "2"] and all(len(line["answers"]) == 1 for line in lines)  # always a span

    questions.write_text(json.dumps({"question": "이영희의 직업은?", "context": "이영희는\u2028교사 일을 한다.\x85"}, ensure_ascii=False) + "\r\n")
    code, out, err = qaframe(monkeypatch, capsys, "predict", "--model", trained / "model", "--input", questions)
    assert code == 0, err  # U+2028 and U+0085 may stand unescaped in a JSON string: only \n ends a line
    assert [json.loads(line)["id"] for line in out.splitlines()] == ["1"]

    questions.write_text('{"question": "빈 문맥?", "context": ""}\n')
    code, _, err = qaframe(monkeypatch, capsys, "predict", "--model", trained / "model", "--input", questions)
    assert code == 2 and f"{questions}:1: 'context'" in err and err.count("\n") == 1


def test_second_run_into_the_same_folder_needs_resume(trained, monkeypatch, capsys, tmp_path):
    code, _, err = qaframe(monkeypatch, capsys, "run", *SMOKE, "--output-dir", trained, "--cache-dir", tmp_path)
    assert code == 2 and err.count("\n") == 1
    assert f"pass --resume last to continue it, choose another --output-dir, or delete {trained} to start over" in err
    code, out, err = qaframe(monkeypatch, capsys, "run", *SMOKE, "--output-dir", trained, "--cache-dir", tmp_path, "--print-config")
    assert code == 0 and not err and f"output_dir: {trained}\n" in out  # printing trains and writes nothing: no obstacle


def test_resume_last_continues_from_the_checkpoint(trained, monkeypatch, capsys, tmp_path):
    output = tmp_path / "resumed"
    code, _, err = qaframe(monkeypatch, capsys, "run", *SMOKE, "--max-epochs", "1", "--output-dir", output,
                           "--cache-dir", tmp_path / "cache")
    assert code == 0, err
    assert json.loads((output / "metrics.json").read_text())["optimizer_steps"] == 2
    code, _, err = qaframe(monkeypatch, capsys, "run", *SMOKE, "--output-dir", output, "--cache-dir", tmp_path / "cache",
                           "--resume", "last")
    assert code == 0, err
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["optimizer_steps"] == 4 and metrics["epochs"] == 2 and metrics["train_windows"] == 16


def test_a_third_party_head_trains_through_the_runner(register_plugin, tmp_path, monkeypatch, capsys):
    register_plugin(mlp_head, name="mlp-head-plugin")
    code, out, err = qaframe(monkeypatch, capsys, "run", *SMOKE, "--head", "mlp-span", "--output-dir", tmp_path / "out",
                             "--cache-dir", tmp_path / "cache")
    assert code == 0, err
    assert (tmp_path / "out" / "model" / mlp_head.HEAD_WEIGHTS).is_file()
    assert json.loads((tmp_path / "out" / "model" / "qaframe.json").read_text())["head"] == "mlp-span"
    code, out, err = qaframe(monkeypatch, capsys, "predict", "--model", tmp_path / "out" / "model",
                             "--question", "누구?", "--context", "김철수는 교사이다.")
    assert code == 0, err


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--corpus", "korqad"], "unknown corpus 'korqad'; did you mean 'korquad'?"),
        (["--head", "spam"], "unknown head 'spam'"),
        (["--optimizer", "sgdd"], "unknown optimizer 'sgdd'"),
        (["--scheduler", "cosin"], "unknown scheduler 'cosin'; did you mean 'cosine'?"),
        (["--featurizer", "windows"], "unknown featurizer 'windows'"),
        (["--model", "./no/such/folder"], "no such model folder"),
        (["--resume", "missing.ckpt"], "no checkpoint at missing.ckpt"),
        (["--compile-mode", "reduce-overhead"], "--compile-mode reduce-overhead needs --compile"),
        (["--compile", "--compile-mode", "max-autotune", "--accumulate-grad-batches", "2"],
         "--compile-mode max-autotune records CUDA graphs, whose gradient buffers the next batch's backward overwrites"),
        (["--corpus", "squad-json", "--train-file", SAMPLE_DEV],
         "corpus 'squad-json' has no 'dev' split (it has: train); pass the dev file with --dev-file"),
    ],
)
def test_user_errors_exit_2_with_one_line(flags, message, monkeypatch, capsys, tmp_path):
    code, _, err = qaframe(monkeypatch, capsys, "run", *SMOKE, *flags, "--output-dir", tmp_path / "o", "--cache-dir", tmp_path)
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_max_seq_length_above_the_model_limit_fails_before_featurizing(monkeypatch, capsys, tmp_path):
    from qaframe import runner

    def featurizing(*args, **kwargs):
        raise AssertionError("featurized before checking max_seq_length")

    monkeypatch.setattr(runner, "load_or_build", featurizing)
    code, _, err = qaframe(monkeypatch, capsys, "run", "--corpus", "sample", "--max-seq-length", "301",
                           "--output-dir", tmp_path / "o", "--cache-dir", tmp_path)
    assert code == 2 and "301" in err and "300" in err and err.count("\n") == 1


def test_extra_callbacks_see_batches_padded_to_the_multiple_and_the_progress_refresh_rate(tmp_path, monkeypatch):
    from pytorch_lightning.callbacks import Callback

    from qaframe import runner
    from qaframe.config import RunConfig
    from qaframe.predictor import window_logits

    class Widths(Callback):
        def __init__(self):
            self.widths, self.longest = [], []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.refresh_rate = trainer.progress_bar_callback.refresh_rate
            self.widths.append(batch["input_ids"].shape[1])
            self.longest.append(int(batch["attention_mask"].sum(1).max()))

    widths = Widths()
    config = RunConfig.from_sources(overrides={**SMOKE_OPTIONS, "pad_to_multiple_of": "16", "progress_every": "3", "output_dir": tmp_path / "o",
                                               "cache_dir": tmp_path / "c"})
    precision = torch.get_float32_matmul_precision()
    final_evaluation = {}

    def recording_window_logits(*args, **kwargs):
        final_evaluation.update(kwargs)
        return window_logits(*args, **kwargs)

    monkeypatch.setattr(runner, "window_logits", recording_window_logits)
    runner.run(config, echo=lambda message: None, callbacks=[widths])
    assert len(widths.widths) == 4 and widths.refresh_rate == 3
    for width, longest in zip(widths.widths, widths.longest):
        assert width % 16 == 0 and longest <= width < longest + 16
    assert torch.get_float32_matmul_precision() == precision  # --matmul-precision applies on CUDA only
    # the final evaluation pads as validation did, and qaframe.json says so, for `qaframe evaluate` to do the same
    assert final_evaluation["pad_to_multiple_of"] == 16
    assert json.loads((tmp_path / "o" / "model" / "qaframe.json").read_text())["pad_to_multiple_of"] == 16


def test_training_reads_no_tensor_value_between_progress_refreshes(tmp_path):
    """Reading a tensor's value (`.item()`, `bool()`) makes the host wait for the GPU. Training reads the loss only
    where the progress bar refreshes and the loss is logged, every --progress-every steps; transformers' check of
    the attention mask for padding and Lightning's conversion of progress-bar values read at every step before.
    Validation keeps its logits where they are until the epoch ends."""
    from pytorch_lightning.callbacks import Callback
    from torch.utils._python_dispatch import TorchDispatchMode

    from qaframe import runner
    from qaframe.config import RunConfig

    reads, state = [], {"batch": None}

    class Reads(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func is torch.ops.aten._local_scalar_dense.default:
                reads.append((state["trainer"].state.stage.value, state["trainer"].global_step, state["batch"]))
            return func(*args, **(kwargs or {}))

    mode = Reads()

    class Probe(Callback):  # after the progress bar: its on_train_batch_end runs first
        def on_train_start(self, trainer, pl_module):
            state["trainer"] = trainer
            mode.__enter__()

        def on_train_end(self, trainer, pl_module):
            mode.__exit__(None, None, None)

        def on_train_batch_start(self, *arguments):
            state["batch"] = "train"

        def on_validation_batch_start(self, *arguments):
            state["batch"] = "validation"

        def on_train_batch_end(self, *arguments):
            state["batch"] = None

        def on_validation_batch_end(self, *arguments):
            state["batch"] = None

    unlimited = {k: v for k, v in SMOKE_OPTIONS.items() if k != "limit_train_batches"}
    config = RunConfig.from_sources(overrides={**unlimited, "max_steps": "7", "progress_every": "3", "output_dir": tmp_path / "o",
                                               "cache_dir": tmp_path / "c"})
    runner.run(config, echo=lambda message: None, callbacks=[Probe()])
    assert {step for stage, step, batch in reads if batch == "train"} == {3, 6}  # the bar reads the loss as it refreshes
    assert not [read for read in reads if read[2] == "validation"]
    # between batches: the DataLoader's seed (a CPU tensor) at the start, the logger every 3 steps, the last step
    assert {step for stage, step, batch in reads if stage == "train" and batch is None} <= {0, 3, 6, 7}
    logged = [row for row in csv.DictReader(open(tmp_path / "o" / "logs" / "version_0" / "metrics.csv")) if row["train_loss"]]
    assert [int(row["step"]) for row in logged] == [2, 5, 6]  # every 3 steps, and the last


@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
def test_compile_compiles_the_model_in_the_chosen_mode_with_dynamic_widths(mode, tmp_path, monkeypatch):
    from qaframe import runner
    from qaframe.config import RunConfig

    calls = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda module, **options: calls.append((type(module).__name__, options)))
    config = RunConfig.from_sources(overrides={**SMOKE_OPTIONS, "compile": "yes", "compile_mode": mode,
                                               "output_dir": tmp_path / "o", "cache_dir": tmp_path / "c"})
    runner.run(config, echo=lambda message: None)
    assert calls == [("BertForQuestionAnswering", {"dynamic": True, "mode": mode})]


@pytest.mark.parametrize("gpu", ["native", "emulated", "none"])
def test_bfloat16_only_on_a_gpu_that_computes_it_natively(gpu, monkeypatch):
    """`auto` precision and a loaded model's dtype: bf16 on Ampere and newer, float32 where bf16 is emulated (Volta, Turing)."""
    from qaframe.predictor import inference_dtype
    from qaframe.runner import resolve_precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu != "none")
    # torch's answer on an emulating GPU: yes, unless emulation is excluded
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: gpu == "native" or including_emulation)
    native = gpu == "native"
    assert resolve_precision("auto", "auto") == ("bf16-mixed" if native else "32")
    assert inference_dtype("cuda") == inference_dtype(torch.device("cuda", 1)) == (torch.bfloat16 if native else torch.float32)
    assert inference_dtype("cpu") == torch.float32
    assert resolve_precision("auto", "cpu") == "32" and resolve_precision("16-mixed", "auto") == "16-mixed"


def test_a_loaded_model_answers_in_bfloat16_weights_close_to_float32(trained):
    from qaframe.predictor import Predictor

    # bfloat16 weights under bf16 autocast, as on such a GPU (here on the CPU): float32 logits back, close to the
    # float32 model's, the same answers
    predictor = Predictor.load(trained / "model")
    assert predictor.precision == "32" and predictor.model.dtype == torch.float32
    question, context = "김철수는 어디에서 태어났나?", "김철수는 1987년에 서울에서 태어났다. 그는 부산에서 자랐다."
    features = predictor.featurizer.featurize([QAExample("q", "", question, context)], predictor.tokenizer)
    start32, end32 = predictor.logits(features)
    answers32 = predictor.answer([(question, context)], top_k=3)
    predictor.model.to(torch.bfloat16)
    predictor.precision = "bf16-mixed"
    start16, end16 = predictor.logits(features)
    assert start16.dtype == end16.dtype == np.float32
    n = int(features.lengths[0])  # one window: its own columns
    assert np.allclose(start16[0, :n], start32[0, :n], atol=0.25) and np.allclose(end16[0, :n], end32[0, :n], atol=0.25)
    assert predictor.answer([(question, context)], top_k=3)[0][0]["text"] == answers32[0][0]["text"]


def test_the_run_output_carries_no_lightning_advertisement(tmp_path, caplog):
    from qaframe.config import RunConfig
    from qaframe.runner import _trainer

    caplog.set_level("INFO")
    _trainer(RunConfig(accelerator="cpu", max_epochs=1).with_model_defaults(True), tmp_path, [])
    messages = [record.getMessage() for record in caplog.records]
    assert any("GPU available" in m for m in messages)  # Lightning's own set-up lines still show
    assert not any("litlogger" in m for m in messages), messages


# a run on 2 batches logs less often than every 10 steps; a resumed run writes where its checkpoints are; torch 2.13
# deprecates a pytree class that Lightning builds every step
EXPECTED_WARNINGS = ("is smaller than the logging interval", "exists and is not empty", "LeafSpec")


def test_stdout_holds_the_results_alone_and_no_warning_that_asks_nothing(monkeypatch, capsys, tmp_path, recwarn):
    """`qaframe run > log` keeps the two result lines; the bar and Lightning's lines go to stderr."""
    argv = ["run", *SMOKE, "--output-dir", tmp_path / "out", "--cache-dir", tmp_path / "cache"]
    for extra in ([], ["--max-epochs", "3", "--resume", "last"]):
        code, out, err = qaframe(monkeypatch, capsys, *argv, *extra)
        assert code == 0, err
        lines = out.splitlines()
        assert len(lines) == 2 and lines[0].startswith("exact match ") and lines[1].startswith("outputs: "), out
        assert "Epoch " in err  # the progress bar
    assert not [str(w.message) for w in recwarn if any(text in str(w.message) for text in EXPECTED_WARNINGS)]


def test_train_seconds_leave_out_validation(tmp_path):
    from pytorch_lightning.callbacks import Callback

    from qaframe import runner
    from qaframe.config import RunConfig

    class SlowValidation(Callback):
        """Sleeps as validation starts; times training as a whole (from just after qaframe's clock starts to just after it stops)."""

        slept = 0.5

        def on_train_start(self, trainer, pl_module):
            self.started = time.perf_counter()

        def on_validation_start(self, trainer, pl_module):
            time.sleep(self.slept)

        def on_train_end(self, trainer, pl_module):
            self.seconds = time.perf_counter() - self.started

    slow = SlowValidation()
    config = RunConfig.from_sources(overrides={**SMOKE_OPTIONS, "max_epochs": "1", "output_dir": tmp_path / "o", "cache_dir": tmp_path / "c"})
    metrics = runner.run(config, echo=lambda message: None, callbacks=[slow]).metrics
    # one validation, at the epoch's end; the clock counts the rest (callbacks between its hooks and these: milliseconds)
    assert 0 < metrics["train_seconds"] <= slow.seconds - slow.slept + 0.1, (metrics["train_seconds"], slow.seconds)
