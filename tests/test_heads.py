"""Heads: the built-in `span` head (build, forward, save/load, pipeline, load errors) and a plugged-in `mlp-span` head."""

from __future__ import annotations

import huggingface_hub
import pytest
import torch
from plugins_for_tests import mlp_head

from qaframe.errors import UserError
from qaframe.types import ModelSpec, OptimizerSettings

# transformers 5 dropped the extractive question-answering pipeline; 4.x still has it

@pytest.fixture
def tiny(qaframe_host) -> ModelSpec:
    """The packaged tiny KcBERT alias (random weights, 2 layers, hidden 128)."""
    return qaframe_host.create("model", "tiny")


@pytest.fixture
def offline(monkeypatch):
    """No network: the Hub client refuses every request instead of retrying."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def batch(seed: int = 0, size: int = 3, length: int = 12) -> dict[str, torch.Tensor]:
    """Random token ids with right padding on every row but the first."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, 30000, (size, length), generator=generator)
    attention_mask = torch.ones(size, length, dtype=torch.long)
    for row in range(1, size):
        attention_mask[row, length - 2 * row :] = 0
    input_ids[attention_mask == 0] = 0
    token_type_ids = torch.zeros(size, length, dtype=torch.long)
    token_type_ids[:, length // 2 :] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids * attention_mask}


def logits(model, inputs) -> tuple[torch.Tensor, torch.Tensor]:
    """Start and end logits in eval mode, without gradients."""
    model.eval()
    with torch.no_grad():
        output = model(**inputs)
    return output.start_logits, output.end_logits


# -- span -----------------------------------------------------------------------------
def test_span_head_builds_from_the_tiny_config_with_sdpa(qaframe_host, tiny):
    model = qaframe_host.create("head", "span", tiny, pretrained=True)  # random_init: built from config
    assert type(model).__name__ == "BertForQuestionAnswering"
    assert model.config.num_hidden_layers == 2 and model.config.hidden_size == 128
    assert model.config._attn_implementation == "sdpa"
    assert all(p.dtype == torch.float32 for p in model.parameters())
    inputs = batch()
    for given in (inputs, {k: v for k, v in inputs.items() if k != "token_type_ids"}):
        start, end = logits(model, given)
        assert start.shape == end.shape == (3, 12)
        assert torch.isfinite(start).all() and torch.isfinite(end).all()


def test_span_head_random_weights_differ_per_seed(qaframe_host, tiny):
    torch.manual_seed(1)
    first = qaframe_host.create("head", "span", tiny, pretrained=False)
    torch.manual_seed(2)
    second = qaframe_host.create("head", "span", tiny, pretrained=False)
    assert not torch.equal(first.qa_outputs.weight, second.qa_outputs.weight)


def test_span_head_save_and_load_give_identical_logits(qaframe_host, tiny, tmp_path):
    model = qaframe_host.create("head", "span", tiny, pretrained=False)
    model.save_pretrained(tmp_path)
    loaded = qaframe_host.create("head", "span", ModelSpec(source=str(tmp_path)), pretrained=True)
    inputs = batch(seed=3)
    for mine, theirs in zip(logits(model, inputs), logits(loaded, inputs)):
        assert torch.equal(mine, theirs)


def test_saved_span_folder_loads_with_plain_transformers(qaframe_host, tiny, tmp_path):
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from qaframe.models import load_tokenizer

    model = qaframe_host.create("head", "span", tiny, pretrained=False)
    model.save_pretrained(tmp_path)
    load_tokenizer(tiny).save_pretrained(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    loaded = AutoModelForQuestionAnswering.from_pretrained(tmp_path)
    inputs = tokenizer("세종대왕은 언제 태어났나?", "세종대왕은 1397년 한양에서 태어났다.", return_tensors="pt")
    assert tokenizer.is_fast and tokenizer.unk_token_id not in inputs["input_ids"][0].tolist()
    for mine, theirs in zip(logits(model, dict(inputs)), logits(loaded, dict(inputs))):
        assert torch.equal(mine, theirs)


def test_hub_id_that_cannot_be_reached_offline_is_a_one_line_user_error(qaframe_host, offline):
    with pytest.raises(UserError) as caught:
        qaframe_host.create("head", "span", ModelSpec(source="nobody-here/no-such-model"), pretrained=True)
    message = str(caught.value)
    assert "nobody-here/no-such-model" in message and "\n" not in message


def test_hub_weights_that_cannot_be_fetched_offline_say_what_was_tried(qaframe_host, tiny, offline, monkeypatch):
    from transformers import AutoConfig

    import qaframe_plugins.heads

    config = AutoConfig.from_pretrained(tiny.source)
    monkeypatch.setattr(qaframe_plugins.heads, "load_config", lambda spec: config)  # config cached, weights not
    with pytest.raises(UserError) as caught:
        qaframe_host.create("head", "span", ModelSpec(source="nobody-here/no-such-model"), pretrained=True)
    message = str(caught.value)
    assert message.startswith("model 'nobody-here/no-such-model' could not be loaded: tried the Hugging Face Hub id")
    assert "HF_HUB_OFFLINE" in message and "\n" not in message


def test_missing_folder_is_a_one_line_user_error(qaframe_host, offline, tmp_path):
    missing = tmp_path / "no-such-folder"
    with pytest.raises(UserError) as caught:
        qaframe_host.create("head", "span", ModelSpec(source=str(missing)), pretrained=True)
    assert str(missing) in str(caught.value) and "\n" not in str(caught.value)


def test_folder_without_weights_says_what_was_tried(qaframe_host, tiny, offline, tmp_path):
    from transformers import AutoConfig

    AutoConfig.from_pretrained(tiny.source).save_pretrained(tmp_path)  # a config but no weights
    with pytest.raises(UserError) as caught:
        qaframe_host.create("head", "span", ModelSpec(source=str(tmp_path)), pretrained=True)
    message = str(caught.value)
    assert message.startswith(f"model '{tmp_path}' could not be loaded: tried the local folder {tmp_path}")
    assert "model.safetensors" in message and "\n" not in message


@pytest.mark.parametrize("keep", [0, 5, 5000])  # empty, inside the header length, inside the header
def test_truncated_safetensors_weights_are_a_one_line_user_error_naming_the_file(qaframe_host, tiny, offline, tmp_path, keep):
    qaframe_host.create("head", "span", tiny, pretrained=False).save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:keep])
    with pytest.raises(UserError) as caught:
        qaframe_host.create("head", "span", ModelSpec(source=str(tmp_path)), pretrained=True)
    message = str(caught.value)
    assert message.startswith(f"model '{tmp_path}' could not be loaded: tried the local folder {tmp_path}")
    assert f"({weights}) are truncated or corrupt" in message and "\n" not in message


