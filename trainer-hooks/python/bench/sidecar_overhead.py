"""Side-car attribution: the trainer's step time with it against no attribution, and worker throughput.

The model is the LoRA fine-tune of ``dit_overhead.py`` (the Wan-style DiT, PEFT rank 16 on every
attention and FFN linear, AdamW, micro-batch 1). A real daemon (``node bin/motived.js``, or
``--address``) takes the reports and the worker batches.

1. **Step time.** The trainer runs on core 0 (``os.sched_setaffinity``, one torch thread), one
   worker on core 1 attributes every reported clip meanwhile. Two training loops alternate step by
   step (in ABBA order), so the machine's changing load falls on both alike: one plain, one with
   :class:`~motive_hooks.sidecar.SidecarReporter` (report every step, a snapshot of the LoRA
   tensors every ``--snapshot-every`` steps, written from a background thread). Printed: the mean
   step time of each and the overhead.
2. **Worker throughput.** A backlog of ``--jobs`` reported clips (one snapshot), attributed by 1
   worker (core 1) and then by 2 workers (cores 0 and 1): clips/s from the first lease to an
   empty backlog, read from the daemon.

Every figure is printed with the 1-minute load average beside it: on a shared machine the ratios,
not the seconds, are what to read, and a quiet machine is what the target (≤ +5 %) is about.

    python3 trainer-hooks/python/bench/sidecar_overhead.py [--steps 16] [--jobs 24] [--size 16 --frames 5]
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from motive_hooks import MotionAttributor, MotiveClient, flow_matching_predict  # noqa: E402
from motive_hooks.dit import WanMiniDiT, wan_mini_latents  # noqa: E402
from motive_hooks.lora import inject_peft_lora  # noqa: E402
from motive_hooks.sidecar import SidecarReporter, SnapshotStore, trainable_state  # noqa: E402
from motive_hooks.worker import run_worker  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def load() -> str:
    return "load %.2f %.2f %.2f" % os.getloadavg()


def pin(core: Optional[int]) -> None:
    """This process on CPU ``core`` alone (None: left as it is), one torch thread."""
    if core is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {core})
    torch.set_num_threads(1)


def cores() -> List[Optional[int]]:
    """Two CPUs to pin to (the first two this process may use; None where it cannot pin)."""
    if not hasattr(os, "sched_getaffinity"):
        return [None, None]
    mine = sorted(os.sched_getaffinity(0))
    return [mine[0], mine[1 % len(mine)]]


def build_model(rank: int) -> nn.Module:
    model = WanMiniDiT(seed=1)
    inject_peft_lora(model, model.lora_targets(), r=rank, alpha=float(rank), init_up_std=0.01, seed=2)
    return model


def build_attributor(model: nn.Module, dim: int) -> MotionAttributor:
    return MotionAttributor(model, "lora", flow_matching_predict(), dim=dim, query_every=10**9)


def clips(ids: Sequence[str], frames: int, size: int) -> Tuple[torch.Tensor, None]:
    return torch.stack([wan_mini_latents(1, frames=frames, size=size, seed=int(i.split("-")[1]))[0] for i in ids]), None


def worker_main(core: Optional[int], address: str, run_id: str, snapdir: str, args: Any, idle_exit_s: Optional[float]) -> None:
    pin(core)
    run_worker(
        functools.partial(build_model, args["rank"]),
        functools.partial(clips, frames=args["frames"], size=args["size"]),
        address,
        run_id,
        snapdir,
        attributor=functools.partial(build_attributor, dim=args["dim"]),
        worker_name=f"bench-{core}-{os.getpid()}",
        max_jobs=1,
        publish_queries=False,
        poll_s=0.05,
        idle_exit_s=idle_exit_s,
    )


class Daemon:
    """``node bin/motived.js`` on a temp store and free ports."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="motive-bench-sidecar-")
        env = dict(os.environ, MOTIVE_DATA_DIR=self.dir, MOTIVE_GRPC_PORT="0", MOTIVE_HTTP_PORT="0", MOTIVE_LOG_LEVEL="info")
        self.proc = subprocess.Popen(["node", os.path.join(REPO, "bin", "motived.js")], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("msg") == "ready":
                self.grpc, self.http = int(rec["grpcPort"]), int(rec["httpPort"])
                break
        else:
            raise RuntimeError("daemon did not start")
        self.address = f"127.0.0.1:{self.grpc}"

    def sidecar(self, run_id: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http}/v1/runs/{run_id}", timeout=10) as r:
            return json.loads(r.read()).get("sidecar", {})

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


class Trainer:
    """One LoRA training loop; with ``reporter`` set, side-car attribution of every clip."""

    def __init__(self, args: argparse.Namespace, client: Optional[MotiveClient], snapdir: str) -> None:
        self.model = build_model(args.rank)
        self.opt = torch.optim.AdamW([p for p in self.model.parameters() if p.requires_grad], lr=1e-4)
        self.args = args
        self.reporter = None if client is None else SidecarReporter(self.model, client, snapdir, snapshot_every=args.snapshot_every, keep=64)
        self.times: List[float] = []
        self.step_no = 0

    def step(self, record: bool) -> None:
        a = self.args
        ids = [f"clip-{self.step_no % a.clips}"]
        x, _ = clips(ids, a.frames, a.size)
        t0 = time.perf_counter()
        self.opt.zero_grad(set_to_none=True)
        s = torch.rand(1)
        noise = torch.randn_like(x)
        sv = s.view(-1, 1, 1, 1, 1)
        loss = ((self.model((1 - sv) * x + sv * noise, s) - (noise - x)) ** 2).mean()
        loss.backward()
        if self.reporter is not None:
            self.reporter.step(self.step_no, 1e-4, ids)
        self.opt.step()
        if record:
            self.times.append(time.perf_counter() - t0)
        self.step_no += 1


def step_time(daemon: Daemon, args: argparse.Namespace, ctx: Any, cpus: List[Optional[int]]) -> None:
    snapdir = tempfile.mkdtemp(prefix="motive-bench-snap-")
    run_id = f"bench-sidecar-{time.time_ns()}"
    pin(cpus[0])
    attr = build_attributor(build_model(args.rank), args.dim)
    client = MotiveClient(daemon.address, run_id, attr.dim, sketcher=attr, apply_weights=False)
    plain, side = Trainer(args, None, snapdir), Trainer(args, client, snapdir)
    side.step(False)  # the run and its first snapshot exist before the worker starts
    side.reporter.flush()  # type: ignore[union-attr]
    client.flush(30)
    worker = ctx.Process(target=worker_main, args=(cpus[1], daemon.address, run_id, snapdir, vars(args), None))
    worker.start()
    try:
        for _ in range(args.warmup):
            plain.step(False)
            side.step(False)
        loads = [os.getloadavg()[0]]
        for i in range(args.steps):
            # ABBA order, so that neither loop always follows the other (e.g. its snapshot write)
            first, second = (plain, side) if i % 4 in (0, 3) else (side, plain)
            first.step(True)
            second.step(True)
            loads.append(os.getloadavg()[0])
        base, mine = statistics.mean(plain.times), statistics.mean(side.times)
        stats = daemon.sidecar(run_id)
        print(
            f"step time, micro-batch 1, latents [16, {args.frames}, {args.size}, {args.size}], LoRA r={args.rank}, k={args.dim}, "
            f"{args.steps} steps each after {args.warmup} warm-up, trainer on core 0, 1 worker on core 1:"
        )
        print(f"  no attribution:       mean {1e3 * base:8.1f} ms/step (median {1e3 * statistics.median(plain.times):8.1f})")
        print(
            f"  side-car, every clip: mean {1e3 * mine:8.1f} ms/step (median {1e3 * statistics.median(side.times):8.1f}), "
            f"overhead {100 * (mine / base - 1):+.1f} % (mean), {100 * (statistics.median(side.times) / statistics.median(plain.times) - 1):+.1f} % (median)"
        )
        print(
            f"  worker kept up with {stats.get('attributed', 0)} of {stats.get('created', 0)} clips (backlog {stats.get('backlog', 0)}, "
            f"staleness mean {stats.get('stalenessMean', 0):.2f} max {stats.get('stalenessMax', 0)}); "
            f"1-min load during: {min(loads):.2f}-{max(loads):.2f}; {load()}"
        )
    finally:
        worker.kill()
        worker.join(10)
        side.reporter.close()  # type: ignore[union-attr]
        client.close(5.0)


def throughput(daemon: Daemon, args: argparse.Namespace, ctx: Any, workers: int, cpus: List[Optional[int]]) -> float:
    snapdir = tempfile.mkdtemp(prefix="motive-bench-snap-")
    run_id = f"bench-sidecar-tp{workers}-{time.time_ns()}"
    model = build_model(args.rank)
    attr = build_attributor(model, args.dim)
    SnapshotStore(snapdir).write(0, trainable_state(model))
    client = MotiveClient(daemon.address, run_id, attr.dim, sketcher=attr, apply_weights=False)
    for step in range(args.jobs):
        client.report(step, 1e-4, [f"clip-{step % args.clips}"])
    client.flush(30)
    client.close(5.0)
    procs = [ctx.Process(target=worker_main, args=(cpus[1 - w], daemon.address, run_id, snapdir, vars(args), 2.0)) for w in range(workers)]
    load_before = load()
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    first = None
    while True:
        s = daemon.sidecar(run_id)
        if first is None and s.get("leased", 0) + s.get("attributed", 0) > 0:
            first = time.perf_counter()
        if s.get("attributed", 0) >= args.jobs:
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - (first or t0)
    for p in procs:
        p.join(60)
    rate = args.jobs / elapsed
    print(f"  {workers} worker(s): {args.jobs} clips in {elapsed:.1f} s = {rate:.2f} clips/s   ({load_before} before, {load()} after)")
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=16, help="recorded steps per loop")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--snapshot-every", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=24, help="clips in the throughput backlog")
    ap.add_argument("--clips", type=int, default=8, help="distinct clips")
    ap.add_argument("--frames", type=int, default=5)
    ap.add_argument("--size", type=int, default=16)
    ap.add_argument("--rank", type=int, default=16, help="LoRA rank")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--skip-step-time", action="store_true")
    args = ap.parse_args()
    ctx = multiprocessing.get_context("spawn")
    cpus = cores()
    print(f"{os.cpu_count()} cores (pinning to {cpus[0]} and {cpus[1]}), torch {torch.__version__}, {load()}")
    daemon = Daemon()
    try:
        if not args.skip_step_time:
            step_time(daemon, args, ctx, cpus)
        print("worker throughput (the default objective, every LoRA factor sketched):")
        one = throughput(daemon, args, ctx, 1, cpus)
        two = throughput(daemon, args, ctx, 2, cpus)
        print(f"  scaling 1 -> 2 workers: x{two / one:.2f}")
    finally:
        daemon.stop()


if __name__ == "__main__":
    main()
