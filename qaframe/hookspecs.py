"""The pluggy markers and the hook specifications: one `register_<things>(register)` hook per kind.

Every hook receives a `register` callback with the signature

    register(name: str, factory: Callable, *, description: str | None = None, override: bool = False)

`name` is what users type (`--corpus korquad`); `factory` builds the component (its contract
for each kind is in `qaframe.types`; each hook's docstring states the call in backticks,
`factory(...) -> Product`, and every registered factory's signature is checked against it);
`description` defaults to the first line of the factory's docstring; `override=True` lets a
plugin replace a component of the same name from another plugin on purpose (without it, two
plugins claiming one name is an error naming both).
"""

import pluggy

PROJECT = "qaframe"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_corpora(register):
    """Register corpora: `factory(options: CorpusOptions) -> Corpus`."""


@hookspec
def register_featurizers(register):
    """Register featurizers: `factory(settings: FeaturizerSettings) -> Featurizer`; an origin-style `fn(examples, tokenizer, args) -> list[dict]` registers, but is refused when built (it makes no offsets)."""


@hookspec
def register_models(register):
    """Register model aliases: `factory() -> ModelSpec` (hub id or folder, position limit, casing)."""


@hookspec
def register_heads(register):
    """Register model heads: `factory(spec: ModelSpec, *, pretrained: bool) -> QAModel`."""


@hookspec
def register_optimizers(register):
    """Register optimizer factories: `factory(model: torch.nn.Module, settings: OptimizerSettings) -> torch.optim.Optimizer`."""


@hookspec
def register_schedulers(register):
    """Register scheduler factories: `factory(optimizer, settings: SchedulerSettings) -> LRScheduler`, stepped once per optimizer step."""


@hookspec
def register_metrics(register):
    """Register metrics: `factory() -> Metric` scoring `{id: text}` predictions against `{id: [gold texts]}`."""


@hookspec
def register_refiners(register):
    """Register answer-boundary refiners: `factory() -> Refiner`, applied to decoded spans before scoring."""