@pytest.fixture
def load_log():
    """The messages transformers' weight loading lets out to its handlers (qaframe holds them back on failure)."""
    import logging

    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("transformers.modeling_utils")
    logger.addHandler(handler)
    yield messages
    logger.removeHandler(handler)


def load_with_changed_config(host, tiny: ModelSpec, folder, change: dict) -> UserError:
    """The UserError of loading a saved span model whose config.json then had `change` made to it."""
    import json

    host.create("head", "span", tiny, pretrained=False).save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["BertForQuestionAnswering"]
    (folder / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(UserError) as caught:
        host.create("head", "span", ModelSpec(source=str(folder)), pretrained=True)
    return caught.value


@pytest.mark.parametrize("change", [{"hidden_size": 256, "num_attention_heads": 4}, {"type_vocab_size": 3}])
def test_a_config_of_another_model_is_a_one_line_user_error_and_its_report_waits_for_debug(qaframe_host, tiny, tmp_path, load_log, change):
    error = load_with_changed_config(qaframe_host, tiny, tmp_path, change)
    message = str(error)
    assert message.startswith(f"model '{tmp_path}' could not be loaded: tried the local folder {tmp_path}")
    assert "config.json and its weights come from different models" in message and "\n" not in message
    assert not any("LOAD REPORT" in m for m in load_log)
    assert "LOAD REPORT" in str(error.__cause__)  # what --debug's traceback shows


def test_a_pretrained_encoder_without_the_span_head_loads_and_says_so_in_one_line(qaframe_host, tiny, tmp_path, load_log, caplog):
    from transformers import AutoConfig, BertForMaskedLM

    torch.manual_seed(0)
    encoder = BertForMaskedLM(AutoConfig.from_pretrained(tiny.source))
    encoder.save_pretrained(tmp_path)  # as `--model kcbert` gets it: no qa_outputs, a masked-LM head
    model = qaframe_host.create("head", "span", ModelSpec(source=str(tmp_path)), pretrained=True)
    assert torch.equal(model.bert.embeddings.word_embeddings.weight, encoder.bert.embeddings.word_embeddings.weight)
    assert not any("LOAD REPORT" in m for m in load_log)  # transformers' table of what any such load gets
    [line] = [r.getMessage() for r in caplog.records if r.name == "qaframe.heads"]
    assert line == (f"model '{tmp_path}': the span head (qa_outputs) starts from random values, as on any pretrained encoder; "
                    "5 weights of its pretraining heads unused (cls.predictions.bias, cls.predictions.transform.LayerNorm.bias, ...)")


def test_other_weights_missing_from_an_encoder_keep_transformers_report(qaframe_host, tiny, tmp_path, load_log):
    import json

    from transformers import AutoConfig, BertModel

    BertModel(AutoConfig.from_pretrained(tiny.source), add_pooling_layer=False).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "num_hidden_layers": config["num_hidden_layers"] + 1}))
    qaframe_host.create("head", "span", ModelSpec(source=str(tmp_path)), pretrained=True)  # an encoder's config: no error
    [report] = [m for m in load_log if "LOAD REPORT" in m]
    assert "bert.encoder.layer.2." in report and "qa_outputs.weight" in report


