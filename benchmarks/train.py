"""Train benchmark: sequences per second, model-FLOPs utilization and peak memory, `qaframe run` against the Trainer peer.

Both sides train the same model (a KcBERT-shaped config with random weights: `--shape base` is
kcbert-base, 12 layers, hidden 768, for a GPU; `--shape tiny` is 2 layers, hidden 128, for a
CPU) on windows of the KorQuAD-sized generated input (benchmarks/common.py; seq 300, overlap
128), with the same batch size, precision, learning rate and seed, each in its own process
(so peak memory is its own), and the figures come from the same invocation.

qaframe: `qaframe.runner.run` with a RunConfig (corpus squad-json on the generated files, a
model alias registered through the plugin API, `--max-steps`), i.e. what `qaframe run` does:
unpadded cached features, per-batch padding with length-grouped batches, the `span` head
(SDPA attention), `adamw` (fused on CUDA), Lightning with the chosen precision, optionally
`--compile` (with `--compile-mode`). A callback passed to `run` times the steps.
`--compile-too` trains qaframe a second time with `--compile` in the same invocation and prints
a second line against the same peer figures (the peer is measured once).

Peer: the Hugging Face recipe: the run_qa features padded to max length
(benchmarks/featurize.py), AutoModelForQuestionAnswering.from_config, TrainingArguments and
Trainer with their defaults (default data collator, the default optimizer), bf16 when the
precision is bf16-mixed.

Timing: the first `--warmup` optimizer steps are excluded; the clock runs from the end of
step `warmup` to the end of step `warmup + steps` (CUDA synchronized at both ends), and
sequences per second = windows trained in between / seconds.

FLOPs: per window of n real tokens, 6 * N * n + 12 * L * H * n^2, where N counts the
parameters outside the embedding tables (the matrices every token goes through, forward and
backward: 2 + 4 FLOPs per parameter and token), L the layers, H the hidden size (the attention
scores and the weighted sum, 4 * n * H per token and layer forward, 3x with backward).
`mfu` counts real tokens only (useful work) against the machine's peak, measured here as the
best of a few large matmuls in the training precision (fp32 on CPU, bf16 on GPU);
`hfu` counts every position of the padded batches (what the hardware computed).
Peak memory: torch.cuda.max_memory_allocated on GPU, the process's peak RSS on CPU.
Loss: each side's mean training loss over its first and its last 10 steps (kept on the device,
read at the end). qaframe's runs (eager, compiled, CUDA graphs) see the same batches from the
same weights, so a fast path that computed something else (e.g. CUDA graphs replaying stale
gradients) shows as a loss that parts from eager qaframe's.

Where a step's time goes: `--profile-steps N` runs torch.profiler over N more steps after the
timed ones (so the timing is unaffected) and adds a `profile` to each side (see `StepProfile`):
on a GPU, how busy the GPU was during a step (well below 1: it waits for the host to launch
work), kernels launched and host synchronizations per step, and the kernels taking the most time.
The profile runs from the start of step `warmup + steps + 1` (qaframe: Lightning's
on_train_batch_start, the batch already on the device; peer: on_step_begin, the batch fetched)
to the end of step `warmup + steps + N` (on_train_batch_end / on_step_end). It starts at the
next step's start, not at the end of the last timed step: Lightning updates its logged metrics
(reading the loss, a host synchronization, every `--progress-every` steps) after
on_train_batch_end, which would land inside the profile.

Validation: Lightning validates (and qaframe writes two checkpoints, about 1.3 GB each for
kcbert-base) at every epoch's end, so an epoch must outlast the measured steps. The default
`--examples` is sized for that (`default_examples`); the qaframe side records the global step at
which every validation starts (`validation_steps` in its figures) and fails, naming --examples,
where one falls among the measured steps; the final one, after the last step, is expected.

If the peer side fails (accelerate missing, say), qaframe's figures are printed anyway, with a
`peer_error`, and the script exits non-zero.

`python benchmarks/train.py [--shape tiny|base] [--batch-size 32] [--steps 12] [--warmup 3]
[--precision 32|bf16-mixed] [--device cpu|cuda] [--compile [--compile-mode MODE] | --compile-too] [--num-workers N]
[--progress-every N] [--pad-to-multiple-of N] [--profile-steps N] [--examples N]`
"""

