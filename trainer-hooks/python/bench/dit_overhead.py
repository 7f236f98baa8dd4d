"""Training step time with and without the hook on the Wan-style DiT with LoRA, and where it goes.

A LoRA fine-tune step (PEFT layout, rank 16 on every attention and FFN linear of the 2.7 M
parameter :class:`~motive_hooks.dit.WanMiniDiT`; latents ``[16, 5, 16, 16]`` by default, 320 tokens per
clip; AdamW) at micro-batch 1 and 4, plain and with the hook (``layers="lora"``, k = 512) for each
recipe given (``--recipes``; ``<name>/looped`` is the recipe with its timesteps run one forward
each, ``stack_timesteps=False``), attributing every step, and the default recipe also every 4th
step (and, with ``--budget 0.1``, under ``MotionAttributor(budget=0.1)``: its first pass comes
at step 0, so only a run many passes long shows its steady share). Configurations alternate step by step so that the machine's changing load falls on all of
them alike; each figure is the mean step time over the recorded steps (a multiple of 4, so
"every 4th" is averaged over whole cycles), printed with the 1-minute load average sampled every
round (mean and range), and the mean CPU time of the process per step (with one thread, the
work done, which the machine's load disturbs far less than wall time). The breakdown times the attribution pass's parts on the attributed
steps: the extra forward (all timesteps of the recipe; the forward count says how many model
calls), the sketch backward (``autograd.grad`` to the sketched layers' outputs), the projection,
and ``client.send`` (the call only: encoding and sending happen on the client's thread; with
``--address`` sketches go to a running daemon, else to an unreachable address with the drop
policy). ``--passes N`` instead times the training step and each recipe's pass alone, the
minimum CPU time of N alternating repetitions (the least-disturbed estimate on a loaded
machine), and the cadence that keeps each recipe within +10 %. The pass costs the same on every attributed step, so a cadence of every ``n``-th step
costs ``(every step − plain) / n``; the "every 4th" row measures that directly.

    python3 trainer-hooks/python/bench/dit_overhead.py [--steps 8] [--threads 2] [--recipes accel-luma,accel-luma/looped,paper]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from motive_hooks import DEFAULT_RECIPE, MotionAttributor, MotiveClient, flow_matching_predict, recipe  # noqa: E402
from motive_hooks.dit import WanMiniDiT, wan_mini_latents  # noqa: E402
from motive_hooks.lora import inject_peft_lora  # noqa: E402


class Timer:
    """Accumulates wall time per part of the attribution pass."""

    def __init__(self) -> None:
        self.parts: Dict[str, float] = {}

    def add(self, name: str, dt: float) -> None:
        self.parts[name] = self.parts.get(name, 0.0) + dt


def instrument(attr: MotionAttributor, timer: Timer) -> None:
    """Wraps the pass's parts with timers (bench only: the hook itself is not changed)."""
    sk = attr.sketcher
    real_accumulate, real_sketch = sk._accumulate, sk.sketch
    obj = attr.objective
    real_losses = obj.per_sample_losses

    def accumulate(*a: Any, **kw: Any) -> torch.Tensor:
        t0 = time.perf_counter()
        out = real_accumulate(*a, **kw)
        timer.add("projection", time.perf_counter() - t0)
        return out

    def sketch(*a: Any, **kw: Any) -> torch.Tensor:
        t0 = time.perf_counter()
        before = timer.parts.get("projection", 0.0)
        out = real_sketch(*a, **kw)
        timer.add("backward", time.perf_counter() - t0 - (timer.parts.get("projection", 0.0) - before))
        return out

    def losses(*a: Any, **kw: Any) -> torch.Tensor:
        t0 = time.perf_counter()
        out = real_losses(*a, **kw)
        timer.add("forward", time.perf_counter() - t0)
        timer.add("forwards", 1 if obj.stacks(a[0], a[1]) else len(obj.timesteps))
        return out

    sk._accumulate = accumulate  # type: ignore[method-assign]
    sk.sketch = sketch  # type: ignore[method-assign]
    obj.per_sample_losses = losses  # type: ignore[method-assign]
    if attr.client is not None:
        real_send = attr.client.send

        def send(*a: Any, **kw: Any) -> bool:
            t0 = time.perf_counter()
            ok = real_send(*a, **kw)
            timer.add("send", time.perf_counter() - t0)
            return ok

        attr.client.send = send  # type: ignore[method-assign]


