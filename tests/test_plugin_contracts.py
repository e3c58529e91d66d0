"""Plugins are held to their contracts: factory signatures when registered; product types, Protocol members and no
self-recursion when created; and the qaframe.testing conformance checks (featurizer offsets, heads, corpora, schedulers)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from qaframe import hookimpl
from qaframe import plugins as plugin_module
from qaframe.cli import cli, main
from qaframe.errors import UserError
from qaframe.models import load_tokenizer
from qaframe.plugins import KINDS, PRODUCTS, PROTOCOLS, factory_calls
from qaframe.testing import check_corpus, check_featurizer, check_head, check_scheduler
from qaframe.types import Answer, Corpus, CorpusOptions, FeaturizerSettings, OptimizerSettings, QAExample, SchedulerSettings
from qaframe_plugins.featurizers import SlidingWindowFeaturizer
from qaframe_plugins.heads import span
from qaframe_plugins.optimizers import constant

from plugins_for_tests import mlp_head

SETTINGS = FeaturizerSettings(max_seq_length=48, doc_stride=12, max_query_length=16)


class NoMetricCorpus:
    """A corpus that forgot its metric."""

    refiner = "none"

    def __init__(self, options):
        self.options = options

    def splits(self):
        return ("dev",)

    def load(self, split):
        raise AssertionError("never loaded")


class NoOptionsCorpus(NoMetricCorpus):
    """A corpus whose __init__ takes no options."""

    metric = "squad"

    def __init__(self):
        pass


class BuggyCorpus(NoMetricCorpus):
    """A corpus whose own code raises TypeError: a bug, not a signature mismatch."""

    def __init__(self, options):
        len(None)


class NoVersionFeaturizer:
    """A featurizer without `version`."""

    name = "no-version"

    def __init__(self, settings):
        self.settings = settings

    def featurize(self, examples, tokenizer):
        raise AssertionError("never featurized")


class HalfTrainableRefiner:
    """A refiner that learns (fit) but cannot save what it learned (no to_json, load_json)."""

    name = "half"

    def fit(self, examples, tokenizer):
        pass

    def refine(self, context, start, end, last_token_start):
        return start, end


def selfish_featurizer(settings):
    """Replaces sliding-window and wraps... itself."""
    return plugin_module.get_host().create("featurizer", "sliding-window", settings)


def wrapping_featurizer(settings):
    """Wraps sliding-window under its own name, as a wrapper should."""
    return plugin_module.get_host().create("featurizer", "sliding-window", settings)


class Mistakes:
    """A third-party plugin with one contract mistake per component."""

    @hookimpl
    def register_corpora(self, register):
        register("no-metric", NoMetricCorpus)
        register("no-options", NoOptionsCorpus)
        register("buggy", BuggyCorpus)

    @hookimpl
    def register_featurizers(self, register):
        register("no-version", NoVersionFeaturizer)

    @hookimpl
    def register_refiners(self, register):
        register("half", HalfTrainableRefiner)


@pytest.fixture
def mistakes(qaframe_host, register_plugin):
    register_plugin(Mistakes(), name="mistakes")
    return qaframe_host


def test_signatures_come_from_the_hookspecs():
    assert factory_calls("corpus") == ("factory(options: CorpusOptions) -> Corpus",)
    assert factory_calls("head") == ("factory(spec: ModelSpec, *, pretrained: bool) -> QAModel",)
    assert factory_calls("featurizer") == ("factory(settings: FeaturizerSettings) -> Featurizer", "fn(examples, tokenizer, args) -> list[dict]")
    assert all(factory_calls(kind) for kind in KINDS)
    assert set(PROTOCOLS) == {"corpus", "featurizer", "head", "metric", "refiner"}
    assert set(PRODUCTS) == {"head", "optimizer", "scheduler"}


def test_no_built_in_is_broken(qaframe_host):
    assert [row for row in qaframe_host.listing() if row["status"] == "broken"] == []


def test_missing_protocol_member_names_the_plugin(mistakes):
    with pytest.raises(UserError) as info:
        mistakes.create("corpus", "no-metric", CorpusOptions())
    assert str(info.value) == (
        "corpus 'no-metric' of plugin 'mistakes' (in-process -) built a NoMetricCorpus without metric, "
        "which the Corpus contract (qaframe.types) requires"
    )
    with pytest.raises(UserError, match=r"featurizer 'no-version' .* built a NoVersionFeaturizer without version, which the Featurizer"):
        mistakes.create("featurizer", "no-version", SETTINGS)


def test_part_of_a_trainable_refiner_is_refused_wherever_it_is_created(mistakes):
    message = (
        "refiner 'half' of plugin 'mistakes' (in-process -) built a HalfTrainableRefiner with fit but without "
        "load_json, to_json: a TrainableRefiner (qaframe.types) needs all of them, or none for a plain Refiner"
    )
    with pytest.raises(UserError) as info:
        mistakes.create("refiner", "half")
    assert str(info.value) == message


def test_wrong_factory_signature_names_the_expected_call(mistakes):
    message = (
        "corpus 'no-options' of plugin 'mistakes' (in-process -): its factory NoOptionsCorpus() cannot be called as "
        "`factory(options: CorpusOptions) -> Corpus`"
    )
    with pytest.raises(UserError) as info:
        mistakes.create("corpus", "no-options", CorpusOptions())
    assert str(info.value) == message
    [row] = [r for r in mistakes.listing() if r["name"] == "no-options"]
    assert row["status"] == "broken" and row["description"] == message


def test_a_type_error_inside_a_fitting_factory_is_not_blamed_on_its_signature(mistakes):
    with pytest.raises(TypeError, match="NoneType"):
        mistakes.create("corpus", "buggy", CorpusOptions())


def test_an_override_that_builds_the_name_it_replaces_is_an_error_not_a_recursion(qaframe_host, register_plugin):
    override = SimpleNamespace(register_featurizers=hookimpl(lambda register: register("sliding-window", selfish_featurizer, override=True)))
    register_plugin(override, name="selfish")
    for _ in range(2):  # the guard is released after the error
        with pytest.raises(UserError) as info:
            qaframe_host.create("featurizer", "sliding-window", SETTINGS)
        assert str(info.value) == (
            "featurizer 'sliding-window' of plugin 'selfish' (in-process -) builds featurizer 'sliding-window' again "
            "while it is being built, which would recurse forever (a wrapper registered with override=True under the name "
            "it wraps?); register the wrapper under its own name"
        )


def test_a_wrapper_under_its_own_name_builds_the_built_in(qaframe_host, register_plugin):
    wrapper = SimpleNamespace(register_featurizers=hookimpl(lambda register: register("wrapped-window", wrapping_featurizer)))
    register_plugin(wrapper, name="wrapper")
    assert isinstance(qaframe_host.create("featurizer", "wrapped-window", SETTINGS), SlidingWindowFeaturizer)


def test_contract_errors_end_the_cli_in_one_line(mistakes, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["inspect", "--corpus", "no-metric"])
    err = capsys.readouterr().err.strip()
    assert exited.value.code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("Error: corpus 'no-metric' of plugin 'mistakes'")


@pytest.mark.parametrize(
    "name, options, splits",
    [
        ("korquad", {"data_dir": "."}, ("train", "dev")),
        ("squad-json", {"dev_file": "dev.json"}, ("dev",)),
        ("sample", {}, ("train", "dev")),
        ("synthetic", {}, ("train", "dev")),
    ],
)
def test_built_in_corpora_pass_the_creation_checks(qaframe_host, name, options, splits):
    corpus = qaframe_host.create("corpus", name, CorpusOptions(**options))
    assert isinstance(corpus, Corpus) and corpus.splits() == splits
    assert corpus.metric in qaframe_host.registry("metric")
    assert corpus.refiner == "none" or corpus.refiner in qaframe_host.registry("refiner")


@pytest.mark.parametrize("kind, built_ins", [
    ("featurizer", {"sliding-window"}), ("metric", {"korquad", "squad"}), ("refiner", {"korean-particles", "learned-suffix"}),
])
def test_every_built_in_of_a_checked_kind_passes(qaframe_host, kcbert_tokenizer, kind, built_ins):
    names = qaframe_host.registry(kind).names()
    assert built_ins <= set(names)
    for name in names:
        product = qaframe_host.create(kind, name, *([SETTINGS] if kind == "featurizer" else []))
        assert isinstance(product, PROTOCOLS[kind]) and product.name == name
        if kind == "featurizer":
            check_featurizer(product, kcbert_tokenizer, EXAMPLES)
        elif kind == "metric":
            scores = product.compute({"a": "1824년", "b": "유럽"}, {"a": ["1824년"], "b": ["유럽 연합"]})
            assert scores["exact_match"] == 50.0 and 50.0 < scores["f1"] < 100.0
        else:
            assert product.refine("교향곡을 완성", 0, 4, 2) == (0, 3)  # 을 cut off the last token 곡을


# -- heads, optimizers and schedulers ----------------------------------------------
class NoSave(torch.nn.Module):
    """A head model with the right forward but without save_pretrained."""

    def __init__(self):
        super().__init__()
        self.logits = torch.nn.Embedding(16, 2)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        start_logits, end_logits = self.logits(input_ids).unbind(-1)
        return SimpleNamespace(start_logits=start_logits, end_logits=end_logits)


class TupleHead(NoSave):
    """A head model that saves, but whose forward returns a (start, end) tuple, not an object with start_logits."""

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        output = super().forward(input_ids)
        return output.start_logits, output.end_logits

    def save_pretrained(self, folder):
        torch.save(self.state_dict(), f"{folder}/weights.pt")


def no_save_head(spec, *, pretrained):
    """Builds a model that cannot be saved."""
    return NoSave()


def tuple_head(spec, *, pretrained):
    """Builds a model whose forward gives a tuple."""
    return TupleHead()


def not_a_module_head(spec, *, pretrained):
    """Builds something that is no torch module."""
    return SimpleNamespace(forward=None, save_pretrained=None)


def positional_only_optimizer(model):
    """Forgets the settings argument."""
    return torch.optim.SGD(model.parameters(), lr=0.1)


def no_optimizer(model, settings):
    """Returns nothing."""


def scheduler_without_settings(optimizer):
    """Forgets the settings argument."""
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=10)


def list_scheduler(optimizer, settings):
    """Returns a list of rates instead of a scheduler."""
    return [0.1] * settings.total_steps


class Training:
    """A third-party plugin with broken heads, optimizers and schedulers."""

    @hookimpl
    def register_heads(self, register):
        register("no-save", no_save_head)
        register("tuple", tuple_head)
        register("not-a-module", not_a_module_head)

    @hookimpl
    def register_optimizers(self, register):
        register("positional-only", positional_only_optimizer)
        register("none", no_optimizer)

    @hookimpl
    def register_schedulers(self, register):
        register("no-settings", scheduler_without_settings)
        register("list", list_scheduler)


@pytest.fixture
def training(qaframe_host, register_plugin):
    register_plugin(Training(), name="training")
    return qaframe_host


@pytest.mark.parametrize(
    "name, message",
    [
        ("no-save", "head 'no-save' of plugin 'training' (in-process -) built a NoSave without save_pretrained, "
                    "which the QAModel contract (qaframe.types) requires"),
        ("not-a-module", "head 'not-a-module' of plugin 'training' (in-process -) built a SimpleNamespace, "
                         "not the torch.nn.Module its contract (docs/hooks.md) requires"),
    ],
)
def test_a_head_is_checked_when_it_is_created(training, name, message):
    with pytest.raises(UserError) as info:
        training.create("head", name, training.create("model", "tiny"), pretrained=False)
    assert str(info.value) == message


@pytest.mark.parametrize(
    "kind, name, factory",
    [
        ("optimizer", "positional-only", "positional_only_optimizer(model)"),
        ("scheduler", "no-settings", "scheduler_without_settings(optimizer)"),
    ],
)
def test_a_factory_of_the_wrong_signature_is_broken_as_soon_as_it_is_registered(training, kind, name, factory):
    message = (
        f"{kind} '{name}' of plugin 'training' (in-process -): its factory {factory} cannot be called as `{factory_calls(kind)[0]}`"
    )
    [row] = [r for r in training.listing() if r["name"] == name]
    assert (row["status"], row["description"]) == ("broken", message)
    with pytest.raises(UserError) as info:
        training.registry(kind).get(name)
    assert str(info.value) == message
    table = CliRunner().invoke(cli, ["plugins"]).output
    assert any(line.split()[:2] == [name, "training"] and "broken" in line and line.endswith(message) for line in table.splitlines())


def test_qaframe_run_refuses_a_wrong_optimizer_signature_before_reading_data(training, tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["run", "--optimizer", "positional-only", "--output-dir", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err.strip()
    assert exited.value.code == 2 and err == (
        "Error: optimizer 'positional-only' of plugin 'training' (in-process -): its factory positional_only_optimizer(model) "
        "cannot be called as `factory(model: torch.nn.Module, settings: OptimizerSettings) -> torch.optim.Optimizer`"
    )
    assert not (tmp_path / "cache").exists()


def test_optimizers_and_schedulers_of_the_wrong_type_are_refused_when_created(training):
    model = torch.nn.Linear(2, 2)
    with pytest.raises(UserError, match=r"^optimizer 'none' of plugin 'training' \(in-process -\) built a NoneType, not the "
                                        r"torch.optim.Optimizer its contract \(docs/hooks.md\) requires$"):
        training.create("optimizer", "none", model, OptimizerSettings())
    optimizer = training.create("optimizer", "adamw", model, OptimizerSettings())
    with pytest.raises(UserError, match=r"^scheduler 'list' of plugin 'training' \(in-process -\) built a list, not the "
                                        r"torch.optim.lr_scheduler.LRScheduler its contract"):
        training.create("scheduler", "list", optimizer, SchedulerSettings(total_steps=4))
    assert isinstance(training.create("scheduler", "constant", optimizer, SchedulerSettings(total_steps=4)), torch.optim.lr_scheduler.LambdaLR)


@pytest.mark.parametrize("head", [span, mlp_head.mlp_span], ids=["span", "mlp-span"])
def test_check_head_passes_heads_that_keep_the_contract(qaframe_host, head, tmp_path):
    check_head(head, qaframe_host.create("model", "tiny"), tmp_path)
    assert any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "head, message",
    [
        (tuple_head, r"forward must return an object with start_logits and end_logits .*, got a tuple"),
        (no_save_head, r"NoSave needs save_pretrained\(folder\)"),
        (not_a_module_head, r"head factory must return a torch.nn.Module, got a SimpleNamespace"),
    ],
)
def test_check_head_catches_what_a_run_would_fail_on(qaframe_host, head, message, tmp_path):
    with pytest.raises(AssertionError, match=message):
        check_head(head, qaframe_host.create("model", "tiny"), tmp_path)


def step_lr(optimizer, settings):
    """Halves the rate every 50 steps: constant over a short check."""
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=50, gamma=0.5)


def foreign_optimizer_schedule(optimizer, settings):
    """Schedules an optimizer of its own, not the one it is given."""
    return torch.optim.lr_scheduler.LambdaLR(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), lambda step: 0.5**step)


def zero_schedule(optimizer, settings):
    """A rate of 0 throughout."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.0)