from __future__ import annotations

import argparse
import json
import math
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import best_of, emit, generate_examples, model_folder, register_random_model, write_squad

MAX_SEQ_LENGTH, OVERLAP, MAX_QUERY = 300, 128, 64
LEARNING_RATE, SEED = 5e-5, 42
# windows per generated example: 1.43 with tokenizers 0.23.3, about 1.36 with 0.23.2; sized on a lower figure
WINDOWS_PER_EXAMPLE = 1.3
MIN_EXAMPLES = 2000
VALIDATION_EXIT = 3  # a side's exit status where a validation fell among the measured steps (its last stderr line says so)


def default_examples(batch_size: int, optimizer_steps: int) -> int:
    """Generated examples enough for one epoch to outlast `optimizer_steps` batches (warm-up, timed and profiled), with
    a margin (20 % and 8 batches), at no fewer than MIN_EXAMPLES: Lightning validates at each epoch's end."""
    batches = math.ceil(optimizer_steps * 1.2) + 8
    return max(MIN_EXAMPLES, 100 * math.ceil(batches * batch_size / WINDOWS_PER_EXAMPLE / 100))


class ValidationInMeasuredSteps(RuntimeError):
    """A validation (Lightning's, at an epoch's end) started among the timed or profiled steps."""


def peak_memory_mb(device: str) -> float:
    """Peak GPU memory allocated (cuda) or this process's peak resident memory (cpu), in MiB."""
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def model_shape(model) -> dict:
    """N (parameters outside the embedding tables), layers and hidden size, for the FLOPs formula."""
    config = model.config
    matrices = sum(p.numel() for name, p in model.named_parameters() if "embeddings" not in name)
    return {"params": sum(p.numel() for p in model.parameters()), "params_matmul": matrices,
            "layers": config.num_hidden_layers, "hidden": config.hidden_size}


class Window:
    """Counts what the timed steps trained: batches, windows, real tokens and their squares, padded positions."""

    def __init__(self):
        self.batches = self.windows = self.tokens = self.tokens_squared = self.positions = self.positions_squared = 0

    def add(self, lengths, width: int) -> None:
        """One batch: the real length of each window, and the padded width."""
        self.batches += 1
        self.windows += len(lengths)
        self.tokens += int(sum(lengths))
        self.tokens_squared += int(sum(n * n for n in lengths))
        self.positions += len(lengths) * width
        self.positions_squared += len(lengths) * width * width

    def flops(self, shape: dict) -> tuple[float, float]:
        """(useful FLOPs over real tokens, hardware FLOPs over padded positions)."""
        per_token, attention = 6 * shape["params_matmul"], 12 * shape["layers"] * shape["hidden"]
        return (per_token * self.tokens + attention * self.tokens_squared,
                per_token * self.positions + attention * self.positions_squared)