class Setup:
    def __init__(
        self, every: Optional[int], batch: int, args: argparse.Namespace, recipe_name: str = DEFAULT_RECIPE, budget: Optional[float] = None
    ) -> None:
        self.model = WanMiniDiT(seed=1)
        inject_peft_lora(self.model, self.model.lora_targets(), r=16, alpha=16.0, init_up_std=0.01, seed=2)
        self.opt = torch.optim.AdamW([p for p in self.model.parameters() if p.requires_grad], lr=1e-4)
        self.batch, self.every = batch, every
        self.data = wan_mini_latents(4 * batch, frames=args.frames, size=args.size, seed=3)
        self.ids = [f"clip-{i}" for i in range(self.data.shape[0])]
        self.timer = Timer()
        self.attributed = 0
        self.attr: Optional[MotionAttributor] = None
        self.client: Optional[MotiveClient] = None
        if every is not None:
            name, _, mode = recipe_name.partition("/")
            objective = recipe(name, flow_matching_predict(), stack_timesteps=False if mode == "looped" else None)
            self.attr = MotionAttributor(self.model, args.layers, dim=args.dim, every=every, query_every=10**9, objectives=[objective], budget=budget)
            # the configurations alternate, so the budget's clock runs only inside this one's steps
            self.attr.clock = self.own_clock
            address = args.address or "127.0.0.1:9"
            self.client = MotiveClient(address, f"bench-dit-{every}-{batch}-{time.time_ns()}", args.dim, sketcher=self.attr.identity, policy="drop")
            self.attr.client = self.client
            instrument(self.attr, self.timer)
        self.times: List[float] = []
        self.cpu: List[float] = []
        self.step_no = 0
        self.elapsed = 0.0
        self.entered: Optional[float] = None

    def own_clock(self) -> float:
        """Wall time spent inside this configuration's steps."""
        return self.elapsed + (time.perf_counter() - self.entered if self.entered is not None else 0.0)

    def step(self, record: bool) -> None:
        lo = (self.step_no * self.batch) % self.data.shape[0]
        x = self.data[lo : lo + self.batch]
        t0 = self.entered = time.perf_counter()
        c0 = time.process_time()
        self.opt.zero_grad(set_to_none=True)
        s = torch.rand(self.batch)
        noise = torch.randn_like(x)
        sv = s.view(-1, 1, 1, 1, 1)
        loss = ((self.model((1 - sv) * x + sv * noise, s) - (noise - x)) ** 2).mean()
        loss.backward()
        if self.attr is not None:
            if self.attr.due(self.step_no) and record:
                self.attributed += 1
            parts = dict(self.timer.parts)
            self.attr.step(self.step_no, 1e-4, self.ids[lo : lo + self.batch], x, None)
            if not record:
                self.timer.parts = parts
        self.opt.step()
        t1 = time.perf_counter()
        self.elapsed += t1 - t0
        self.entered = None
        if record:
            self.times.append(t1 - t0)
            self.cpu.append(time.process_time() - c0)
        self.step_no += 1


def load() -> float:
    return os.getloadavg()[0]


