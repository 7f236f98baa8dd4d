"""Side-car attribution workers: sketch the clips a trainer reported, outside its training step.

A worker leases jobs (trained (clip, step) pairs, newest step first) from the daemon
(``Attribution/Lease``), loads the newest parameter snapshot at or before each job's step into a
model built by the user's factory, fetches the clips through the user's dataset and computes the
sketches with the very :class:`MotionAttributor` code the in-process hook runs
(:meth:`MotionAttributor.sketch` and :meth:`MotionAttributor.features`). It streams them on a
worker stream (``Hello.worker``) whose rows name the jobs they answer; the daemon counts each job
once, so a worker may crash, restart or resend at any point (docs/wire.md, "Side-car
attribution"). A lease the worker does not answer in time (it died) expires and the job goes to
another worker.

Several workers: ``spawn_workers(n, ...)`` (``torch.multiprocessing``), or one :func:`run_worker`
per process under ``torchrun`` (``worker_name=f"w{RANK}"``, ``publish_queries=RANK == 0``). One
worker (and only one) publishes the query sketches, at the snapshots it loads, with the
in-process hook's refresh rule. From the shell::

    python -m motive_hooks.worker --factory mypkg.mod:build_model --dataset mypkg.mod:load_clips \\
        --address 127.0.0.1:50051 --run my-run --snapshots /shared/snapshots --workers 2
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import grpc
import torch
import torch.nn as nn

from ._proto import motive_pb2 as pb
from .attribution import MotionAttributor
from .client import MotiveClient
from .sidecar import SnapshotStore

__all__ = ["Job", "SidecarWorker", "SketchedJobs", "WorkerStats", "lease_jobs", "run_worker", "spawn_workers"]

_LEASE = "/motive.v1.Attribution/Lease"
_log = logging.getLogger("motive_hooks.worker")

#: ``dataset(ids) -> (batch, masks)``: the clips of ``ids`` in that order, as the attributor's
#: objective takes them: latents ``[B, C, F, h, w]`` and motion masks ``[B, F, h, w]`` or None;
#: or, when a step's clips differ in shape (frame counts), a list of per-clip latents
#: ``[C, F, h, w]`` and a list of per-clip masks ``[F, h, w]`` (or None). The worker sketches
#: each group of equal shape at once, as the in-process hook is called once per length group.
Dataset = Callable[[Sequence[str]], Tuple[Any, Any]]


@dataclass(frozen=True)
class Job:
    """One trained (clip, step) pair to attribute."""

    id: int
    step: int
    lr: float
    sample_id: str


@dataclass
class SketchedJobs:
    """The sketches of the jobs of one step, at one snapshot."""

    step: int
    lr: float
    ids: List[str]
    job_ids: List[int]
    snapshot_step: int
    sketches: torch.Tensor
    losses: torch.Tensor
    features: Optional[torch.Tensor]


@dataclass
class WorkerStats:
    jobs: int = 0
    batches: int = 0
    seconds_sketching: float = 0.0
    staleness: List[int] = field(default_factory=list)


class SidecarWorker:
    """Sketches jobs at the nearest snapshot: the part of a worker that needs no daemon.

    Args:
        attributor: a :class:`MotionAttributor` built on a model of the trainer's architecture
            with the trainer's attributor settings (layers, recipe, dim, seed): the projection
            fingerprint must match the run's.
        dataset: see :data:`Dataset`.
        snapshot_dir: the trainer's snapshot directory (:class:`~motive_hooks.sidecar.SidecarReporter`).
    """

    def __init__(self, attributor: MotionAttributor, dataset: Dataset, snapshot_dir: str) -> None:
        self.attr = attributor
        self.dataset = dataset
        self.snapshots = SnapshotStore(snapshot_dir)
        self.loaded: Optional[int] = None
        #: the oldest step of a query set this worker published (None: none yet)
        self.oldest_queries: Optional[int] = None
        self._params: Dict[str, nn.Parameter] = dict(attributor.model.named_parameters())

    def load(self, step: int) -> None:
        """Copies snapshot ``step`` into the model (a no-op when it is loaded already)."""
        if self.loaded == step:
            return
        state = self.snapshots.load(step)
        unknown = [k for k in state if k not in self._params]
        if unknown:
            raise KeyError(f"snapshot {step} names parameters the model lacks: {unknown[:5]}")
        with torch.no_grad():
            for name, value in state.items():
                self._params[name].copy_(value)
        self.loaded = step

    def _load_nearest(self, step: int) -> Optional[int]:
        """Loads the newest snapshot at or before ``step``; None when the directory holds none yet
        (the jobs wait: their leases expire and they are leased again)."""
        for _ in range(5):  # the trainer may remove a snapshot between listing and loading
            snap = self.snapshots.nearest(step)
            if snap is None:
                return None
            try:
                self.load(snap)
                return snap
            except FileNotFoundError:
                continue
        return None

    def _sketch_clips(self, ids: Sequence[str]) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        """Sketches, losses and features of ``ids`` in their order, one attributor call per group of
        clips of equal shape."""
        batch, masks = self.dataset(ids)
        if not isinstance(batch, (list, tuple)):
            return (*self.attr.sketch(batch, masks), self.attr.features(batch))
        clips = list(batch)
        if len(clips) != len(ids) or (masks is not None and len(masks) != len(ids)):
            raise ValueError(f"the dataset returned {len(clips)} clips for {len(ids)} ids")
        groups: Dict[Tuple[int, ...], List[int]] = {}
        for i, clip in enumerate(clips):
            groups.setdefault(tuple(clip.shape), []).append(i)
        sketches: List[Optional[torch.Tensor]] = [None] * len(ids)
        losses: List[Optional[torch.Tensor]] = [None] * len(ids)
        feats: List[Optional[torch.Tensor]] = [None] * len(ids)
        for rows in groups.values():
            sub = torch.stack([clips[i] for i in rows])
            sub_masks = None if masks is None else torch.stack([masks[i] for i in rows])
            sk, lo = self.attr.sketch(sub, sub_masks)
            fe = self.attr.features(sub)
            for r, i in enumerate(rows):
                sketches[i], losses[i] = sk[r], lo[r]
                feats[i] = None if fe is None else fe[r]
        features = None if feats[0] is None else torch.stack(feats)  # type: ignore[arg-type]
        return torch.stack(sketches), torch.stack(losses), features  # type: ignore[arg-type]

    def sketch_jobs(self, jobs: Sequence[Job]) -> List[SketchedJobs]:
        """The sketches of ``jobs``, one group per step (newest first), each at the newest snapshot
        at or before its step. Steps for which no snapshot exists yet are left out (unanswered)."""
        by_step: Dict[int, List[Job]] = {}
        for j in jobs:
            by_step.setdefault(j.step, []).append(j)
        out = []
        for step in sorted(by_step, reverse=True):
            group = by_step[step]
            snap = self._load_nearest(step)
            if snap is None:
                _log.info("no snapshot for step %d in %s yet", step, self.snapshots.directory)
                continue
            ids = [j.sample_id for j in group]
            sketches, losses, features = self._sketch_clips(ids)
            out.append(
                SketchedJobs(
                    step=step,
                    lr=group[0].lr,
                    ids=ids,
                    job_ids=[j.id for j in group],
                    snapshot_step=snap,
                    sketches=sketches,
                    losses=losses,
                    features=features,
                )
            )
        return out

    def refresh_queries(self, client: MotiveClient, snapshot_step: int, clips: int, step: Optional[int] = None) -> None:
        """Publishes the query sketches at the loaded snapshot when the in-process hook's rule says
        so (``query_every`` / ``query_ratio`` of :class:`MotionAttributor`), counting ``clips``; and,
        whatever the rule says, before the jobs of a ``step`` older than every set published so far
        (a backlog drained newest first): a set is in force from its step on, so without one at or
        before ``step`` those jobs would add nothing to the sums (docs/method.md)."""
        attr = self.attr
        older = step is not None and self.oldest_queries is not None and step < self.oldest_queries
        if attr._queries and (attr._query_due(snapshot_step) or older):
            qids, qsk, groups = attr.query_sketches()
            client.set_queries(qids, qsk, step=snapshot_step, groups=groups)
            attr._query_step = snapshot_step
            attr._since_refresh = 0
            self.oldest_queries = snapshot_step if self.oldest_queries is None else min(self.oldest_queries, snapshot_step)
        attr._since_refresh += clips


def lease_jobs(
    channel: grpc.Channel, run_id: str, max_jobs: int, lease_ms: int = 0, worker: str = "", token: Optional[str] = None
) -> Tuple[List[Job], int]:
    """One ``Attribution/Lease`` call: up to ``max_jobs`` jobs (newest step first) and the run's backlog."""
    call = channel.unary_unary(_LEASE, request_serializer=pb.LeaseRequest.SerializeToString, response_deserializer=pb.LeaseReply.FromString)
    reply = call(
        pb.LeaseRequest(run_id=run_id, token=token or "", worker=worker, max_jobs=int(max_jobs), lease_ms=int(lease_ms)),
        timeout=10.0,
    )
    jobs = [Job(int(j.id), int(j.step), float(j.lr), str(j.sample_id)) for j in reply.jobs]
    return jobs, int(reply.backlog)