def cpu_seconds() -> float:
    """CPU time this process has used so far, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class StepProfile:
    """torch.profiler over a few optimizer steps: where a step's time goes.

    On a GPU: `device_busy_ms_per_step`, the union of the intervals in which a kernel or a copy
    ran, per step; `device_busy_fraction`, that over the timed (unprofiled) wall time per step, so
    profiler overhead does not count; `kernels_per_step`; `host_syncs_per_step`, the times the host
    waited for the GPU (stream, event or device synchronizations; the one that ends the profile is
    not counted); `top_kernels`, the five taking the most GPU time, in ms per step. On a CPU:
    `host_ops_per_step` (aten operators, nested ones included) and `top_host_ops`, the five taking
    the most self CPU time, in ms per step.
    """

    SYNCS = ("cudaStreamSynchronize", "cudaEventSynchronize", "cudaDeviceSynchronize")

    def __init__(self, device: str, steps: int):
        self.device, self.steps, self.profiler = device, steps, None

    def start(self) -> None:
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if self.device == "cuda" else [])]
        self.profiler = profile(activities=activities)
        self.profiler.start()

    def stop(self) -> None:
        sync(self.device)  # the profiled steps' kernels have all run
        self.profiler.stop()

    def summary(self, timed_ms_per_step: float) -> dict:
        """The figures above, from the profiled steps."""
        from torch.autograd import DeviceType

        events = self.profiler.events()
        per_step = self.steps
        if self.device != "cuda":
            host = [e for e in events if e.device_type == DeviceType.CPU and e.name.startswith("aten::")]
            top = sorted(self.profiler.key_averages(), key=lambda a: a.self_cpu_time_total, reverse=True)[:5]
            return {"steps": per_step, "host_ops_per_step": round(len(host) / per_step, 1),
                    "top_host_ops": [[a.key, round(a.self_cpu_time_total / 1000 / per_step, 3)] for a in top]}
        # kernels and copies only: a record_function range (the optimizer step's) also shows on the GPU's timeline, as a
        # user annotation spanning the kernels it launched, and would count as busy time (the H200 run of 2026-11-28)
        device = sorted((e.time_range.start, e.time_range.end, e.name) for e in events
                        if e.device_type == DeviceType.CUDA and not getattr(e, "is_user_annotation", False))
        busy_us, reach = 0.0, float("-inf")
        for begin, end, _ in device:  # the union of the intervals
            busy_us += max(0.0, end - max(begin, reach))
            reach = max(reach, end)
        kernel_us: dict[str, float] = {}
        for begin, end, name in device:
            kernel_us[name] = kernel_us.get(name, 0.0) + end - begin
        kernels = sum(1 for _, _, name in device if not name.startswith(("Memcpy", "Memset")))
        syncs = max(0, sum(1 for e in events if e.device_type == DeviceType.CPU and e.name.startswith(self.SYNCS)) - 1)
        busy_ms = busy_us / 1000 / per_step
        return {
            "steps": per_step,
            "device_busy_ms_per_step": round(busy_ms, 2),
            "timed_wall_ms_per_step": round(timed_ms_per_step, 2),
            "device_busy_fraction": round(busy_ms / timed_ms_per_step, 3),
            "kernels_per_step": round(kernels / per_step, 1),
            "host_syncs_per_step": round(syncs / per_step, 2),
            "top_kernels": [[name[:100], round(us / 1000 / per_step, 3)]
                            for name, us in sorted(kernel_us.items(), key=lambda kv: kv[1], reverse=True)[:5]],
        }


def loss_trend(losses: list) -> dict:
    """Mean training loss of the first and of the last 10 steps (a check that a fast path computes what eager does)."""
    import torch

    values = torch.stack(losses).float().cpu()
    return {"loss_first_10": round(float(values[:10].mean()), 4), "loss_last_10": round(float(values[-10:].mean()), 4)}


def timed_result(window: Window, clock: dict, shape: dict, device: str, extra: dict, profile: StepProfile | None) -> dict:
    """The figures of one side, from its step clock's wall and CPU times, and its step profile if there is one."""
    seconds = clock["stop"] - clock["start"]
    useful, hardware = window.flops(shape)
    if profile is not None:
        extra = {**extra, "profile": profile.summary(1000 * seconds / window.batches)}
    return {
        "sequences_per_s": round(window.windows / seconds, 2),
        "tokens_per_s": round(window.tokens / seconds, 1),
        "padding_fraction": round(1 - window.tokens / window.positions, 3),
        "useful_tflops": round(useful / seconds / 1e12, 4),
        "hardware_tflops": round(hardware / seconds / 1e12, 4),
        "peak_memory_mb": round(peak_memory_mb(device), 1),
        "timed_seconds": round(seconds, 2),
        "timed_cpu_seconds": round(clock["cpu_stop"] - clock["cpu_start"], 2),
        "timed_windows": window.windows,
        **shape,
        **extra,
    }


def sync(device: str) -> None:
    """Wait for the GPU's queued work, so the clock measures it."""
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


