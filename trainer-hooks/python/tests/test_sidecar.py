"""Side-car attribution (docs/wire.md, "Side-car attribution"): a worker's sketches at the snapshot
of a job's step equal the in-process hook's; snapshots are atomic and bounded; and against the real
daemon, with a worker SIGKILLed mid-job and the daemon SIGKILLed and restarted, every trained
(clip, step) is attributed exactly once (float64 reference of the sums from the in-process hook's
own sketches)."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import tempfile
import time
from collections import Counter
from typing import Any, Dict, List, Tuple

import numpy as np
import pytest
import torch

import sidecar_fixture as fx
from motive_hooks import MotiveClient
from motive_hooks.sidecar import SidecarReporter, SnapshotStore, trainable_state
from motive_hooks.worker import Job, SidecarWorker, run_worker
from test_interop import MOTIVED, Daemon

torch.set_num_threads(1)

STEPS = 6


def _train(snapdir: str, steps: int, client: Any = None, snapshot_every: int = 1) -> List[Tuple[int, float, List[str], torch.Tensor]]:
    """Trains the fixture model for ``steps`` steps with the side-car reporter; returns each step's
    (step, lr, ids, in-process hook sketches) — ``attr.step`` called where the hook goes."""
    model = fx.build_model()
    attr = fx.build_attributor(model)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    reporter = SidecarReporter(model, client, snapdir, snapshot_every=snapshot_every, keep=1000)
    out = []
    for step in range(steps):
        lr, ids = fx.schedule(step)
        for g in opt.param_groups:
            g["lr"] = lr
        batch, masks = fx.clips(ids)
        opt.zero_grad()
        fx.train_loss(model, batch, step).backward()
        sketches = attr.step(step, lr, ids, batch, masks)  # the in-process hook (no client)
        assert sketches is not None
        reporter.step(step, lr, ids)
        opt.step()
        out.append((step, lr, ids, sketches.detach().clone()))
    reporter.close()
    return out


def test_worker_sketches_equal_the_in_process_hook_at_staleness_zero() -> None:
    snapdir = tempfile.mkdtemp(prefix="motive-snap-")
    try:
        trained = _train(snapdir, 4)
        worker = SidecarWorker(fx.build_attributor(fx.build_model()), fx.clips, snapdir)
        jobs = [Job(100 * step + i, step, lr, sid) for step, lr, ids, _ in trained for i, sid in enumerate(ids)]
        groups = {g.step: g for g in worker.sketch_jobs(jobs)}
        assert sorted(groups) == [0, 1, 2, 3]
        for step, lr, ids, ref in trained:
            g = groups[step]
            assert g.snapshot_step == step and g.ids == ids and g.lr == lr
            assert g.job_ids == [100 * step + i for i in range(len(ids))]
            err = (g.sketches.double() - ref.double()).norm(dim=1) / ref.double().norm(dim=1)
            assert float(err.max()) <= 1e-5, (step, err)
        # the parameters moved: a stale snapshot gives other sketches
        stale = worker.sketch_jobs([Job(1, 3, 0.1, trained[3][2][0])])[0]
        worker.load(0)
        assert worker.loaded == 0
        batch, masks = fx.clips([trained[3][2][0]])
        at0, _ = worker.attr.sketch(batch, masks)
        assert float((stale.sketches - at0).norm()) > 1e-3
    finally:
        shutil.rmtree(snapdir, ignore_errors=True)


def test_snapshots_are_atomic_bounded_and_hold_only_trainable_tensors() -> None:
    snapdir = tempfile.mkdtemp(prefix="motive-snap-")
    try:
        model = fx.build_model()
        state = trainable_state(model)
        assert state and all("lora_" in k for k in state)  # LoRA: the adapters alone
        store = SnapshotStore(snapdir, keep=3)
        for step in (0, 4, 8, 12, 16):
            store.write(step, state)
        assert store.steps() == [8, 12, 16]
        assert not [n for n in os.listdir(snapdir) if ".tmp" in n]
        assert store.nearest(15) == 12 and store.nearest(16) == 16 and store.nearest(100) == 16
        assert store.nearest(3) == 8  # older ones were cleaned up: the oldest left
        # micro-batches of one optimizer step share its snapshot: written once
        rep = SidecarReporter(model, None, os.path.join(snapdir, "accum"), background=False)
        assert rep.due(0)
        rep.step(0, 0.1, ["c0"])
        assert not rep.due(0) and rep.due(1)
        loaded = store.load(12)
        assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)
        # snapshot_every: the nearest snapshot at or before each job's step
        trained = _train(os.path.join(snapdir, "every2"), 4, snapshot_every=2)
        assert SnapshotStore(os.path.join(snapdir, "every2")).steps() == [0, 2]
        worker = SidecarWorker(fx.build_attributor(fx.build_model()), fx.clips, os.path.join(snapdir, "every2"))
        got = {g.step: g.snapshot_step for g in worker.sketch_jobs([Job(s + 1, s, lr, ids[0]) for s, lr, ids, _ in trained])}
        assert got == {0: 0, 1: 0, 2: 2, 3: 2}
    finally:
        shutil.rmtree(snapdir, ignore_errors=True)


needs_daemon = pytest.mark.skipif(
    shutil.which("node") is None or not os.path.exists(MOTIVED),
    reason="needs node and bin/motived.js (the daemon) in this checkout",
)


def _worker_main(address: str, snapdir: str, name: str, idle_exit_s: float) -> None:
    run_worker(
        fx.build_model,
        fx.clips,
        address,
        "sidecar",
        snapdir,
        attributor=fx.build_attributor,
        worker_name=name,
        max_jobs=2,
        lease_ms=1500,
        publish_queries=False,
        dtype="float32",
        poll_s=0.1,
        idle_exit_s=idle_exit_s,
        threads=1,
    )


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@needs_daemon
def test_every_trained_clip_step_is_attributed_exactly_once_through_worker_and_daemon_kills() -> None:
    tmp = tempfile.mkdtemp(prefix="motive-sidecar-")
    snapdir = os.path.join(tmp, "snapshots")
    daemon = Daemon(os.path.join(tmp, "data"), {"weights": {"policy": "observe"}, "sidecar": {"leaseMs": 1500}})
    ctx = multiprocessing.get_context("spawn")
    procs: List[Any] = []
    try:
        attr = fx.build_attributor(fx.build_model())
        client = MotiveClient(daemon.address, "sidecar", attr.dim, sketcher=attr, dtype="float32", apply_weights=False)
        # the query set, fixed, sent by the trainer before its first report
        qbatch, qmasks = fx.clips(fx.QUERY_IDS)
        attr.add_queries(fx.QUERY_IDS, qbatch, qmasks)
        qids, qsk, groups = attr.query_sketches()
        client.set_queries(qids, qsk, step=0, groups=groups)
        trained = _train(snapdir, STEPS, client=client)
        assert client.flush(60)
        run = daemon.get("/v1/runs/sidecar")
        assert run["sidecar"]["created"] == 3 * STEPS and run["sidecar"]["backlog"] == 3 * STEPS

        # one worker, SIGKILLed once it has answered some jobs and is working on more
        first = ctx.Process(target=_worker_main, args=(daemon.address, snapdir, "w-first", 600.0))
        first.start()
        procs.append(first)
        deadline = time.monotonic() + 120
        while daemon.get("/v1/runs/sidecar")["sidecar"]["attributed"] < 4:
            assert time.monotonic() < deadline and first.is_alive()
            time.sleep(0.05)
        os.kill(first.pid, signal.SIGKILL)
        first.join(10)
        done_before = daemon.get("/v1/runs/sidecar")["sidecar"]["attributed"]
        assert 4 <= done_before < 3 * STEPS

        # the daemon SIGKILLed and restarted; two workers finish the backlog and idle out
        daemon.kill()
        daemon = daemon.restart()
        assert daemon.get("/v1/runs/sidecar")["sidecar"]["attributed"] == done_before
        rest = [ctx.Process(target=_worker_main, args=(daemon.address, snapdir, f"w-{i}", 4.0)) for i in range(2)]
        for p in rest:
            p.start()
            procs.append(p)
        for p in rest:
            p.join(180)
            assert p.exitcode == 0
        side = daemon.get("/v1/runs/sidecar")["sidecar"]
        assert side["backlog"] == 0 and side["dropped"] == 0
        assert side["attributed"] == side["created"] == 3 * STEPS
        assert side["stalenessMax"] == 0

        # exactly once: seen and the float64 sums of the in-process hook's sketches
        q = _unit(qsk.double().numpy())
        expect: Dict[str, np.ndarray] = {}
        seen: Counter = Counter()
        for step, lr, ids, sk in trained:
            g = _unit(sk.double().numpy())
            for i, sid in enumerate(ids):
                seen[sid] += 1
                expect[sid] = expect.get(sid, np.zeros(len(qids))) + lr * (g[i] @ q.T)
        order = [qids.index(j) for j in daemon.get("/v1/runs/sidecar")["queryIds"]]
        for sid, sums in expect.items():
            got = daemon.get(f"/v1/runs/sidecar/samples/{sid}")
            assert got["seen"] == seen[sid], sid
            np.testing.assert_allclose(np.array(got["querySums"]), sums[order], rtol=1e-4, atol=1e-6)
        client.close()
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
        daemon.kill()
        shutil.rmtree(tmp, ignore_errors=True)