def run_worker(
    model_factory: Callable[[], nn.Module],
    dataset: Dataset,
    address: str,
    run_id: str,
    snapshot_dir: str,
    *,
    attributor: Optional[Callable[[nn.Module], MotionAttributor]] = None,
    worker_name: str = "worker",
    max_jobs: int = 16,
    lease_ms: int = 0,
    publish_queries: bool = True,
    token: Optional[str] = None,
    dtype: str = "float16",
    poll_s: float = 0.2,
    idle_exit_s: Optional[float] = None,
    threads: Optional[int] = None,
    stop: Optional[threading.Event] = None,
    flush_timeout_s: float = 60.0,
) -> WorkerStats:
    """Leases, sketches and streams jobs of ``run_id`` until ``stop`` is set, or until no job came
    for ``idle_exit_s`` seconds (None: never idle out).

    ``model_factory()`` builds the model skeleton (its trainable parameters named as the
    trainer's); ``attributor(model)`` the attributor (default ``MotionAttributor(model)``, the
    trainer's defaults), with its query clips added (``add_queries``) when this worker publishes
    the queries. ``lease_ms``: 0 takes the daemon's ``sidecar.leaseMs``. ``threads``: torch
    intra-op threads of this process (e.g. 1 per worker on a shared CPU).
    """
    if threads is not None:
        torch.set_num_threads(int(threads))
    model = model_factory()
    attr = (attributor or MotionAttributor)(model)
    worker = SidecarWorker(attr, dataset, snapshot_dir)
    stats = WorkerStats()
    channel = grpc.insecure_channel(address)
    client: Optional[MotiveClient] = None
    idle_since = time.monotonic()
    try:
        while stop is None or not stop.is_set():
            try:
                jobs, _ = lease_jobs(channel, run_id, max_jobs, lease_ms, worker_name, token)
            except grpc.RpcError as exc:  # the daemon is away: ask again
                _log.info("lease failed: %s", exc.code())  # type: ignore[attr-defined]
                jobs = []
            if not jobs:
                if idle_exit_s is not None and time.monotonic() - idle_since > idle_exit_s:
                    break
                time.sleep(poll_s)
                continue
            idle_since = time.monotonic()
            if client is None:  # the run exists now (jobs come from its trainer)
                client = MotiveClient(
                    address, run_id, attr.dim, dtype=dtype, token=token, sketcher=attr, worker=True, apply_weights=False
                )
            started = time.perf_counter()
            groups = worker.sketch_jobs(jobs)
            if not groups:  # no snapshot yet: the leases expire and the jobs come again
                time.sleep(poll_s)
                continue
            for g in groups:
                if publish_queries:
                    worker.refresh_queries(client, g.snapshot_step, len(g.ids), step=g.step)
                client.send(g.step, g.lr, g.ids, g.sketches, g.losses, features=g.features, job_ids=g.job_ids, snapshot_step=g.snapshot_step)
                stats.jobs += len(g.ids)
                stats.batches += 1
                stats.staleness.append(abs(g.step - g.snapshot_step))
            stats.seconds_sketching += time.perf_counter() - started
    finally:
        if client is not None:
            client.flush(flush_timeout_s)
            client.close()
        channel.close()
    return stats