# -- qaframe ------------------------------------------------------------------------
def run_qaframe(args, work: Path) -> dict:
    """Train through qaframe.runner.run with a step clock on its Trainer."""
    import torch
    from pytorch_lightning.callbacks import Callback

    from qaframe import runner
    from qaframe.config import RunConfig

    examples = generate_examples(args.examples)
    train_file = write_squad(examples, work / "train.json")
    dev_file = write_squad(examples[:64], work / "dev.json")
    register_random_model("bench-model", model_folder(args.shape, work / "model-config"))
    window, clock, seen, losses, validations = Window(), {}, {}, [], []
    profile = StepProfile(args.device, args.profile_steps) if args.profile_steps else None
    last = args.warmup + args.steps + args.profile_steps

    class StepClock(Callback):
        def on_validation_start(self, trainer, pl_module) -> None:
            # Lightning validates after a step's on_train_batch_end, with global_step counting the steps done: a
            # validation at global_step g runs between steps g and g + 1, inside the clock (end of step `warmup` to end
            # of step `warmup + steps`) or the profile for warmup <= g < last; the one at `last` comes after both
            if trainer.sanity_checking:
                return
            step = trainer.global_step
            validations.append(step)
            if args.warmup <= step < last:
                per_epoch = trainer.num_training_batches
                wanted = math.ceil(args.examples * (math.ceil(last * 1.2) + 8) / per_epoch / 100) * 100
                raise ValidationInMeasuredSteps(
                    f"validation started after step {step}, among the measured steps {args.warmup + 1}..{last} (timed "
                    f"{args.warmup + 1}..{args.warmup + args.steps}, then {args.profile_steps} profiled): an epoch of "
                    f"--examples {args.examples} is {per_epoch} batches; pass --examples {wanted} or more, or leave "
                    "--examples out (its default is sized for the steps asked)")

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            # the profile starts with the step after the timed ones, once Lightning's bookkeeping of the last timed step
            # (its logger update, which reads the loss, runs after on_train_batch_end) is done
            if profile is not None and profile.profiler is None and trainer.global_step == args.warmup + args.steps:
                profile.start()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            step = trainer.global_step
            losses.append(outputs["loss"].detach())  # stays on the device: no synchronization
            if profile is not None and profile.profiler is not None and step == last:
                profile.stop()
            if step == args.warmup:
                sync(args.device)
                clock["start"], clock["cpu_start"] = time.perf_counter(), cpu_seconds()
            elif args.warmup < step <= args.warmup + args.steps:
                # lengths stay on the device until the end: no synchronization per step
                seen.setdefault("lengths", []).append(batch["attention_mask"].sum(dim=1))
                seen.setdefault("widths", []).append(batch["input_ids"].shape[1])
                if step == args.warmup + args.steps:
                    sync(args.device)
                    clock["stop"], clock["cpu_stop"] = time.perf_counter(), cpu_seconds()
                    seen["shape"] = model_shape(pl_module.model)
                    optimizer = trainer.optimizers[0]
                    seen["fused_adamw"] = bool(optimizer.defaults.get("fused"))
                    seen["attention"] = getattr(pl_module.model.config, "_attn_implementation", None)
                    seen["precision"] = str(trainer.precision)
                    # read while training: qaframe sets its kernel choices only within the run (models.cuda_kernels)
                    seen["cudnn_attention"] = torch.backends.cuda.cudnn_sdp_enabled()
                    seen["float32_matmul_precision"] = torch.get_float32_matmul_precision()

    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    config = RunConfig(
        corpus="squad-json", train_file=train_file, dev_file=dev_file, model="bench-model", refiner="none",
        max_seq_length=MAX_SEQ_LENGTH, doc_stride=OVERLAP, max_query_length=MAX_QUERY,
        train_batch_size=args.batch_size, eval_batch_size=64, learning_rate=LEARNING_RATE, max_epochs=100,
        max_steps=last, precision=args.precision,
        accelerator="gpu" if args.device == "cuda" else "cpu", devices="1", num_workers=args.num_workers,
        compile=args.compile, compile_mode=args.compile_mode, seed=SEED, limit_val_batches=1,
        output_dir=work / "run", cache_dir=work / "cache",
        **({"progress_every": args.progress_every} if args.progress_every else {}),
        **({"pad_to_multiple_of": args.pad_to_multiple_of} if args.pad_to_multiple_of else {}),
    )
    runner.run(config, echo=lambda message: None, callbacks=[StepClock()])
    if "stop" not in clock:
        raise RuntimeError(f"training ended after {len(losses)} steps, before the timed steps were done")
    if profile is not None and profile.profiler is None:
        raise RuntimeError("the profile never started (training ended before step warmup + steps + 1)")
    for lengths, width in zip(seen["lengths"], seen["widths"]):
        window.add(lengths.tolist(), width)
    keys = ("fused_adamw", "attention", "precision", "cudnn_attention", "float32_matmul_precision")
    extra = {**{k: seen[k] for k in keys}, **loss_trend(losses)}
    extra["examples"], extra["validation_steps"] = args.examples, validations
    extra["compile"], extra["compile_mode"] = args.compile, config.compile_mode
    extra["pad_to_multiple_of"], extra["progress_every"] = config.pad_to_multiple_of, config.progress_every
    extra["timed_widths"] = len(set(seen["widths"]))  # distinct batch widths: shapes compiled or recorded
    if args.compile:  # graphs dynamo compiled (training and the final evaluation, plus recompiles), CUDA graph skips
        from torch._dynamo.utils import counters

        extra["compiled_graphs"] = int(counters["stats"]["unique_graphs"])
        extra["cudagraph_skips"] = int(counters["inductor"]["cudagraph_skips"])
    return timed_result(window, clock, seen["shape"], args.device, extra, profile)