@pytest.mark.parametrize("factory, warmup", [(constant, 0), (step_lr, 4)], ids=["constant-without-warmup", "step-lr"])
def test_check_scheduler_passes_constant_schedules(factory, warmup):
    assert set(check_scheduler(factory, warmup_steps=warmup)) == {1.0}


@pytest.mark.parametrize(
    "factory, message",
    [(foreign_optimizer_schedule, "must drive the optimizer the factory is given"), (zero_schedule, "0 at every step")],
)
def test_check_scheduler_catches_a_schedule_that_trains_nothing(factory, message):
    with pytest.raises(AssertionError, match=message):
        check_scheduler(factory)


# -- check_corpus: the names a corpus gives resolve --------------------------------
class MisnamedCorpus(NoMetricCorpus):
    """A corpus whose metric or refiner name has a typo."""

    def __init__(self, metric, refiner):
        self.metric, self.refiner = metric, refiner


@pytest.mark.parametrize(
    "metric, refiner, message",
    [
        ("korqad", "none", r"^corpus.metric: unknown metric 'korqad'; did you mean 'korquad'\? available: korquad, squad;"),
        ("korquad", "korean-particle", r"^corpus.refiner: unknown refiner 'korean-particle'; did you mean 'korean-particles'\?"),
    ],
)
def test_check_corpus_resolves_the_metric_and_refiner(qaframe_host, metric, refiner, message):
    with pytest.raises(AssertionError, match=message):
        check_corpus(MisnamedCorpus(metric, refiner))