def pass_table(args: argparse.Namespace, recipes: List[str]) -> None:
    """The training step and each recipe's attribution pass alone, the minimum CPU time of
    ``--passes`` alternating repetitions: the least-disturbed estimate of each one's work on a
    loaded machine. A cadence of every ``n``-th step adds ``pass / (n · step)``."""
    print("| micro-batch | what | CPU, min (ms) | wall, min (ms) | overhead at every step / every 4th (CPU) | every n for ≤ +10 % | load (mean, range) |")
    print("|---|---|---|---|---|---|---|")
    for batch in (int(b) for b in args.batches.split(",")):
        plain = Setup(None, batch, args)
        passes = {r: Setup(1, batch, args, r) for r in recipes}
        x = plain.data[:batch]
        cpu: Dict[str, List[float]] = {"step": []}
        wall: Dict[str, List[float]] = {"step": []}
        loads: List[float] = []
        for rep in range(args.passes + 1):
            c0, w0 = time.process_time(), time.perf_counter()
            plain.step(record=False)
            if rep:
                cpu["step"].append(time.process_time() - c0)
                wall["step"].append(time.perf_counter() - w0)
            for r, setup in passes.items():
                assert setup.attr is not None
                c0, w0 = time.process_time(), time.perf_counter()
                setup.attr.sketch(x, None)
                if rep:
                    cpu.setdefault(r, []).append(time.process_time() - c0)
                    wall.setdefault(r, []).append(time.perf_counter() - w0)
            loads.append(load())
        step_cpu = min(cpu["step"])
        ld = f"{statistics.mean(loads):.1f} ({min(loads):.1f}–{max(loads):.1f})"
        print(f"| {batch} | training step | {1000 * step_cpu:.0f} | {1000 * min(wall['step']):.0f} | | | {ld} |")
        for r in recipes:
            ratio = min(cpu[r]) / step_cpu
            print(f"| {batch} | pass, {r} | {1000 * min(cpu[r]):.0f} | {1000 * min(wall[r]):.0f} | +{100 * ratio:.0f} % / +{25 * ratio:.0f} % | {max(1, math.ceil(ratio / 0.1))} | {ld} |", flush=True)
        for setup in passes.values():
            if setup.client is not None:
                setup.client.close(1.0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=8, help="recorded steps per configuration (a multiple of 4)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--address", default=None)
    ap.add_argument("--frames", type=int, default=5, help="latent frames")
    ap.add_argument("--size", type=int, default=16, help="latent height and width")
    ap.add_argument("--batches", default="1,4", help="micro-batch sizes")
    ap.add_argument("--recipes", default=f"{DEFAULT_RECIPE},{DEFAULT_RECIPE}/looped,paper", help="recipes attributed every step; <name>/looped runs one forward per timestep")
    ap.add_argument("--budget", type=float, default=0.0, help="also run the default recipe with MotionAttributor(budget=...) (meaningful over runs of many passes' worth of steps); 0: not")
    ap.add_argument("--passes", type=int, default=0, help="instead of the step table: the training step and each recipe's pass alone, min CPU time of this many repetitions")
    ap.add_argument("--layers", default="lora", help='layers to sketch, e.g. "blocks.3.*.lora_*" (the last block\'s LoRA)')
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, threads {args.threads}, load {load():.1f}, layers {args.layers}")
    if args.passes:
        pass_table(args, [r for r in args.recipes.split(",") if r])
        return
    rows: List[Tuple[int, str, float, float, float, float, Dict[str, float], int, List[float]]] = []
    recipes = [r for r in args.recipes.split(",") if r]
    for batch in (int(b) for b in args.batches.split(",")):
        setups = {"plain": Setup(None, batch, args)}
        for r in recipes:
            setups[f"{r}, every step"] = Setup(1, batch, args, r)
        setups[f"{recipes[0]}, every 4th"] = Setup(4, batch, args, recipes[0])
        if args.budget:
            setups[f"{recipes[0]}, budget {args.budget:g}"] = Setup(1, batch, args, recipes[0], budget=args.budget)
        loads: List[float] = []
        for i in range(args.warmup + args.steps):
            for s in setups.values():
                s.step(record=i >= args.warmup)
            if i >= args.warmup:
                loads.append(load())
        base = statistics.mean(setups["plain"].times)
        base_cpu = statistics.mean(setups["plain"].cpu)
        for name, s in setups.items():
            mean, cpu = statistics.mean(s.times), statistics.mean(s.cpu)
            rows.append((batch, name, mean, 100.0 * (mean / base - 1.0), cpu, 100.0 * (cpu / base_cpu - 1.0), s.timer.parts, s.attributed, loads))
            print(f"micro-batch {batch}, {name}: {1000 * mean:.0f} ms (load {statistics.mean(loads):.1f}, {min(loads):.1f}–{max(loads):.1f})", flush=True)
            if s.attr is not None and s.attr.budget is not None:
                share = s.attr.hook_seconds / max(s.attr.train_seconds, 1e-9)
                print(f"  budget {s.attr.budget:g}: hook time / training time {share:.3f} over {s.step_no} steps, warm-up included")
            if s.client is not None:
                s.client.close(1.0)
    print("| micro-batch | hook | step, wall (ms, mean) | overhead, wall | step, CPU (ms, mean) | overhead, CPU | load (mean, range) | per attributed step: forward (model calls) / backward / projection / send (ms, wall) |")
    print("|---|---|---|---|---|---|---|---|")
    for batch, name, mean, over, cpu, over_cpu, parts, n, loads in rows:
        detail = "—"
        if n:
            ms = " / ".join(f"{1000 * parts.get(k, 0.0) / n:.0f}" for k in ("backward", "projection", "send"))
            detail = f"{1000 * parts.get('forward', 0.0) / n:.0f} ({parts.get('forwards', 0.0) / n:.0f}) / {ms}"
        over_s = "" if name == "plain" else f"{over:+.0f} %"
        over_c = "" if name == "plain" else f"{over_cpu:+.0f} %"
        print(f"| {batch} | {name} | {1000 * mean:.0f} | {over_s} | {1000 * cpu:.0f} | {over_c} | {statistics.mean(loads):.1f} ({min(loads):.1f}–{max(loads):.1f}) | {detail} |")


if __name__ == "__main__":
    main()