# -- peer ---------------------------------------------------------------------------
def run_peer(args, work: Path) -> dict:
    """Train with transformers' Trainer on the recipe's max-length-padded features."""
    import torch
    from featurize import peer_train_features
    from transformers import (AutoConfig, AutoModelForQuestionAnswering, AutoTokenizer, Trainer, TrainerCallback,
                              TrainingArguments, default_data_collator)

    folder = model_folder(args.shape, work / "model-config")
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    features = peer_train_features(generate_examples(args.examples), tokenizer, MAX_SEQ_LENGTH, OVERLAP)
    dataset = [dict(zip(features, row)) for row in zip(*features.values())]
    torch.manual_seed(SEED)
    model = AutoModelForQuestionAnswering.from_config(AutoConfig.from_pretrained(str(folder)))
    batches: list[tuple[list[int], int]] = []
    losses = []

    class LossKeepingTrainer(Trainer):
        def compute_loss(self, *arguments, **keywords):
            computed = super().compute_loss(*arguments, **keywords)
            losses.append((computed[0] if isinstance(computed, tuple) else computed).detach())
            return computed

    def counting_collator(rows):
        batches.append(([sum(row["attention_mask"]) for row in rows], len(rows[0]["input_ids"])))
        return default_data_collator(rows)

    clock = {}
    profile = StepProfile(args.device, args.profile_steps) if args.profile_steps else None
    last = args.warmup + args.steps + args.profile_steps

    class StepClock(TrainerCallback):
        def on_step_begin(self, arguments, state, control, **kwargs):
            # as on qaframe's side: from the start of the step after the timed ones (its batch fetched) to the end of
            # the last profiled step
            if profile is not None and profile.profiler is None and state.global_step == args.warmup + args.steps:
                profile.start()

        def on_step_end(self, arguments, state, control, **kwargs):
            if profile is not None and profile.profiler is not None and state.global_step == last:
                profile.stop()
            if state.global_step == args.warmup:
                sync(args.device)
                clock["start"], clock["cpu_start"] = time.perf_counter(), cpu_seconds()
            elif state.global_step == args.warmup + args.steps:
                sync(args.device)
                clock["stop"], clock["cpu_stop"] = time.perf_counter(), cpu_seconds()
                clock["cudnn_attention"] = torch.backends.cuda.cudnn_sdp_enabled()

    training = TrainingArguments(
        output_dir=str(work / "peer"), per_device_train_batch_size=args.batch_size, max_steps=last,
        learning_rate=LEARNING_RATE, weight_decay=0.01, bf16=args.precision == "bf16-mixed", seed=SEED,
        save_strategy="no", eval_strategy="no", logging_strategy="no", report_to="none", disable_tqdm=True,
        use_cpu=args.device == "cpu", dataloader_num_workers=args.num_workers,
    )
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    trainer = LossKeepingTrainer(model=model, args=training, train_dataset=dataset, data_collator=counting_collator,
                                 callbacks=[StepClock()])
    trainer.train()
    if "stop" not in clock:
        raise RuntimeError(f"training ended after {len(losses)} steps, before the timed steps were done")
    window = Window()
    for lengths, width in batches[args.warmup : args.warmup + args.steps]:
        window.add(lengths, width)
    extra = {"optimizer": str(training.optim), "attention": getattr(model.config, "_attn_implementation", None),
             "precision": "bf16-mixed" if training.bf16 else "32", "cudnn_attention": clock["cudnn_attention"],
             "examples": args.examples, **loss_trend(losses)}
    return timed_result(window, clock, model_shape(model), args.device, extra, profile)