# -- check_featurizer: only context tokens carry offsets ----------------------------
CONTEXT = (
    "베토벤은 1824년에 아홉 번째 교향곡을 완성하였고, 이 곡은 마지막 악장에 합창을 넣은 것으로 유명하다. "
    "초연은 빈의 극장에서 열렸으며 오늘날 이 곡의 합창 부분은 유럽 연합의 공식 노래로 쓰인다."
)
EXAMPLES = [
    QAExample(id, "", "무엇인가?", CONTEXT, (Answer(answer, CONTEXT.index(answer)),)) for id, answer in (("a", "1824년"), ("b", "유럽 연합"))
]


class Tampered(SlidingWindowFeaturizer):
    """sliding-window with one deliberate contract break applied to its output."""

    def __init__(self, settings, tamper):
        super().__init__(settings)
        self.tamper = tamper

    def featurize(self, examples, tokenizer):
        features = super().featurize(examples, tokenizer)
        self.tamper(features, tokenizer)
        return features


def question_offsets(features, tokenizer):
    question = (features.token_type_ids == 0) & ~np.isin(features.input_ids, tokenizer.all_special_ids)
    features.offsets[question] = [0, 1]


def cls_offsets(features, tokenizer):
    features.offsets[features.input_ids == tokenizer.cls_token_id] = [0, 0]


