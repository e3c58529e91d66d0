"""Creating components holds plugins to their contracts: factory signatures, Protocol members, no self-recursion, featurizer offsets."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from qaframe import hookimpl
from qaframe import plugins as plugin_module
from qaframe.cli import main
from qaframe.errors import UserError
from qaframe.plugins import PROTOCOLS, factory_signature
from qaframe.testing import check_featurizer
from qaframe.types import Answer, CorpusOptions, FeaturizerSettings, QAExample
from qaframe_plugins.featurizers import SlidingWindowFeaturizer

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
    assert factory_signature("corpus") == "factory(options: CorpusOptions) -> Corpus"
    assert factory_signature("head") == "factory(spec: ModelSpec, *, pretrained: bool) -> QAModel"
    assert set(PROTOCOLS) == {"corpus", "featurizer", "metric", "refiner"}


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
    with pytest.raises(UserError) as info:
        mistakes.create("corpus", "no-options", CorpusOptions())
    message = str(info.value)
    assert message.startswith(
        "corpus 'no-options' of plugin 'mistakes' (in-process -): its factory cannot be called as "
        "`factory(options: CorpusOptions) -> Corpus`: "
    )
    assert "takes 1 positional argument but 2 were given" in message and "\n" not in message


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
    "kind, name, options",
    [
        ("corpus", "korquad", {"data_dir": "."}),
        ("corpus", "squad-json", {"dev_file": "dev.json"}),
        ("corpus", "sample", {}),
        ("corpus", "synthetic", {}),
    ],
)
def test_built_in_corpora_pass_the_creation_checks(qaframe_host, kind, name, options):
    qaframe_host.create(kind, name, CorpusOptions(**options))


@pytest.mark.parametrize("kind", ["featurizer", "metric", "refiner"])
def test_every_built_in_of_a_checked_kind_passes(qaframe_host, kind):
    for name in qaframe_host.registry(kind).names():
        qaframe_host.create(kind, name, *([SETTINGS] if kind == "featurizer" else []))


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


def test_sliding_window_passes_with_windows_labelled_at_cls(kcbert_tokenizer):
    features = check_featurizer(SlidingWindowFeaturizer(SETTINGS), kcbert_tokenizer, EXAMPLES)
    assert (features.start_positions == 0).any()  # some windows lack the answer


@pytest.mark.parametrize(
    "tamper, message",
    [
        (question_offsets, r"window 0 of 'a': tokens 1-\d+ and \d+-\d+ both have offsets, but only the context's tokens may; question tokens need \(-1, -1\)"),
        (cls_offsets, r"window 0 of 'a': special token 0 has offsets \[0, 0\]; every token outside the context needs \(-1, -1\)"),
        (label_off_cls, r"labels tokens 1-1 outside the context; a window without the answer is labelled at the CLS index"),
    ],
)
def test_check_featurizer_catches_offsets_and_labels_outside_the_context(kcbert_tokenizer, tamper, message):
    with pytest.raises(AssertionError, match=message):
        check_featurizer(Tampered(SETTINGS, tamper), kcbert_tokenizer, EXAMPLES)
