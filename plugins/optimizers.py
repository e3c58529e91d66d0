"""Built-in optimizer and learning-rate scheduler factories: `adamw`; `linear-warmup`, `cosine`, `exponential`, `constant`.

Every scheduler is stepped once per optimizer step (Lightning: `"interval": "step"`). Below, `s`
counts the optimizer steps already taken (the first step uses the rate for s = 0), `base` is the
optimizer's learning rate, `W` is `warmup_steps` and `T` is `total_steps`. Warmup, where a
schedule has it, is `base * (s + 1) / W` for s < W: linear from zero, reaching `base` on the last
warmup step, so no step is spent at rate zero.
"""

from __future__ import annotations

import math

import torch

from qaframe import hookimpl
from qaframe.errors import UserError
from qaframe.types import OptimizerSettings, SchedulerSettings

# The origin (ratsnlp) used CosineAnnealingWarmRestarts with T_mult=2: each cycle twice the last.
COSINE_CYCLES = 3
# `exponential` decays to this fraction of the base rate at total_steps.
EXPONENTIAL_FINAL_FRACTION = 0.01
_TORCH_NORMS = (torch.nn.LayerNorm, torch.nn.GroupNorm, torch.nn.RMSNorm, torch.nn.modules.batchnorm._NormBase)


# -- optimizer ----------------------------------------------------------------------
def _is_norm(module: torch.nn.Module) -> bool:
    return isinstance(module, _TORCH_NORMS) or "norm" in type(module).__name__.lower()


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Trainable parameters in a decayed group and a group without decay: biases, any 1-D tensor, and norm weights.

    Norm modules are found by type (torch's norms) or by a class name containing "Norm" (e.g. a model's own RMSNorm).
    """
    exempt = {id(p) for module in model.modules() if _is_norm(module) for p in module.parameters(recurse=False)}
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():  # shared parameters are listed once
        if not parameter.requires_grad:
            continue
        if id(parameter) in exempt or parameter.ndim <= 1 or name.endswith("bias"):
            no_decay.append(parameter)
        else:
            decay.append(parameter)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [group for group in groups if group["params"]]


def adamw(model: torch.nn.Module, settings: OptimizerSettings) -> torch.optim.AdamW:
    """AdamW without weight decay on biases and norm weights; fused when every parameter is on one CUDA or CPU device type.

    The fused kernel updates all parameters in one pass (torch >= 2.4 has it for CUDA and CPU);
    the fallback, for parameters spread over device types or on others (mps), is torch's
    foreach path.
    """
    groups = parameter_groups(model, settings.weight_decay)
    if not groups:
        raise UserError("optimizer 'adamw': the model has no trainable parameters; check that the head's layers are not all frozen")
    fused = settings.fused
    if fused is None:
        device_types = {p.device.type for group in groups for p in group["params"]}
        fused = len(device_types) == 1 and device_types <= {"cuda", "cpu"}
    return torch.optim.AdamW(groups, lr=settings.learning_rate, fused=fused)


# -- schedulers ---------------------------------------------------------------------
def _check(name: str, settings: SchedulerSettings) -> None:
    if settings.total_steps < 1 or not 0 <= settings.warmup_steps <= settings.total_steps:
        raise UserError(
            f"scheduler '{name}': needs 0 <= warmup_steps ({settings.warmup_steps}) <= total_steps ({settings.total_steps}) "
            "and total_steps >= 1; lower --warmup-ratio or train for more steps"
        )


def _warmup(step: int, warmup_steps: int) -> float:
    return min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0


def linear_warmup(optimizer: torch.optim.Optimizer, settings: SchedulerSettings) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup to the base rate over warmup_steps, then linear decay to zero at total_steps."""
    _check("linear-warmup", settings)
    warmup, total = settings.warmup_steps, settings.total_steps

    def factor(step: int) -> float:
        if step < warmup:
            return _warmup(step, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def cosine(optimizer: torch.optim.Optimizer, settings: SchedulerSettings) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup, then cosine annealing with warm restarts (T_mult=2, as the origin had) in three cycles.

    After warmup, step s is at t = s - W in 0 .. D - 1, where D = T - W. With T_0 = (D - 1) / 7
    the cycles cover [0, T_0), [T_0, 3*T_0) and [3*T_0, D - 1]: lengths T_0, 2*T_0 and 4*T_0,
    which add up to D - 1 exactly. At offset x into a cycle of length L the rate is
    base * (1 + cos(pi * x / L)) / 2, so the first step after warmup uses the base rate, the
    restarts fall on the first steps with t >= T_0 and t >= 3*T_0 (a cycle shorter than a step
    may be passed over), and the last step (s = T - 1) uses zero. With D = 1 that step uses base.
    """
    _check("cosine", settings)
    warmup, span = settings.warmup_steps, settings.total_steps - settings.warmup_steps - 1
    parts = 2**COSINE_CYCLES - 1  # T_0 = span / parts
    longest = 2 ** (COSINE_CYCLES - 1)

    def factor(step: int) -> float:
        if step < warmup:
            return _warmup(step, warmup)
        if span <= 0:
            return 1.0
        scaled = parts * min(step - warmup, span)  # t / T_0 * span, kept in integers
        length = 1  # of the current cycle, in units of T_0
        while length < longest and scaled >= (2 * length - 1) * span:
            length *= 2
        return (1 + math.cos(math.pi * (scaled - (length - 1) * span) / (length * span))) / 2

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def exponential(optimizer: torch.optim.Optimizer, settings: SchedulerSettings) -> torch.optim.lr_scheduler.LambdaLR:
    """Exponential decay after warmup, with gamma chosen so the rate is 1% of the base rate at total_steps.

    gamma = 0.01 ** (1 / (T - W)); the rate at step s >= W is base * gamma ** (s - W).
    """
    _check("exponential", settings)
    warmup = settings.warmup_steps
    gamma = EXPONENTIAL_FINAL_FRACTION ** (1 / max(1, settings.total_steps - warmup))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _warmup(step, warmup) if step < warmup else gamma ** (step - warmup))


def constant(optimizer: torch.optim.Optimizer, settings: SchedulerSettings) -> torch.optim.lr_scheduler.LambdaLR:
    """The base rate throughout, after an optional linear warmup over warmup_steps."""
    _check("constant", settings)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _warmup(step, settings.warmup_steps))


@hookimpl(trylast=True)
def register_optimizers(register):
    """Register the built-in optimizer."""
    register("adamw", adamw)


@hookimpl(trylast=True)
def register_schedulers(register):
    """Register the built-in learning-rate schedules."""
    register("linear-warmup", linear_warmup)
    register("cosine", cosine)
    register("exponential", exponential)
    register("constant", constant)
