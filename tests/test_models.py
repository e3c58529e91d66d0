"""Model aliases and loading: resolve_model, load_tokenizer, load_config, check_max_seq_length, the packaged tiny KcBERT; model inputs."""

from __future__ import annotations

import shutil
import socket
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from qaframe import hookimpl
from qaframe.errors import UserError
from qaframe.models import (PREPARED_MASK_TYPES, check_hub_reachable, check_max_seq_length, cuda_kernels,
                            hub_unreachable, load_config, load_tokenizer, model_inputs, position_limit, require_weights, resolve_model,
                            takes_prepared_mask)
from qaframe.types import FeaturizerSettings, ModelSpec
from qaframe_plugins.models import TINY_FOLDER


def test_builtin_aliases(qaframe_host):
    kcbert, large, tiny = (resolve_model(name) for name in ("kcbert", "kcbert-large", "tiny"))
    assert (kcbert.source, kcbert.max_positions) == ("beomi/kcbert-base", 300)
    assert (large.source, large.max_positions) == ("beomi/kcbert-large", 300)
    assert tiny.random_init and tiny.max_positions == 300 and Path(tiny.source).is_dir()
    assert {"kcbert", "kcbert-large", "tiny"} <= set(qaframe_host.registry("model").names())


def test_tiny_folder_is_a_small_kcbert(qaframe_host, tiny_model_dir):
    spec = resolve_model("tiny")
    config = load_config(spec)
    shape = (config.model_type, config.num_hidden_layers, config.hidden_size, config.num_attention_heads)
    assert shape == ("bert", 2, 128, 2)
    assert (config.intermediate_size, config.max_position_embeddings, config.vocab_size) == (512, 300, 30000)
    tokenizer = load_tokenizer(spec)
    assert tokenizer.is_fast and len(tokenizer) == config.vocab_size
    assert tokenizer.tokenize("교향곡") == ["교", "##향", "##곡"]
    assert (tiny_model_dir / "LICENSE").read_text().startswith("MIT License")


def test_a_local_folder_and_a_hub_id_resolve(qaframe_host, tmp_path, tiny_model_dir):
    folder = shutil.copytree(tiny_model_dir, tmp_path / "my-model")
    spec = resolve_model(str(folder))
    assert spec.source == str(folder) and not spec.random_init
    assert load_tokenizer(spec).tokenize("교향곡") == ["교", "##향", "##곡"]
    assert resolve_model("klue/bert-base").source == "klue/bert-base"


def test_misspelled_alias_and_missing_folder_are_user_errors(qaframe_host, tmp_path):
    with pytest.raises(UserError, match="did you mean 'kcbert'"):
        resolve_model("kcbrt")
    with pytest.raises(UserError, match="no such model folder"):
        resolve_model(str(tmp_path / "absent"))


def test_a_folder_without_tokenizer_files_says_what_is_wrong(tmp_path):
    with pytest.raises(UserError) as caught:
        load_tokenizer(ModelSpec(source=str(tmp_path)))
    assert str(caught.value).startswith(f"model folder {tmp_path} has no tokenizer files (none of tokenizer.json,")
    (tmp_path / "tokenizer_config.json").write_text("{}")
    with pytest.raises(UserError, match=f"cannot load the tokenizer of model '{tmp_path}' \\(tried the folder\\)"):
        load_tokenizer(ModelSpec(source=str(tmp_path)))
    (tmp_path / "tokenizer_config.json").unlink()
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')  # transformers 5 makes a 5-token tokenizer of this
    (tmp_path / "tokenizer_config.json").write_text('{"tokenizer_class": "BertTokenizer"}')
    with pytest.raises(UserError, match="has no vocabulary .*lacks its tokenizer files"):
        load_tokenizer(ModelSpec(source=str(tmp_path)))
    with pytest.raises(UserError, match="cannot load the config"):
        load_config(ModelSpec(source=str(tmp_path / "nothing")))


def test_max_seq_length_above_the_position_limit_names_both_numbers(qaframe_host):
    spec = resolve_model("tiny")
    config = load_config(spec)
    check_max_seq_length(spec, config, 300)
    with pytest.raises(UserError, match=r"--max-seq-length 512 exceeds the 300 positions"):
        check_max_seq_length(spec, config, 512)


def test_position_limit_counts_roberta_padding_offset():
    roberta = SimpleNamespace(model_type="roberta", max_position_embeddings=514, pad_token_id=1)
    assert position_limit(ModelSpec(source="x"), roberta) == 512
    bert = SimpleNamespace(model_type="bert", max_position_embeddings=512, pad_token_id=0)
    assert position_limit(ModelSpec(source="x"), bert) == 512
    assert position_limit(ModelSpec(source="x", max_positions=300), bert) == 300