def test_a_question_answering_model_whose_weights_lack_layers_of_its_config_is_a_one_line_user_error(qaframe_host, tiny, tmp_path,
                                                                                                     load_log):
    message = str(load_with_changed_config(qaframe_host, tiny, tmp_path, {"num_hidden_layers": 3}))  # the weights have 2
    assert message.startswith(f"model '{tmp_path}': its weights lack 16 parameters its config.json names (bert.encoder.layer.2.")
    assert "would start from random values" in message and "\n" not in message
    assert not any("LOAD REPORT" in m for m in load_log)


def test_truncated_pytorch_weights_are_a_one_line_user_error(qaframe_host, tiny, offline, tmp_path):
    from safetensors.torch import load_file

    qaframe_host.create("head", "span", tiny, pretrained=False).save_pretrained(tmp_path)
    torch.save(load_file(tmp_path / "model.safetensors"), tmp_path / "pytorch_model.bin")
    (tmp_path / "model.safetensors").unlink()
    weights = tmp_path / "pytorch_model.bin"
    weights.write_bytes(weights.read_bytes()[:2000])
    with pytest.raises(UserError) as caught:
        qaframe_host.create("head", "span", ModelSpec(source=str(tmp_path)), pretrained=True)
    message = str(caught.value)
    assert message.startswith(f"model '{tmp_path}' could not be loaded") and "the weights are damaged" in message and "\n" not in message


@pytest.mark.parametrize("index", [{"weight_map": 5}, {}, [1]])
def test_a_malformed_index_of_weight_shards_is_a_one_line_user_error(qaframe_host, tiny, offline, tmp_path, index):
    import json

    qaframe_host.create("head", "span", tiny, pretrained=False).save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").rename(tmp_path / "model-00001-of-00001.safetensors")
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(UserError) as caught:
        qaframe_host.create("head", "span", ModelSpec(source=str(tmp_path)), pretrained=True)
    message = str(caught.value)
    assert message.startswith(f"model '{tmp_path}' could not be loaded") and "model.safetensors.index.json" in message
    assert "\n" not in message


def test_remote_model_code_that_does_not_compile_is_a_one_line_user_error_naming_the_file(qaframe_host, tiny, offline, tmp_path):
    import json

    qaframe_host.create("head", "span", tiny, pretrained=False).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["auto_map"] = {"AutoModelForQuestionAnswering": "modeling_mine.MineForQA"}
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "modeling_mine.py").write_text("class MineForQA(:\n    pass\n")
    with pytest.raises(UserError) as caught:
        qaframe_host.create("head", "span", ModelSpec(source=str(tmp_path), trust_remote_code=True), pretrained=True)
    message = str(caught.value)
    assert message.startswith(f"model '{tmp_path}' could not be loaded") and "its code (modeling_mine.py) does not compile" in message
    assert "line 1" in message and "\n" not in message


def test_architecture_without_a_question_answering_class_is_a_user_error(qaframe_host, tmp_path):
    from transformers import CLIPVisionConfig

    CLIPVisionConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64).save_pretrained(tmp_path)
    with pytest.raises(UserError, match="no class for model type 'clip_vision_model'"):
        qaframe_host.create("head", "span", ModelSpec(source=str(tmp_path), random_init=True), pretrained=False)


# -- a second head through the public hook ----------------------------------------------
def span_loss(output, start_positions, end_positions) -> torch.Tensor:
    """Mean cross-entropy of the start and end positions."""
    cross_entropy = torch.nn.functional.cross_entropy
    return (cross_entropy(output.start_logits, start_positions) + cross_entropy(output.end_logits, end_positions)) / 2


def test_plugged_in_mlp_head_trains_and_round_trips(qaframe_host, register_plugin, tiny, tmp_path):
    register_plugin(mlp_head)
    assert "mlp-span" in qaframe_host.registry("head")
    torch.manual_seed(0)
    model = qaframe_host.create("head", "mlp-span", tiny, pretrained=False)
    optimizer = qaframe_host.create("optimizer", "adamw", model, OptimizerSettings(learning_rate=1e-3))
    inputs = batch(seed=5, size=4, length=16)
    starts, ends = torch.tensor([3, 5, 2, 4]), torch.tensor([4, 7, 2, 6])
    model.train()
    losses = []
    for _ in range(15):
        loss = span_loss(model(**inputs), starts, ends)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses

    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / mlp_head.HEAD_WEIGHTS).is_file()
    loaded = qaframe_host.create("head", "mlp-span", ModelSpec(source=str(tmp_path)), pretrained=True)
    for mine, theirs in zip(logits(model, inputs), logits(loaded, inputs)):
        assert torch.equal(mine, theirs)
