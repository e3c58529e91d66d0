"""Optimizer and scheduler factories: AdamW's decay groups, and each schedule's rates against its closed form."""

from __future__ import annotations

import math
import types

import pytest
import torch

from qaframe import hookimpl
from qaframe.errors import UserError
from qaframe.testing import check_optimizer, check_scheduler
from qaframe.types import OptimizerSettings, SchedulerSettings

SCHEDULERS = ("linear-warmup", "cosine", "exponential", "constant")


class ScaleNorm(torch.nn.Module):
    """A norm that torch does not know, with a 2-D weight: found by its class name."""

    def __init__(self, size: int):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1, size))

    def forward(self, x):
        return self.scale * x / x.norm(dim=-1, keepdim=True)


class Toy(torch.nn.Module):
    """Embedding tied to the output layer, a LayerNorm, a custom norm, a frozen layer and a bias-free layer."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(10, 4)
        self.hidden = torch.nn.Linear(4, 4)
        self.plain = torch.nn.Linear(4, 4, bias=False)
        self.layer_norm = torch.nn.LayerNorm(4)
        self.scale_norm = ScaleNorm(4)
        self.frozen = torch.nn.Linear(4, 4)
        self.frozen.requires_grad_(False)
        self.out = torch.nn.Linear(4, 10)
        self.out.weight = self.embed.weight


def groups_by_decay(optimizer) -> dict[float, set[int]]:
    """{weight decay: ids of its parameters}, asserting no parameter appears twice."""
    seen: dict[float, set[int]] = {}
    flat = [id(p) for group in optimizer.param_groups for p in group["params"]]
    assert len(flat) == len(set(flat)), "a parameter is in two groups"
    for group in optimizer.param_groups:
        seen.setdefault(group["weight_decay"], set()).update(id(p) for p in group["params"])
    return seen


# -- adamw ---------------------------------------------------------------------------
def test_adamw_exempts_biases_and_norms_and_decays_the_rest(qaframe_host):
    model = Toy()
    optimizer = qaframe_host.create("optimizer", "adamw", model, OptimizerSettings(learning_rate=3e-4, weight_decay=0.1))
    groups = groups_by_decay(optimizer)
    decayed = {id(model.embed.weight), id(model.hidden.weight), id(model.plain.weight)}
    exempt = {id(p) for p in (model.hidden.bias, model.layer_norm.weight, model.layer_norm.bias, model.scale_norm.scale, model.out.bias)}
    assert groups == {0.1: decayed, 0.0: exempt}
    assert all(group["lr"] == 3e-4 for group in optimizer.param_groups)


def test_adamw_groups_on_a_bert_encoder(qaframe_host):
    model = qaframe_host.create("head", "span", qaframe_host.create("model", "tiny"), pretrained=False)
    groups = groups_by_decay(qaframe_host.create("optimizer", "adamw", model, OptimizerSettings(weight_decay=0.01)))
    names = {id(p): name for name, p in model.named_parameters()}
    assert set(names) == groups[0.01] | groups[0.0], "every parameter exactly once"
    no_decay = {names[i] for i in groups[0.0]}
    assert {name for name in names.values() if name.endswith("bias") or "LayerNorm" in name} == no_decay
    assert all(p.ndim == 2 for name, p in model.named_parameters() if id(p) in groups[0.01])


def test_adamw_is_fused_by_default_and_can_be_turned_off(qaframe_host):
    model = torch.nn.Linear(3, 3)
    default = qaframe_host.create("optimizer", "adamw", model, OptimizerSettings())
    assert default.defaults["fused"] is True  # torch's fused CPU kernel
    unfused = qaframe_host.create("optimizer", "adamw", model, OptimizerSettings(fused=False))
    assert not unfused.defaults["fused"]
    meta = qaframe_host.create("optimizer", "adamw", torch.nn.Linear(3, 3, device="meta"), OptimizerSettings())
    assert not meta.defaults["fused"]  # no fused kernel for this device type: torch's foreach path


def test_fused_and_unfused_adamw_take_the_same_steps(qaframe_host):
    torch.manual_seed(0)
    models = [torch.nn.Linear(8, 4), torch.nn.Linear(8, 4)]
    models[1].load_state_dict(models[0].state_dict())
    optimizers = [qaframe_host.create("optimizer", "adamw", m, OptimizerSettings(learning_rate=1e-2, fused=fused))
                  for m, fused in zip(models, (True, False))]
    for _ in range(5):
        x = torch.randn(16, 8)
        for model, optimizer in zip(models, optimizers):
            optimizer.zero_grad()
            model(x).square().mean().backward()
            optimizer.step()
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(a, b)
    if torch.cuda.is_available():
        assert qaframe_host.create("optimizer", "adamw", model.cuda(), OptimizerSettings()).defaults["fused"] is True


def test_adamw_passes_the_conformance_check(qaframe_host):
    check_optimizer(qaframe_host.registry("optimizer").get("adamw").factory, OptimizerSettings())


def test_adamw_without_trainable_parameters_is_a_user_error(qaframe_host):
    model = torch.nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(UserError, match="no trainable parameters"):
        qaframe_host.create("optimizer", "adamw", model, OptimizerSettings())


# -- schedulers --------------------------------------------------------------------------
def expected(name: str, step: int, total: int, warmup: int) -> float:
    """The closed-form rate factor of schedule `name` for the optimizer step `step` (0-based)."""
    if step < warmup:
        return (step + 1) / warmup
    decay = total - warmup
    t = step - warmup
    if name == "linear-warmup":
        return (total - step) / decay
    if name == "exponential":
        return 0.01 ** (t / decay)
    if name == "cosine":  # cycles of T0, 2*T0, 4*T0 with T0 = (decay - 1) / 7: the last step ends the third
        first = (decay - 1) / 7
        if not first:
            return 1.0
        start, length = 0.0, first
        while length < 4 * first and t >= start + length:
            start, length = start + length, 2 * length
        return (1 + math.cos(math.pi * (t - start) / length)) / 2
    return 1.0


def rates_used(name: str, host, settings: SchedulerSettings, base: float = 0.5) -> list[float]:
    """The learning rate an optimizer actually used at each of its total_steps steps."""
    model = torch.nn.Linear(2, 1)
    optimizer = host.create("optimizer", "adamw", model, OptimizerSettings(learning_rate=base, weight_decay=0.0))
    scheduler = host.create("scheduler", name, optimizer, settings)
    used = []
    optimizer.register_step_pre_hook(lambda opt, args, kwargs: used.append(opt.param_groups[0]["lr"]))
    for _ in range(settings.total_steps):
        model(torch.ones(1, 2)).sum().backward()
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
    return used


@pytest.mark.parametrize("name", SCHEDULERS)
@pytest.mark.parametrize("total, warmup", [(50, 0), (50, 1), (50, 10), (23, 5)])
def test_schedule_matches_its_closed_form(qaframe_host, name, total, warmup):
    used = rates_used(name, qaframe_host, SchedulerSettings(total_steps=total, warmup_steps=warmup))
    assert len(used) == total
    for step in sorted({0, 1, max(0, warmup - 1), warmup, total // 2, total - 2, total - 1}):
        assert used[step] == pytest.approx(0.5 * expected(name, step, total, warmup), rel=1e-6, abs=1e-12), (name, step)


def test_schedules_end_where_documented(qaframe_host):
    settings = SchedulerSettings(total_steps=70, warmup_steps=0)
    linear = rates_used("linear-warmup", qaframe_host, settings, base=1.0)
    cosine = rates_used("cosine", qaframe_host, settings, base=1.0)
    exponential = rates_used("exponential", qaframe_host, settings, base=1.0)
    assert linear[0] == 1.0 and linear[-1] == pytest.approx(1 / 70)
    assert [s for s in range(1, 70) if cosine[s] > cosine[s - 1]] == [10, 30]  # restarts after 10 and 20 more steps
    assert cosine[0] == 1.0 and cosine[-1] == 0.0
    assert exponential[-1] * 0.01 ** (1 / 70) == pytest.approx(0.01)  # the next step would be at 1%


@pytest.mark.parametrize("total", [9, 25, 40, 100, 1000])
def test_cosine_ends_at_zero_after_unchanged_warmup(qaframe_host, total):
    warmup = int(0.1 * total)  # the default --warmup-ratio
    used = rates_used("cosine", qaframe_host, SchedulerSettings(total_steps=total, warmup_steps=warmup), base=1.0)
    assert used[:warmup] == pytest.approx([(s + 1) / warmup for s in range(warmup)])
    assert used[warmup] == 1.0 and used[-1] < 0.01


@pytest.mark.parametrize("total, warmup, restarts", [(70, 0, [10, 30]), (100, 10, [23, 49]), (1000, 100, [229, 486]), (25, 2, [6, 12])])
def test_cosine_restarts_after_one_and_three_sevenths_of_the_decay(qaframe_host, total, warmup, restarts):
    used = rates_used("cosine", qaframe_host, SchedulerSettings(total_steps=total, warmup_steps=warmup), base=1.0)
    assert [s for s in range(warmup + 1, total) if used[s] > used[s - 1]] == restarts


@pytest.mark.parametrize("total, warmup", [(1, 0), (1, 1), (5, 5), (6, 5), (8, 5), (11, 5)])
def test_cosine_edge_cases(qaframe_host, total, warmup):
    used = rates_used("cosine", qaframe_host, SchedulerSettings(total_steps=total, warmup_steps=warmup), base=1.0)
    assert used[:warmup] == pytest.approx([(s + 1) / warmup for s in range(warmup)])
    assert all(0.0 <= rate <= 1.0 for rate in used)
    assert used[-1] == (1.0 if total - warmup <= 1 else 0.0)


@pytest.mark.parametrize("name", SCHEDULERS)
def test_scheduler_passes_the_conformance_check(qaframe_host, name):
    rates = check_scheduler(qaframe_host.registry("scheduler").get(name).factory, total_steps=20, warmup_steps=4)
    assert rates[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])


@pytest.mark.parametrize("name", ("linear-warmup", "cosine"))
def test_scheduler_resumes_from_its_state_dict(qaframe_host, name):
    settings = SchedulerSettings(total_steps=30, warmup_steps=6)

    def build():
        parameter = torch.nn.Parameter(torch.zeros(1))
        optimizer = torch.optim.SGD([parameter], lr=1.0)
        return optimizer, qaframe_host.create("scheduler", name, optimizer, settings)

    optimizer, scheduler = build()
    for _ in range(8):
        optimizer.step()
        scheduler.step()
    resumed_optimizer, resumed = build()
    resumed_optimizer.load_state_dict(optimizer.state_dict())
    resumed.load_state_dict(scheduler.state_dict())
    for _ in range(10):
        assert resumed_optimizer.param_groups[0]["lr"] == pytest.approx(optimizer.param_groups[0]["lr"])
        for o, s in ((optimizer, scheduler), (resumed_optimizer, resumed)):
            o.step()
            s.step()


@pytest.mark.parametrize("total, warmup", [(0, 0), (10, 11), (10, -1)])
def test_impossible_step_counts_are_user_errors(qaframe_host, total, warmup):
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    for name in SCHEDULERS:
        with pytest.raises(UserError, match=f"scheduler '{name}'.*warmup_steps \\({warmup}\\)"):
            qaframe_host.create("scheduler", name, optimizer, SchedulerSettings(total_steps=total, warmup_steps=warmup))


# -- plugging in more -----------------------------------------------------------------------
def test_optimizers_and_schedulers_plug_in_through_the_hooks(qaframe_host, register_plugin):
    def sgd(model, settings):
        """Plain SGD (test plugin)."""
        return torch.optim.SGD(model.parameters(), lr=settings.learning_rate)

    def halving(optimizer, settings):
        """Halve the rate every quarter of the run (test plugin)."""
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, settings.total_steps // 4), gamma=0.5)

    @hookimpl
    def register_optimizers(register):
        register("sgd", sgd)

    @hookimpl
    def register_schedulers(register):
        register("halving", halving)

    register_plugin(types.SimpleNamespace(register_optimizers=register_optimizers, register_schedulers=register_schedulers), name="extra")
    assert {"adamw", "sgd"} <= set(qaframe_host.registry("optimizer").names())
    check_optimizer(qaframe_host.registry("optimizer").get("sgd").factory, OptimizerSettings())
    assert check_scheduler(qaframe_host.registry("scheduler").get("halving").factory, total_steps=8)[-1] == 0.125