class AliasPlugin:
    """A third-party model alias registered through the public hook."""

    @hookimpl
    def register_models(self, register):
        register("my-tiny", lambda: ModelSpec(source=str(TINY_FOLDER), max_positions=128, random_init=True))


def test_a_plugin_alias_resolves_and_its_limit_counts(register_plugin):
    register_plugin(AliasPlugin(), name="aliases")
    spec = resolve_model("my-tiny")
    assert spec.max_positions == 128 and spec.random_init
    with pytest.raises(UserError, match="--max-seq-length 200 exceeds the 128 positions"):
        check_max_seq_length(spec, load_config(spec), 200)


class NotASpecPlugin:
    """A model alias whose factory returns a hub id string instead of a ModelSpec."""

    @hookimpl
    def register_models(self, register):
        register("by-name", lambda: "beomi/kcbert-base")


def test_an_alias_that_builds_no_model_spec_is_a_user_error_naming_the_plugin(register_plugin):
    register_plugin(NotASpecPlugin(), name="not-a-spec")
    with pytest.raises(UserError) as caught:
        resolve_model("by-name")
    assert str(caught.value) == (
        "model 'by-name' of plugin 'not-a-spec' (in-process -) built a str, not the ModelSpec (qaframe.types) a model factory returns"
    )


@pytest.mark.parametrize("name", ["", "  "])
def test_an_empty_model_name_is_refused_not_read_as_the_current_folder(name, monkeypatch, tmp_path, tiny_model_dir):
    monkeypatch.chdir(shutil.copytree(tiny_model_dir, tmp_path / "a-model-folder"))  # the current folder holds a model
    with pytest.raises(UserError, match=r"^--model is empty; pass an alias \(.*tiny.*\), a model folder or a hub id$"):
        resolve_model(name)


def test_require_weights_refuses_a_local_folder_without_weights_only(tmp_path, tiny_model_dir):
    folder = shutil.copytree(tiny_model_dir, tmp_path / "no-weights")  # config and tokenizer, as a hub download without weights
    with pytest.raises(UserError) as caught:
        require_weights(ModelSpec(source=str(folder)))
    assert str(caught.value).startswith(f"model folder {folder} has no weights (none of model.safetensors, model.safetensors.index.json,")
    require_weights(ModelSpec(source=str(folder), random_init=True))  # built from its config: needs none
    require_weights(ModelSpec(source="beomi/kcbert-base"))  # a hub id: the hub has them
    (folder / "pytorch_model.bin").write_bytes(b"")
    require_weights(ModelSpec(source=str(folder)))


@pytest.mark.parametrize("field, value, expected", [
    ("hidden_size", "abc", ("Validation error for field 'hidden_size'",) * 2),
    (None, None, ("Should have a `model_type` key in its config.json", "must be a mapping, not list")),  # a list
])
def test_a_malformed_config_is_a_one_line_user_error(tmp_path, tiny_model_dir, field, value, expected):
    import json

    folder = shutil.copytree(tiny_model_dir, tmp_path / "model")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, field: value} if field else [config]))
    for what, load, part in zip(("config", "tokenizer"), (load_config, load_tokenizer), expected):
        with pytest.raises(UserError) as caught:
            load(ModelSpec(source=str(folder)))
        message = str(caught.value)
        assert message.startswith(f"cannot load the {what} of model '{folder}' (tried the folder): ")
        assert part in message and "\n" not in message


def test_a_malformed_tokenizer_file_is_a_one_line_user_error(tmp_path, tiny_model_dir):
    import json

    folder = shutil.copytree(tiny_model_dir, tmp_path / "model")
    settings = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**settings, "pad_token": 5}))
    with pytest.raises(UserError, match=f"^cannot load the tokenizer of model '{folder}' \\(tried the folder\\): Special token pad_token"):
        load_tokenizer(ModelSpec(source=str(folder)))


def test_remote_config_code_that_does_not_compile_names_the_file(tmp_path, tiny_model_dir):
    import json

    folder = shutil.copytree(tiny_model_dir, tmp_path / "model")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "auto_map": {"AutoConfig": "configuration_mine.MineConfig"}}))
    (folder / "configuration_mine.py").write_text("from transformers import BertConfig\n\nclass MineConfig(BertConfig:\n    pass\n")
    with pytest.raises(UserError) as caught:
        load_config(ModelSpec(source=str(folder), trust_remote_code=True))
    assert str(caught.value) == (
        f"cannot load the config of model '{folder}' (tried the folder): its code (configuration_mine.py) does not compile: "
        f"{caught.value.__cause__.msg} at line 3"
    )


