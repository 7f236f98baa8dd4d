"""The trainer side of the ``Attach`` stream protocol without I/O (docs/wire.md).

:class:`StreamProtocol` remembers what the protocol needs across streams — the next batch sequence
number, the batches not yet acknowledged, the query-set versions and the query sets not yet
confirmed — and answers what to send again after a ``Welcome``. It opens no sockets, starts no
threads and reads no clock: :class:`~motive_hooks.client.MotiveClient` calls it under its own lock
from the caller's and its stream threads, and moves the messages it returns onto the stream, so the
rules below are tested without a daemon (``tests/test_protocol.py``).

Rules (docs/wire.md, "Ordering"):

- Batches are numbered 1, 2, 3, ... per (run, rank), continuing after the first ``Welcome``'s
  ``last_committed_seq``; a resent batch keeps its number. An ``Ack`` of ``seq``, like a
  ``Welcome``'s ``last_committed_seq``, acknowledges every batch up to ``seq`` (docs/wire.md,
  "Acknowledgement": the daemon commits a stream's batches in order and takes a seq at or below
  its last committed one for a duplicate).
- A query set is confirmed by the acknowledgement of the first batch sent after it (the daemon
  commits a stream's messages in order). After a reconnect the unconfirmed query sets, and no
  others, are sent again, in order, before the unacknowledged batches (at most
  ``max_unconfirmed_queries`` kept, the oldest forgotten first).
- The TypeScript client's core (``trainer-hooks/ts/protocol.ts``) follows the same rules; both
  replay ``schemas/stream-protocol.scenarios.json`` in their tests.
- Query-set versions go above both this client's last version and the newest version the run
  holds (``Welcome.query_version``). With several ranks the versions must agree across ranks, so
  only a single rank, or a rank whose first ``Welcome`` shows committed batches (a restarted one),
  takes the run's version as its floor.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Generic, List, Optional, Tuple, TypeVar

__all__ = ["StreamProtocol", "Resume", "MAX_UNCONFIRMED_QUERIES"]

#: Query sets kept for resend until a later batch is acked (the oldest are forgotten first).
MAX_UNCONFIRMED_QUERIES = 256

M = TypeVar("M")


@dataclass
class Resume(Generic[M]):
    """What a ``Welcome`` asks of the new stream."""

    #: Messages to send again, in order: the query sets, then the unacknowledged batches.
    messages: List[M] = field(default_factory=list)
    #: Unacknowledged batches the ``Welcome`` showed committed (now acknowledged).
    acked: int = 0
    #: Batches among ``messages``.
    resent: int = 0


class StreamProtocol(Generic[M]):
    """Sequence numbers, unacknowledged batches and query versions of one trainer rank.

    ``M`` is the message type the caller stores for resending (a ``TrainerMessage``); the protocol
    never looks inside one.
    """

    def __init__(
        self, world_size: int = 1, max_unacked: int = 1024, max_unconfirmed_queries: int = MAX_UNCONFIRMED_QUERIES
    ) -> None:
        self.world_size = int(world_size)
        self.max_unacked = int(max_unacked)
        self.max_unconfirmed_queries = int(max_unconfirmed_queries)
        #: The seq of the next batch; None until the first ``Welcome`` says where to continue.
        self.next_seq: Optional[int] = None
        #: Batches sent and not yet acknowledged, by seq, in sending order.
        self.unacked: "OrderedDict[int, M]" = OrderedDict()
        #: The highest query-set version numbered or taken from a ``Welcome`` (0: none).
        self.query_version = 0
        #: Whether a ``Welcome`` arrived at least once.
        self.welcomed = False
        self._query_floor = 0  # the highest Welcome.query_version taken (versions the run holds)
        self._sent_query_version = 0  # the version of the last query set sent
        # version -> (seq of the first batch sent after it, message)
        self._unconfirmed: "OrderedDict[int, Tuple[int, M]]" = OrderedDict()

    # -- the caller ----------------------------------------------------------------------------

    def number_queries(self) -> int:
        """A version for a new query set, to be confirmed (or raised) by :meth:`queries_sent`."""
        self.query_version += 1
        return self.query_version

    # -- the stream ----------------------------------------------------------------------------

    def welcome(self, last_committed_seq: int, query_version: int) -> Resume[M]:
        """A ``Welcome`` arrived on a new stream: what to send again on it."""
        last = int(last_committed_seq)
        first = not self.welcomed
        self.welcomed = True
        if self.world_size == 1 or (first and last > 0):
            self._query_floor = max(self._query_floor, int(query_version))
            self.query_version = max(self.query_version, self._query_floor)
        if self.next_seq is None:
            self.next_seq = last + 1
        out: Resume[M] = Resume()
        out.acked = self._ack_through(last)
        # Every query set that may have been lost, in order; a confirmed one is durable in the run.
        out.messages.extend(msg for _, msg in self._unconfirmed.values())
        out.messages.extend(self.unacked.values())
        out.resent = len(self.unacked)
        return out

    def has_room(self) -> bool:
        """Whether another batch may be sent (fewer than ``max_unacked`` unacknowledged)."""
        return len(self.unacked) < self.max_unacked

    def queries_sent(self, version: int, msg: M) -> int:
        """A query set numbered ``version`` goes on the stream now; returns the version it must
        carry: above what the run holds (its ``Welcome``) and what this client sent before."""
        if self.next_seq is None:
            raise RuntimeError("a query set is sent only after a Welcome")
        version = max(int(version), self._query_floor + 1, self._sent_query_version + 1)
        self._sent_query_version = version
        self.query_version = max(self.query_version, version)
        self._unconfirmed[version] = (self.next_seq, msg)
        while len(self._unconfirmed) > self.max_unconfirmed_queries:
            self._unconfirmed.popitem(last=False)
        return version

    def take_seq(self) -> int:
        """The seq of the next batch (the caller then builds it and calls :meth:`batch_sent`)."""
        if self.next_seq is None:
            raise RuntimeError("a batch is numbered only after a Welcome")
        seq = self.next_seq
        self.next_seq += 1
        return seq

    def batch_sent(self, seq: int, msg: M) -> None:
        """Batch ``seq`` goes on the stream; it is kept until acknowledged."""
        self.unacked[int(seq)] = msg

    def ack(self, seq: int) -> int:
        """An ``Ack`` of ``seq``: acknowledges every batch up to it; returns how many were held."""
        return self._ack_through(int(seq))

    def reject(self, seq: int) -> bool:
        """A non-fatal ``Error`` for batch ``seq``: the batch is forgotten (never resent)."""
        return self.unacked.pop(int(seq), None) is not None

    def drop_unacked(self) -> List[M]:
        """Forgets every unacknowledged batch (the client failed or closed); returns them."""
        dropped = list(self.unacked.values())
        self.unacked.clear()
        return dropped

    @property
    def unconfirmed_queries(self) -> int:
        """Query sets kept for resend."""
        return len(self._unconfirmed)

    def _ack_through(self, committed_seq: int) -> int:
        """Forgets the batches up to ``committed_seq`` and the query sets sent before them;
        returns how many batches."""
        # Both are kept in sending order, so seqs only grow from the front.
        done = 0
        while self.unacked and next(iter(self.unacked)) <= committed_seq:
            self.unacked.popitem(last=False)
            done += 1
        while self._unconfirmed and next(iter(self._unconfirmed.values()))[0] <= committed_seq:
            self._unconfirmed.popitem(last=False)
        return done