# -- the whole benchmark -------------------------------------------------------------
def matmul_peak_tflops(device: str, precision: str) -> float:
    """The best of a few large matmuls in the training precision, in TFLOP/s: what this machine can reach."""
    import torch

    size = 8192 if device == "cuda" else 2048
    dtype = torch.bfloat16 if precision == "bf16-mixed" else torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)

    def product():
        a @ b
        sync(device)

    product()
    seconds, _ = best_of(10 if device == "cuda" else 5, product)
    return 2 * size**3 / seconds / 1e12


def side(name: str, argv: list[str]) -> tuple[dict | None, str | None]:
    """Run one side in its own process: (its figures, None), its last stdout line being its JSON, or (None, the last
    line of its stderr) where it failed, the tail of its stderr then printed on ours (but for a validation among the
    measured steps, which its one line says all about)."""
    done = subprocess.run([sys.executable, __file__, *argv, "--side", name], capture_output=True, text=True)
    lines = [line for line in done.stdout.strip().splitlines() if line.strip()]
    if done.returncode == 0 and lines:
        try:
            return json.loads(lines[-1]), None
        except json.JSONDecodeError:
            pass
    if done.returncode != VALIDATION_EXIT:
        print(f"{name} side failed (exit status {done.returncode}); the end of its stderr:\n{done.stderr[-4000:]}",
              file=sys.stderr, flush=True)
    return None, f"{name} side failed (exit status {done.returncode}): {error_line(done.stderr)}"[:1000]