def test_the_spec_alone_lets_model_code_run(tmp_path, tiny_model_dir):
    """A head that loads the config as the docs show, `load_config(spec)`, follows a spec that trusts the model's code."""
    import json

    folder = shutil.copytree(tiny_model_dir, tmp_path / "model")
    for name, auto_map in (("config", {"AutoConfig": "configuration_mine.MineConfig"}),
                           ("tokenizer_config", {"AutoTokenizer": [None, "tokenization_mine.MineTokenizer"]})):
        settings = json.loads((folder / f"{name}.json").read_text())
        (folder / f"{name}.json").write_text(json.dumps({**settings, "auto_map": auto_map}))
    (folder / "configuration_mine.py").write_text("from transformers import BertConfig\n\nclass MineConfig(BertConfig):\n    pass\n")
    (folder / "tokenization_mine.py").write_text("from transformers import BertTokenizer\n\nclass MineTokenizer(BertTokenizer):\n    pass\n")
    for trust, config, tokenizer in ((False, "BertConfig", "BertTokenizer"), (True, "MineConfig", "MineTokenizer")):
        spec = ModelSpec(source=str(folder), trust_remote_code=trust)
        assert (type(load_config(spec)).__name__, type(load_tokenizer(spec)).__name__) == (config, tokenizer)


def test_a_model_with_only_a_slow_tokenizer_is_refused(tmp_path, tiny_model_dir):
    import json

    folder = shutil.copytree(tiny_model_dir, tmp_path / "model")
    settings = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**settings, "tokenizer_class": "BertTokenizerLegacy"}))
    with pytest.raises(UserError) as caught:
        load_tokenizer(ModelSpec(source=str(folder)))
    assert str(caught.value).startswith(f"model '{folder}' has only a slow tokenizer (BertTokenizerLegacy); qaframe needs a fast")


def test_cuda_kernels_leave_a_matmul_precision_chosen_per_backend_alone():
    # torch's per-backend settings (transformers' tf32 option sets them) make the process-wide getter raise
    assert torch.backends.fp32_precision == "none"
    torch.backends.fp32_precision = "tf32"
    try:
        with cuda_kernels("cuda", cudnn_attention=True):
            assert torch.backends.fp32_precision == "tf32" and torch.backends.cuda.cudnn_sdp_enabled()
        assert torch.backends.fp32_precision == "tf32"
    finally:
        torch.backends.fp32_precision = "none"


def test_cuda_kernels_sets_the_matmul_precision_and_the_cudnn_attention_switch_within_and_puts_them_back():
    before = torch.get_float32_matmul_precision(), torch.backends.cuda.cudnn_sdp_enabled()
    with cuda_kernels("cuda:0"):
        assert torch.get_float32_matmul_precision() == "high" and not torch.backends.cuda.cudnn_sdp_enabled()
        with cuda_kernels(torch.device("cuda"), matmul_precision="medium", cudnn_attention=True):
            assert torch.get_float32_matmul_precision() == "medium" and torch.backends.cuda.cudnn_sdp_enabled()
        assert torch.get_float32_matmul_precision() == "high" and not torch.backends.cuda.cudnn_sdp_enabled()
    assert (torch.get_float32_matmul_precision(), torch.backends.cuda.cudnn_sdp_enabled()) == before
    with pytest.raises(KeyError), cuda_kernels("cuda", matmul_precision="medium"):
        raise KeyError("an error inside")
    assert (torch.get_float32_matmul_precision(), torch.backends.cuda.cudnn_sdp_enabled()) == before
    with cuda_kernels("cpu", matmul_precision="medium", cudnn_attention=not before[1]):  # not a CUDA device: nothing changes
        assert (torch.get_float32_matmul_precision(), torch.backends.cuda.cudnn_sdp_enabled()) == before


def closed_port() -> int:
    """A local TCP port that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_hub_unreachable_tells_a_listening_endpoint_from_a_closed_one():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert hub_unreachable(f"http://127.0.0.1:{server.getsockname()[1]}") is None
    reason = hub_unreachable(f"http://127.0.0.1:{closed_port()}")
    assert reason.startswith("127.0.0.1: ") and "\n" not in reason


@pytest.fixture
def unreachable_hub(monkeypatch, tmp_path):
    """The hub client's endpoint is a closed local port, nothing is cached, offline mode is off."""
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"


