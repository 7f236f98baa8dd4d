"""Side-car attribution, trainer side: report what each step trained on, snapshot the parameters.

In side-car mode the training loop computes no sketches. Per optimizer step it reports the step,
learning rate and sample ids to the daemon (a deferred ``SketchBatch``: a few hundred bytes), and
every ``snapshot_every`` steps it writes the trainable parameters (with LoRA: the adapter
tensors only, megabytes) to a snapshot directory. Side-car workers (:mod:`motive_hooks.worker`)
lease the reported (clip, step) jobs from the daemon, load the nearest snapshot at or before each
job's step and compute the sketches the in-process hook would have computed
(docs/wire.md and docs/method.md, "Side-car attribution").

Snapshot ``s`` holds the parameters as they are when :meth:`SidecarReporter.step` is called for
step ``s``, before ``optimizer.step()``: the weights the in-process hook would sketch step ``s``
at. A worker that uses it for a job of step ``s`` has staleness 0 and computes exactly the
in-process sketch; for a job of step ``s + d`` (``d < snapshot_every``) it uses weights ``d``
steps old.

A step's report leaves only once its snapshot, and every earlier one, is durable: with the
background writer, the reports of a step being snapshotted and of the steps after it wait behind
the write (in order), so a worker never leases a job whose snapshot is not there yet.

Snapshots are written atomically (a temporary file in the same directory, flushed, then
``os.replace``), so a worker never reads a partial one, and only the newest ``keep`` are kept: a
worker more than ``keep · snapshot_every`` steps behind finds no snapshot at or before its job's
step and uses the oldest one left (its staleness is then recorded as the distance, see
:meth:`SnapshotStore.nearest`).
"""

from __future__ import annotations

import os
import queue
import re
import threading
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn as nn

from .client import MotiveClient

__all__ = ["SidecarReporter", "SnapshotStore", "trainable_state"]

_NAME = re.compile(r"^snapshot-(\d{12})\.pt$")


def trainable_state(model: nn.Module) -> Dict[str, torch.Tensor]:
    """CPU copies of the parameters that train (``requires_grad``): with LoRA, the adapters only."""
    return {name: p.detach().to("cpu", copy=True) for name, p in model.named_parameters() if p.requires_grad}


class SnapshotStore:
    """A directory of parameter snapshots, ``snapshot-<step>.pt`` (12 digits), newest ``keep`` kept."""

    def __init__(self, directory: str, keep: int = 16) -> None:
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.directory = directory
        self.keep = int(keep)
        os.makedirs(directory, exist_ok=True)

    def path(self, step: int) -> str:
        return os.path.join(self.directory, f"snapshot-{int(step):012d}.pt")

    def write(self, step: int, state: Dict[str, torch.Tensor]) -> str:
        """Writes the snapshot of ``step`` atomically, then removes all but the newest ``keep``."""
        final = self.path(step)
        tmp = f"{final}.tmp-{os.getpid()}-{threading.get_ident()}"
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
        for old in self.steps()[: -self.keep]:
            try:
                os.remove(self.path(old))
            except FileNotFoundError:
                pass
        return final

    def steps(self) -> List[int]:
        """The steps with a snapshot, ascending."""
        out = []
        for name in os.listdir(self.directory):
            m = _NAME.match(name)
            if m:
                out.append(int(m.group(1)))
        return sorted(out)

    def nearest(self, step: int) -> Optional[int]:
        """The newest snapshot at or before ``step``; the oldest one when all are later; None when empty."""
        steps = self.steps()
        if not steps:
            return None
        before = [s for s in steps if s <= step]
        return before[-1] if before else steps[0]

    def load(self, step: int) -> Dict[str, torch.Tensor]:
        with open(self.path(step), "rb") as f:
            state: Dict[str, torch.Tensor] = torch.load(f, map_location="cpu")
        return state