def error_line(stderr: str) -> str:
    """The line of a side's stderr that says why it failed: its own (`train.py: ...`), else the exception's, else the last
    (progress bars' carriage-return updates and terminal escapes left out)."""
    lines = [re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", line.split("\r")[-1]).strip() for line in stderr.splitlines()]
    lines = [line for line in lines if line]
    for pattern in (r"train\.py: .*", r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b.*"):
        found = [match.group() for line in lines if (match := re.search(pattern, line))]
        if found:
            return found[-1]
    return lines[-1] if lines else "no message"


def main(argv=None) -> None:
    """Run both sides (or one, with --side) and print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=("tiny", "base"), default="tiny")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=12, help="timed optimizer steps")
    parser.add_argument("--warmup", type=int, default=3, help="optimizer steps before the clock starts")
    parser.add_argument("--precision", choices=("32", "bf16-mixed"), default="32")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--compile", action="store_true", help="qaframe side: --compile (torch.compile)")
    parser.add_argument("--compile-mode", default="default", help="qaframe side, with --compile: --compile-mode")
    parser.add_argument("--compile-too", action="store_true", help="then train qaframe with --compile too: a second line")
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader workers, both sides")
    parser.add_argument("--progress-every", type=int, help="qaframe side: --progress-every (default: qaframe's)")
    parser.add_argument("--pad-to-multiple-of", type=int, help="qaframe side: --pad-to-multiple-of (default: qaframe's)")
    parser.add_argument("--profile-steps", type=int, default=0, help="then profile this many steps (torch.profiler)")
    parser.add_argument("--examples", type=int, help=f"generated examples to featurize (windows ~1.4x); default: enough "
                        f"for an epoch to outlast the steps asked, at least {MIN_EXAMPLES} (Lightning validates at its end)")
    parser.add_argument("--side", choices=("qaframe", "peer"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    if args.examples is None:
        args.examples = default_examples(args.batch_size, args.warmup + args.steps + args.profile_steps)

    if args.side:
        try:
            with tempfile.TemporaryDirectory(prefix="qaframe-bench-") as work:
                result = (run_qaframe if args.side == "qaframe" else run_peer)(args, Path(work))
        except ValidationInMeasuredSteps as error:
            print(f"\ntrain.py: {error}", file=sys.stderr, flush=True)  # on a line of its own, after any progress bar
            raise SystemExit(VALIDATION_EXIT) from None
        print(json.dumps(result))
        return
    # the sides get the same --examples (the default is resolved here once)
    plain = [a for a in argv if a != "--compile-too"]
    if "--examples" not in plain and not any(a.startswith("--examples=") for a in plain):
        plain += ["--examples", str(args.examples)]
    ours, error = side("qaframe", plain)
    if ours is None:
        raise SystemExit(error)
    peer, peer_error = side("peer", plain)
    peak = matmul_peak_tflops(args.device, args.precision)
    emit(report(args, ours, peer, peak, peer_error))
    failures = [peer_error] if peer_error else []
    if args.compile_too and not args.compile:  # the same peer figures, qaframe with --compile
        compiled, error = side("qaframe", [*plain, "--compile"])
        if compiled is None:
            failures.append(error)
        else:
            emit(report(args, compiled, peer, peak, peer_error))
    if failures:
        raise SystemExit("; ".join(failures))


def report(args, ours: dict, peer: dict | None, peak: float, peer_error: str | None = None) -> dict:
    """The JSON line of one comparison: both sides' figures with MFU against the measured peak, and the ratio; where the
    peer side failed (`peer` None), qaframe's figures with the peer's figures null and `peer_error`."""
    for figures in (ours, peer):
        if figures is not None:
            figures["mfu"] = round(figures["useful_tflops"] / peak, 4)
            figures["hfu"] = round(figures["hardware_tflops"] / peak, 4)
    return {
        "stage": "train",
        "qaframe_compile": ours["compile"],
        "qaframe_compile_mode": ours["compile_mode"],
        "qaframe_sequences_per_s": ours["sequences_per_s"],
        "peer_sequences_per_s": peer and peer["sequences_per_s"],
        "ratio": peer and round(ours["sequences_per_s"] / peer["sequences_per_s"], 2),
        "qaframe_mfu": ours["mfu"],
        "peer_mfu": peer and peer["mfu"],
        "qaframe_peak_memory_mb": ours["peak_memory_mb"],
        "peer_peak_memory_mb": peer and peer["peak_memory_mb"],
        "peak_memory_kind": "torch.cuda.max_memory_allocated" if args.device == "cuda" else "peak RSS of the process",
        "matmul_peak_tflops": round(peak, 3),
        "flops_formula": "per window of n tokens: 6*N*n + 12*L*H*n^2 (N: parameters outside embeddings); mfu: real tokens, hfu: padded",
        "shape": args.shape,
        "batch_size": args.batch_size,
        "precision": args.precision,
        "max_seq_length": MAX_SEQ_LENGTH,
        "warmup_steps": args.warmup,
        "timed_steps": args.steps,
        "profile_steps": args.profile_steps,
        "examples": args.examples,
        "qaframe": ours,
        "peer": peer,
        **({"peer_error": peer_error} if peer_error else {}),
    }

if __name__ == "__main__":
    main()