def test_an_uncached_hub_model_without_network_fails_at_once_in_one_line(unreachable_hub, monkeypatch, capsys, tmp_path):
    import huggingface_hub.constants

    import qaframe.models
    from qaframe import cli

    probed = []

    def probe(endpoint):  # the real probe, counted
        probed.append(endpoint)
        return hub_unreachable(endpoint)

    monkeypatch.setattr(qaframe.models, "hub_unreachable", probe)
    monkeypatch.setattr(sys, "argv", ["qaframe"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "--corpus", "sample", "--model", "nobody-here/no-such-model", "--output-dir", str(tmp_path / "o"),
                  "--cache-dir", str(tmp_path / "c")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and probed == [huggingface_hub.constants.ENDPOINT]  # one connection attempt, no retries
    assert "'nobody-here/no-such-model' is not in the local Hugging Face cache and the hub cannot be reached (127.0.0.1: " in err
    assert "hf download nobody-here/no-such-model" in err and err.count("\n") == 1 and not (tmp_path / "o").exists()


def test_folders_cached_models_and_offline_mode_need_no_probe(unreachable_hub, monkeypatch, tiny_model_dir):
    import qaframe.models

    def probe(endpoint):
        raise AssertionError("probed the hub")

    monkeypatch.setattr(qaframe.models, "hub_unreachable", probe)
    check_hub_reachable(ModelSpec(source=str(tiny_model_dir)))
    snapshot = unreachable_hub / "models--somebody--cached" / "snapshots" / "0123abc"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (unreachable_hub / "models--somebody--cached" / "refs").mkdir()
    (unreachable_hub / "models--somebody--cached" / "refs" / "main").write_text("0123abc")
    check_hub_reachable(ModelSpec(source="somebody/cached"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    check_hub_reachable(ModelSpec(source="somebody/uncached"))


@pytest.mark.parametrize(
    "config, expected",
    [
        (SimpleNamespace(max_position_embeddings=512, model_type="bert"), (384, 64, 128)),
        (SimpleNamespace(max_position_embeddings=300, model_type="bert"), (300, 64, 116)),  # KcBERT
        (SimpleNamespace(max_position_embeddings=130, model_type="roberta", pad_token_id=1), (128, 32, 46)),  # 2 positions reserved
    ],
    ids=["bert-base", "kcbert", "small-roberta"],
)
def test_a_folder_without_qaframe_json_gets_windows_that_fit_the_model(kcbert_tokenizer, config, expected):
    from qaframe.predictor import default_settings
    from qaframe_plugins.featurizers import check_settings

    settings = default_settings(ModelSpec(source="x"), config, kcbert_tokenizer)
    assert (settings["max_seq_length"], settings["max_query_length"], settings["doc_stride"]) == expected
    check_settings(FeaturizerSettings(**settings), kcbert_tokenizer.num_special_tokens_to_add(pair=True))


def tiny_qa_model(model_type: str, attention: str = "sdpa"):
    """A randomly initialized question-answering model of `model_type`, two layers of width 64."""
    from transformers import AutoConfig, AutoModelForQuestionAnswering

    shape = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128, "embedding_size": 64,
             "vocab_size": 1000, "max_position_embeddings": 128}
    config = AutoConfig.for_model(model_type)
    for name, value in shape.items():
        if hasattr(config, name):
            setattr(config, name, value)
    torch.manual_seed(0)
    return AutoModelForQuestionAnswering.from_config(config, attn_implementation=attention).eval()


@pytest.mark.parametrize("model_type", sorted(PREPARED_MASK_TYPES))
def test_a_prepared_mask_gives_the_logits_of_the_plain_mask(model_type):
    """Every encoder type given the prepared (batch, 1, width, width) mask computes what transformers does from the 2D one."""
    model = tiny_qa_model(model_type)
    assert takes_prepared_mask(model)
    mask = torch.ones(3, 20, dtype=torch.long)
    mask[1, 12:], mask[2, 5:] = 0, 0
    batch = {"input_ids": torch.randint(5, 900, (3, 20)), "attention_mask": mask, "token_type_ids": torch.zeros(3, 20, dtype=torch.long),
             "window": torch.arange(3)}
    inputs = model_inputs(batch, prepared_mask=True)
    assert inputs["attention_mask"].shape == (3, 1, 20, 20) and inputs["attention_mask"].dtype == torch.bool
    assert set(inputs) == {"input_ids", "attention_mask", "token_type_ids"}
    with torch.no_grad():
        plain, prepared = model(**model_inputs(batch, prepared_mask=False)), model(**inputs)
    real = mask.bool()
    assert torch.equal(plain.start_logits[real], prepared.start_logits[real])
    assert torch.equal(plain.end_logits[real], prepared.end_logits[real])


def test_the_mask_is_prepared_only_for_known_encoders_on_sdpa():
    """Eager attention adds the mask to the scores (a boolean one would mask nothing), a causal model needs its own mask,
    and a model that is no transformers class (a third-party head's) may take its mask any way it likes."""
    assert not takes_prepared_mask(tiny_qa_model("bert", attention="eager"))
    assert not takes_prepared_mask(tiny_qa_model("gpt2"))
    assert not takes_prepared_mask(torch.nn.Linear(2, 2))

    class Custom(torch.nn.Module):
        config = tiny_qa_model("bert").config

    assert not takes_prepared_mask(Custom())