class SidecarReporter:
    """The training loop's side of side-car attribution: reports each step, snapshots every N.

    Args:
        model: the model being trained (its ``requires_grad`` parameters are snapshotted).
        client: a :class:`MotiveClient` of this rank (its Hello carries the projection identity
            of the attributor the workers use, ``sketcher=attr``); None: snapshots only (a rank
            whose parameters another rank snapshots still reports, with its own reporter).
        snapshot_dir: where snapshots go (local or shared storage the workers read).
        snapshot_every: snapshot every N optimizer steps (default 1: staleness 0 when workers
            keep up).
        keep: snapshots kept (default 16).
        state_fn: what to snapshot (default :func:`trainable_state`).
        background: write snapshots from a background thread (default True): the step pays for
            the copy of the tensors to the CPU only. At most one snapshot waits; a step that
            finds one still waiting waits for it, so snapshots are never skipped. A step's
            report is never sent before the snapshot it may be sketched at is durable: while a
            snapshot is being written, the reports of its step and of the steps after it wait
            in order behind it and the writer thread sends them once it is renamed into place
            (a worker would otherwise sketch them at an older snapshot, or find none).

    Call :meth:`step` where the in-process hook's ``attr.step`` goes: after ``loss.backward()``,
    before ``optimizer.step()``.
    """

    def __init__(
        self,
        model: nn.Module,
        client: Optional[MotiveClient],
        snapshot_dir: str,
        snapshot_every: int = 1,
        keep: int = 16,
        state_fn: Optional[Callable[[nn.Module], Dict[str, torch.Tensor]]] = None,
        background: bool = True,
    ) -> None:
        self.model = model
        self.client = client
        self.snapshots = SnapshotStore(snapshot_dir, keep=keep)
        self.snapshot_every = max(1, int(snapshot_every))
        self.state_fn = state_fn or trainable_state
        self._queue: "queue.Queue[Optional[tuple]]" = queue.Queue()
        self._slots = threading.BoundedSemaphore(2)  # one snapshot written, one waiting
        self._lock = threading.Lock()
        self._inflight = 0  # snapshots and reports queued for the writer, not yet done
        self._error: Optional[BaseException] = None
        self._snapshot_step: Optional[int] = None
        self._thread: Optional[threading.Thread] = None
        if background:
            self._thread = threading.Thread(target=self._write_loop, name="motive-snapshots", daemon=True)
            self._thread.start()

    def due(self, step: int) -> bool:
        """Whether :meth:`step` snapshots optimizer step ``step`` (once per step: with gradient
        accumulation the micro-batches of a step share its snapshot)."""
        return step % self.snapshot_every == 0 and step != self._snapshot_step

    def step(self, step: int, lr: float, ids: Sequence[str]) -> bool:
        """Snapshots the parameters when due, then reports (step, lr, ids). Returns the report's
        result (False: dropped, see :meth:`MotiveClient.send`); True for a report that waits for
        the background writer (a drop is then counted in the client's stats)."""
        if self._thread is not None and self._error is not None:
            raise RuntimeError(f"snapshot writer failed: {self._error!r}")
        if self.due(step):
            self._snapshot_step = step
            state = self.state_fn(self.model)
            if self._thread is None:
                self.snapshots.write(step, state)
            else:
                self._slots.acquire()
                self._put(("snapshot", step, state))
        if self.client is None:
            return True
        if self._thread is not None:
            with self._lock:
                if self._inflight > 0:  # behind a snapshot not yet durable: keep the order
                    self._inflight += 1
                    self._queue.put(("report", step, lr, list(ids)))
                    return True
        return self.client.report(step, lr, ids)

    def _put(self, item: tuple) -> None:
        with self._lock:
            self._inflight += 1
            self._queue.put(item)

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if item[0] == "snapshot":
                    try:
                        self.snapshots.write(item[1], item[2])
                    finally:
                        self._slots.release()
                elif self.client is not None:
                    self.client.report(item[1], item[2], item[3])
            except BaseException as exc:  # reported on the next step
                self._error = exc
            finally:
                if item is not None:
                    with self._lock:
                        self._inflight -= 1
                self._queue.task_done()

    def flush(self) -> None:
        """Waits until every snapshot taken so far is written."""
        if self._thread is not None:
            self._queue.join()
            if self._error is not None:
                raise RuntimeError(f"snapshot writer failed: {self._error!r}")

    def close(self) -> None:
        """Writes what waits and stops the writer thread (the client is the caller's to close)."""
        if self._thread is not None:
            self.flush()
            self._queue.put(None)
            self._thread.join()
            self._thread = None
