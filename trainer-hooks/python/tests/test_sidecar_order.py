"""Side-car attribution when the parts run out of step (docs/wire.md and docs/method.md, "Side-car
attribution"): a backlog drained newest first is still scored against a query set at or before
each job's step; a step's report waits for its snapshot to be durable; a worker that finds no
snapshot yet leaves the jobs to come again instead of dying; and a step whose clips differ in
length is sketched per length group, as the in-process hook is called."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import grpc
import numpy as np
import pytest
import torch

import sidecar_fixture as fx
from motive_hooks import MotionAttributor, MotiveClient
from motive_hooks.dit import wan_mini_latents
from motive_hooks.sidecar import SidecarReporter, SnapshotStore, trainable_state
from motive_hooks.worker import Job, SidecarWorker, lease_jobs, run_worker
from test_interop import MOTIVED, Daemon
from test_sidecar import _train, _unit

torch.set_num_threads(1)

needs_daemon = pytest.mark.skipif(
    shutil.which("node") is None or not os.path.exists(MOTIVED),
    reason="needs node and bin/motived.js (the daemon) in this checkout",
)

FRAMES = {"c0": 3, "c1": 5, "c2": 3, "c3": 5, "c4": 5}


def _ragged(ids: Sequence[str]) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
    """Clips of different frame counts, one tensor each, with motion masks."""
    lats = [wan_mini_latents(1, frames=FRAMES[i], size=4, seed=int(i[1:]))[0] for i in ids]
    masks = [(torch.arange(FRAMES[i] * 16).reshape(FRAMES[i], 4, 4) % 3 == 0).float() for i in ids]
    return lats, masks


def test_a_step_of_clips_of_different_lengths_is_sketched_per_length_group() -> None:
    snapdir = tempfile.mkdtemp(prefix="motive-snap-")
    try:
        model = fx.build_model()
        SnapshotStore(snapdir).write(7, trainable_state(model))
        ids = ["c1", "c0", "c3", "c2", "c4"]
        lats, masks = _ragged(ids)
        # the in-process hook, called once per length group at the same weights
        hook = fx.build_attributor(model)
        ref: Dict[str, Tuple[torch.Tensor, torch.Tensor]] = {}
        for frames in (5, 3):
            grp = [i for i, sid in enumerate(ids) if FRAMES[sid] == frames]
            batch = torch.stack([lats[i] for i in grp])
            sk = hook.step(7, 0.1, [ids[i] for i in grp], batch, torch.stack([masks[i] for i in grp]))
            assert sk is not None
            feats = hook.features(batch)
            assert feats is not None
            for r, i in enumerate(grp):
                ref[ids[i]] = (sk[r].detach().double(), feats[r].double())
        worker = SidecarWorker(fx.build_attributor(fx.build_model()), _ragged, snapdir)
        (g,) = worker.sketch_jobs([Job(50 + n, 7, 0.1, sid) for n, sid in enumerate(ids)])
        assert g.ids == ids and g.job_ids == [50, 51, 52, 53, 54] and g.snapshot_step == 7
        assert g.sketches.shape == (len(ids), fx.DIM) and g.losses.shape == (len(ids),)
        assert g.features is not None
        for n, sid in enumerate(ids):
            want, want_feats = ref[sid]
            err = float((g.sketches[n].double() - want).norm() / want.norm())
            assert err <= 1e-5, (sid, err)
            torch.testing.assert_close(g.features[n].double(), want_feats, rtol=1e-5, atol=1e-7)
        # the two lengths give different sketches: rows were not swapped between groups
        assert float((g.sketches[0] - g.sketches[1]).norm()) > 1e-2
    finally:
        shutil.rmtree(snapdir, ignore_errors=True)


def _queries_attributor(model: torch.nn.Module) -> MotionAttributor:
    attr = fx.build_attributor(model)
    qbatch, qmasks = fx.clips(fx.QUERY_IDS)
    attr.add_queries(fx.QUERY_IDS, qbatch, qmasks)
    return attr


@needs_daemon
def test_a_backlog_drained_newest_first_is_scored_against_the_query_set_of_each_snapshot() -> None:
    tmp = tempfile.mkdtemp(prefix="motive-sidecar-")
    snapdir = os.path.join(tmp, "snapshots")
    daemon = Daemon(os.path.join(tmp, "data"), {"weights": {"policy": "observe"}})
    try:
        attr = fx.build_attributor(fx.build_model())
        client = MotiveClient(daemon.address, "backlog", attr.dim, sketcher=attr, dtype="float32", apply_weights=False)
        trained = _train(snapdir, 6, client=client)  # the trainer runs ahead: the whole run is backlog
        assert client.flush(60)
        # one worker publishing the queries (default refresh rule), one step per lease: newest first
        stats = run_worker(
            fx.build_model,
            fx.clips,
            daemon.address,
            "backlog",
            snapdir,
            attributor=_queries_attributor,
            max_jobs=3,
            dtype="float32",
            poll_s=0.05,
            idle_exit_s=2.0,
            threads=1,
        )
        assert stats.jobs == 18 and stats.staleness == [0] * 6
        side = daemon.get("/v1/runs/backlog")["sidecar"]
        assert side["attributed"] == side["created"] == 18
        # reference: each step's in-process sketches against the query sketches at its own snapshot
        # (the set in force for every job older than the sets published before it)
        ref = SidecarWorker(_queries_attributor(fx.build_model()), fx.clips, snapdir)
        expect: Dict[str, np.ndarray] = {}
        for step, lr, ids, sk in trained:
            ref.load(step)
            qids, qsk, _ = ref.attr.query_sketches()
            q = _unit(qsk.double().numpy())
            g = _unit(sk.double().numpy())
            for i, sid in enumerate(ids):
                expect[sid] = expect.get(sid, np.zeros(len(qids))) + lr * (g[i] @ q.T)
        order = [qids.index(j) for j in daemon.get("/v1/runs/backlog")["queryIds"]]
        for sid, sums in expect.items():
            got = np.array(daemon.get(f"/v1/runs/backlog/samples/{sid}")["querySums"])
            np.testing.assert_allclose(got, sums[order], rtol=1e-4, atol=1e-6, err_msg=sid)
        client.close()
    finally:
        daemon.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def _leased(address: str, run: str) -> List[Job]:
    channel = grpc.insecure_channel(address)
    try:
        return lease_jobs(channel, run, 100, lease_ms=200, worker="probe")[0]
    except grpc.RpcError:  # the run is not known yet: no job either
        return []
    finally:
        channel.close()


@needs_daemon
def test_reports_wait_for_their_snapshot_and_a_worker_without_one_waits_alive() -> None:
    tmp = tempfile.mkdtemp(prefix="motive-sidecar-")
    daemon = Daemon(os.path.join(tmp, "data"), {"weights": {"policy": "observe"}, "sidecar": {"leaseMs": 400}})
    stop = threading.Event()
    try:
        # 1. the report of a snapshotted step leaves only once the snapshot is renamed into place
        snapdir = os.path.join(tmp, "race")
        model = fx.build_model()
        attr = fx.build_attributor(model)
        client = MotiveClient(daemon.address, "race", attr.dim, sketcher=attr, dtype="float32", apply_weights=False)
        reporter = SidecarReporter(model, client, snapdir, snapshot_every=2)
        gate = threading.Event()
        write = reporter.snapshots.write

        def held_write(step: int, state: Dict[str, torch.Tensor]) -> str:
            gate.wait(30)  # a slow disk: the write finishes when the test says so
            return write(step, state)

        reporter.snapshots.write = held_write  # type: ignore[method-assign]
        assert reporter.step(0, 0.1, ["c0", "c1"]) and reporter.step(1, 0.1, ["c2"])
        assert client.flush(30)
        time.sleep(0.3)
        assert _leased(daemon.address, "race") == [] and SnapshotStore(snapdir).steps() == []
        gate.set()
        reporter.flush()
        assert client.flush(30)
        jobs = _leased(daemon.address, "race")
        assert sorted((j.step, j.sample_id) for j in jobs) == [(0, "c0"), (0, "c1"), (1, "c2")]
        assert SnapshotStore(snapdir).steps() == [0]
        assert reporter.step(2, 0.1, ["c3"])  # nothing pending: sent at once, after its snapshot
        reporter.close()
        client.close()

        # 2. a worker leasing jobs before any snapshot exists neither dies nor answers them
        snapdir = os.path.join(tmp, "late")
        client = MotiveClient(daemon.address, "late", attr.dim, sketcher=attr, dtype="float32", apply_weights=False)
        assert client.report(0, 0.1, ["c0", "c1", "c2"]) and client.flush(30)
        errors: List[BaseException] = []

        def work() -> None:
            try:
                kw: Dict[str, Any] = dict(attributor=fx.build_attributor, max_jobs=3, lease_ms=400, publish_queries=False)
                run_worker(fx.build_model, fx.clips, daemon.address, "late", snapdir, dtype="float32", poll_s=0.05, stop=stop, threads=1, **kw)
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=work)
        thread.start()
        time.sleep(1.5)  # several leases of the same jobs expire meanwhile
        assert thread.is_alive() and not errors, errors
        assert daemon.get("/v1/runs/late")["sidecar"]["attributed"] == 0
        SnapshotStore(snapdir).write(0, trainable_state(fx.build_model()))
        deadline = time.monotonic() + 60
        side: Optional[Dict[str, Any]] = None
        while time.monotonic() < deadline:
            side = daemon.get("/v1/runs/late")["sidecar"]
            if side["attributed"] == 3:
                break
            time.sleep(0.1)
        assert side is not None and side["attributed"] == side["created"] == 3 and side["backlog"] == 0, side
        stop.set()
        thread.join(60)
        assert not thread.is_alive() and not errors, errors
        client.close()
    finally:
        stop.set()
        daemon.kill()
        shutil.rmtree(tmp, ignore_errors=True)