def label_off_cls(features, tokenizer):
    outside = features.start_positions == 0
    features.start_positions[outside] = features.end_positions[outside] = 1


def no_offsets(features, tokenizer):
    features.offsets = None


def short_token_types(features, tokenizer):
    features.token_type_ids = features.token_type_ids[:-3]


def test_sliding_window_passes_with_windows_labelled_at_cls(kcbert_tokenizer):
    features = check_featurizer(SlidingWindowFeaturizer(SETTINGS), kcbert_tokenizer, EXAMPLES)
    assert (features.start_positions == 0).any()  # some windows lack the answer


@pytest.mark.parametrize(
    "tamper, message",
    [
        (question_offsets, r"window 0 of 'a': tokens 1-\d+ and \d+-\d+ both have offsets, but only the context's tokens may; question tokens need \(-1, -1\)"),
        (cls_offsets, r"window 0 of 'a': special token 0 has offsets \[0, 0\]; every token outside the context needs \(-1, -1\)"),
        (label_off_cls, r"labels tokens 1-1 outside the context; a window without the answer is labelled at the CLS index"),
        (no_offsets, r"featurize\(\) must record offsets"),
        (short_token_types, r"token_type_ids has (\d+) entries for (?!\1)\d+ input_ids"),
    ],
)
def test_check_featurizer_catches_offsets_and_labels_outside_the_context(kcbert_tokenizer, tamper, message):
    with pytest.raises(AssertionError, match=message):
        check_featurizer(Tampered(SETTINGS, tamper), kcbert_tokenizer, EXAMPLES)


def test_the_documented_tokenizer_for_plugin_tests_is_the_tiny_models(qaframe_host):
    """docs/writing-plugins.md: a plugin's test gets a tokenizer offline from the packaged tiny model."""
    tokenizer = load_tokenizer(qaframe_host.create("model", "tiny"))
    check_featurizer(qaframe_host.create("featurizer", "sliding-window", SETTINGS), tokenizer, EXAMPLES)
