"""What a :class:`~motive_hooks.client.MotiveClient`'s caller and its stream threads share.

One lock guards all of it: the send queue (rows and query sets not yet on a stream), the stream
protocol core (``protocol.py``: sequence numbers, unacknowledged batches, query versions), the
live weights, the counters and the client's fate (closing, failed). The caller's methods
(``client.py``) and the sender and reader threads (``_transport.py``) take it for short sections
and wait on its condition; nothing here does I/O.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Deque, Dict, List, Optional, Union

from ._proto import motive_pb2 as pb
from .protocol import MAX_UNCONFIRMED_QUERIES, StreamProtocol

__all__ = ["ClientStats", "MotiveClientError", "ClientState", "Rows", "Queries"]


class MotiveClientError(RuntimeError):
    """Raised by a :class:`MotiveClient` built with ``raise_on_error=True`` (never otherwise)."""


@dataclass
class ClientStats:
    """Counters of a :class:`MotiveClient` (a snapshot; all counts since construction)."""

    sent_batches: int = 0
    acked_batches: int = 0
    resent_batches: int = 0
    rejected_batches: int = 0
    dropped_rows: int = 0
    dropped_sends: int = 0
    nonfinite_rows: int = 0
    reconnects: int = 0
    weight_updates: int = 0
    unacked_batches: int = 0
    queued_sends: int = 0
    state: str = "starting"
    last_error: Optional[str] = None
    errors: List[str] = field(default_factory=list)


@dataclass
class Rows:
    """One ``send`` (or ``report``) call's rows, queued until the sender packs them into a batch."""

    step: int
    lr: float
    ids: List[str]
    data: bytes
    losses: Optional[List[float]]
    features: Optional[List[float]] = None  # row-major [len(ids) x len(feature_names)]
    deferred: bool = False  # a side-car report: ids alone, workers attribute them
    job_ids: Optional[List[int]] = None  # a worker's rows: the job each answers
    snapshot_step: int = 0  # a worker's rows: the parameter snapshot they were sketched at


@dataclass
class Queries:
    """A query set queued ahead of later rows; its version is settled when it is sent."""

    msg: "pb.QuerySet"


class ClientState:
    """The shared state of one client; every field is guarded by :attr:`lock` (:attr:`cv`)."""

    def __init__(self, world_size: int, max_unacked: int) -> None:
        self.lock = threading.Lock()
        self.cv = threading.Condition(self.lock)
        #: Work not yet on a stream, in order: rows of ``send``/``report`` calls and query sets.
        self.pending: Deque[Union[Rows, Queries]] = deque()
        #: ``Rows`` entries in :attr:`pending` (the send queue's fill, in calls).
        self.pending_rows = 0
        self.protocol: StreamProtocol[Any] = StreamProtocol(
            world_size=world_size, max_unacked=max_unacked, max_unconfirmed_queries=MAX_UNCONFIRMED_QUERIES
        )
        self.last_step = -1
        self.weights: Dict[str, float] = {}
        self.weights_version = 0
        self.acked_weights_version = 0
        self.stats = ClientStats()
        self.closing = False
        self.failed = False
        #: The sender holds items taken from :attr:`pending` but not yet numbered and kept.
        self.in_flight = False
        #: The daemon's reason for refusing the Hello (or why the sender stopped).
        self.refusal: Optional[str] = None

    def busy_locked(self) -> bool:
        """Whether anything queued or sent still waits for its Ack."""
        return bool(self.pending or self.protocol.unacked or self.in_flight)

    def set_state(self, state: str) -> None:
        with self.lock:
            self.stats.state = state

    def note_error(self, text: str) -> None:
        """Keeps ``text`` as the last error and among the latest 20."""
        with self.lock:
            self.stats.last_error = text
            self.stats.errors.append(text)
            del self.stats.errors[:-20]

    def fail_locked(self, refusal: Optional[str] = None) -> None:
        """The client is done for (refused, or its sender stopped): drops what it holds."""
        self.failed = True
        if refusal is not None:
            self.refusal = refusal
        self.stats.state = "failed"
        self.drop_all_locked()
        self.cv.notify_all()

    def drop_all_locked(self) -> None:
        """Counts everything queued or unacknowledged as lost and forgets it."""
        for item in self.pending:
            if isinstance(item, Rows):
                self.stats.dropped_rows += len(item.ids)
                self.stats.dropped_sends += 1
        self.pending.clear()
        self.pending_rows = 0
        for msg in self.protocol.drop_unacked():
            self.stats.dropped_rows += len(msg.batch.sample_ids)

    def apply_weights_locked(self, wu: "pb.WeightUpdate") -> None:
        """A ``WeightUpdate``: a full snapshot replaces the weights, a delta amends them."""
        if wu.full:
            self.weights = {}
        for sid, w in zip(wu.sample_ids, wu.weights):
            self.weights[sid] = float(w)
        self.weights_version = int(wu.version)
        self.stats.weight_updates += 1

    def snapshot_stats(self) -> ClientStats:
        with self.lock:
            s = ClientStats(**{k: getattr(self.stats, k) for k in self.stats.__dataclass_fields__})
            s.errors = list(self.stats.errors)
            s.unacked_batches = len(self.protocol.unacked)
            s.queued_sends = self.pending_rows
            return s