def _spawned(index: int, kwargs: Dict[str, Any]) -> None:
    kw = dict(kwargs)
    kw["worker_name"] = f"{kw.get('worker_name', 'worker')}-{index}"
    kw["publish_queries"] = bool(kw.get("publish_queries", True)) and index == 0
    run_worker(**kw)


def spawn_workers(n: int, join: bool = True, **kwargs: Any) -> Any:
    """Starts ``n`` workers with ``torch.multiprocessing.spawn`` (each :func:`run_worker` with
    ``kwargs``; the factories must be importable functions). Worker 0 alone publishes queries."""
    import torch.multiprocessing as mp

    return mp.spawn(_spawned, args=(kwargs,), nprocs=int(n), join=join)


def _import(spec: str) -> Any:
    module, _, name = spec.partition(":")
    if not name:
        raise ValueError(f"{spec!r}: expected module:function")
    return getattr(importlib.import_module(module), name)


def main(argv: Optional[Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(prog="python -m motive_hooks.worker", description=__doc__.split("\n\n")[0])
    p.add_argument("--factory", required=True, help="module:function building the model skeleton")
    p.add_argument("--dataset", required=True, help="module:function, ids -> (batch, masks)")
    p.add_argument("--attributor", help="module:function, model -> MotionAttributor (default: MotionAttributor(model))")
    p.add_argument("--address", default="127.0.0.1:50051")
    p.add_argument("--run", required=True)
    p.add_argument("--snapshots", required=True, help="the trainer's snapshot directory")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--max-jobs", type=int, default=16)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--token", default=os.environ.get("MOTIVE_TOKEN"))
    a = p.parse_args(argv)
    kwargs: Dict[str, Any] = dict(
        model_factory=_import(a.factory),
        dataset=_import(a.dataset),
        address=a.address,
        run_id=a.run,
        snapshot_dir=a.snapshots,
        max_jobs=a.max_jobs,
        threads=a.threads,
        token=a.token,
    )
    if a.attributor:
        kwargs["attributor"] = _import(a.attributor)
    if a.workers == 1:
        run_worker(**kwargs)
    else:
        spawn_workers(a.workers, **kwargs)


if __name__ == "__main__":
    main()
