"""gRPC streaming client for the Motive daemon (``motive.v1.Attribution/Attach``).

A background thread owns the stream. ``send`` only encodes the sketches and appends them to a
bounded queue; the thread coalesces queued rows of the same step into ``SketchBatch`` messages,
numbers them (``seq`` 1, 2, 3, ... per run and rank), keeps every batch until the daemon acks it
(acks come after durable commit) and, after a reconnect, drops what ``Welcome.last_committed_seq``
covers and resends the rest in order, after the latest ``QuerySet``. A daemon outage never raises
into the training loop (unless ``raise_on_error=True``): when the queue is full, ``send`` waits at
most ``block_timeout_s`` (policy ``"block"``) or not at all (``"drop"``) and then drops the rows and
counts them; ``close`` returns within its timeout even when the daemon is gone.

Query sets are numbered above both the client's own last version and ``Welcome.query_version``
(the newest version the run already holds), so a restarted trainer's refresh is not ignored by the
daemon as a duplicate version. With ``world_size > 1`` the ranks must agree on versions, so a fresh
rank numbers 1, 2, ... and only a rank with committed batches (a restarted one) takes the run's
newest version from its first ``Welcome`` as its base; ranks restarted together must all attach
(see ``MotiveClient.wait_attached``) before any of them publishes a query set.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Deque, Dict, Iterator, List, Mapping, Optional, Sequence, Union

import grpc
import numpy as np
import torch

from ._proto import motive_pb2 as pb
from ._errors import RETRYABLE_CODES
from .protocol import MAX_UNCONFIRMED_QUERIES, StreamProtocol
from .sketch import PROJECTION_KIND, GradientSketcher

__all__ = ["MotiveClient", "MotiveClientError", "ClientStats", "CLIENT_VERSION"]

#: Version reported in ``Hello.client`` as ``motive-hooks/<version>``.
CLIENT_VERSION = "0.1.0"

_METHOD = "/motive.v1.Attribution/Attach"
_log = logging.getLogger("motive_hooks.client")

ArrayLike = Union[torch.Tensor, np.ndarray, Sequence[Sequence[float]]]


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
class _Rows:
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
class _Queries:
    msg: "pb.QuerySet"


class _Conn:
    """One attempt at a stream: its outbound queue and its fate."""

    def __init__(self) -> None:
        self.out: Deque[Optional[Any]] = deque()
        self.out_cv = threading.Condition()
        self.welcome: Optional["pb.Welcome"] = None
        self.welcomed = threading.Event()
        self.dead = threading.Event()
        self.refused = False

    def put(self, msg: Optional[Any]) -> None:
        with self.out_cv:
            self.out.append(msg)
            self.out_cv.notify()

    def requests(self, hello: Any) -> Iterator[Any]:
        yield hello
        while True:
            with self.out_cv:
                while not self.out:
                    self.out_cv.wait()
                item = self.out.popleft()
            if item is None:
                return
            yield item


class MotiveClient:
    """Streams sketches of one trainer rank to the daemon and receives its sample weights.

    Args:
        address: ``host:port`` of the daemon's gRPC listener (default port 50051).
        run_id: the run; all ranks of a run use the same id.
        dim: sketch length k.
        rank, world_size: this process's rank and the number of ranks.
        dtype: ``"float16"`` or ``"float32"``: the wire encoding of sketch rows.
        token: bearer token for a daemon that requires one (``Hello.token``).
        sketcher: what the Hello announces: the :class:`MotionAttributor` (its projection and its
            motion-check names) or a :class:`GradientSketcher` (kind, seed, fingerprint); without
            it, ``seed`` and ``fingerprint`` are used.
        seed, fingerprint, projection_kind: the projection identity when no sketcher is given.
        apply_weights: ask the daemon for ``WeightUpdate`` messages (default True).
        feature_names: names of the per-clip features (model-free "motion checks", higher =
            more suspicious) that ``send(..., features=...)`` carries; at most 32, each 1-64
            characters, unique. The first Hello of a run that names features fixes them for the
            run; a later Hello with other names is refused (``MOTIVE_INGEST_FEATURES_MISMATCH``).
            None (default): the sketcher's ``feature_names`` (a :class:`MotionAttributor` has
            them), else no features.
        policy: ``"block"`` (wait up to ``block_timeout_s`` for queue room, then drop) or
            ``"drop"`` (drop at once) when the queue is full.
        block_timeout_s: longest a ``send`` may stall training, seconds (default 30).
        max_queue: capacity of the send queue, in ``send`` calls (default 1024).
        max_unacked: batches kept for resend until acked (default 1024); at the cap the sender
            waits for acks and the queue fills.
        max_batch_rows: most rows coalesced into one ``SketchBatch`` (default 4096).
        connect_timeout_s: wait for ``Welcome`` after opening a stream, seconds (default 10).
        backoff_s: reconnect delay after a failed stream, seconds, doubling up to
            ``max_backoff_s`` (defaults 0.1 and 2).
        tls, tls_root_certificates: connect over TLS (a daemon with ``tls`` configured), trusting
            the PEM ``tls_root_certificates`` or, when None, the system roots.
        worker: a side-car worker's client (docs/wire.md, "Side-car attribution"): its rows name
            the jobs they answer (``send(..., job_ids=, snapshot_step=)``); rank and world size
            do not apply, and after a reconnect it resends every unacknowledged batch (the daemon
            counts each job once).
        raise_on_error: False (default): no method but the constructor ever raises into the
            training loop; failures are logged, counted in :meth:`stats` and reported through
            return values. True: ``send``, ``set_queries`` and ``flush`` raise
            :class:`MotiveClientError` when the daemon refused the Hello, the client is closed or
            rows are dropped, and ``ValueError`` on malformed arguments.

    The constructor raises ``ValueError`` on an invalid configuration (dtype, policy, dim).
    """

    def __init__(
        self,
        address: str,
        run_id: str,
        dim: int,
        rank: int = 0,
        world_size: int = 1,
        dtype: str = "float16",
        token: Optional[str] = None,
        *,
        sketcher: Optional[Any] = None,
        seed: int = 0,
        fingerprint: str = "",
        projection_kind: str = PROJECTION_KIND,
        apply_weights: bool = True,
        feature_names: Optional[Sequence[str]] = None,
        policy: str = "block",
        block_timeout_s: float = 30.0,
        max_queue: int = 1024,
        max_unacked: int = 1024,
        max_batch_rows: int = 4096,
        connect_timeout_s: float = 10.0,
        backoff_s: float = 0.1,
        max_backoff_s: float = 2.0,
        raise_on_error: bool = False,
        tls_root_certificates: Optional[bytes] = None,
        tls: bool = False,
        worker: bool = False,
    ) -> None:
        if dtype not in ("float16", "float32"):
            raise ValueError(f"dtype must be 'float16' or 'float32', got {dtype!r}")
        if policy not in ("block", "drop"):
            raise ValueError(f"policy must be 'block' or 'drop', got {policy!r}")
        if feature_names is None and sketcher is not None:
            feature_names = getattr(sketcher, "feature_names", None)
        names = [str(n) for n in feature_names] if feature_names is not None else []
        if len(names) > 32 or len(set(names)) != len(names) or any(not 0 < len(n) <= 64 for n in names):
            raise ValueError("feature_names must be at most 32 unique names of 1-64 characters")
        self.feature_names: List[str] = names
        if sketcher is not None:
            if sketcher.dim != dim:
                raise ValueError(f"dim={dim} differs from the sketcher's dim={sketcher.dim}")
            seed, fingerprint, projection_kind = sketcher.seed, sketcher.fingerprint, sketcher.kind
        self.address = address
        self.run_id = run_id
        self.dim = int(dim)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.dtype = dtype
        self._np_dtype = np.dtype("<f2") if dtype == "float16" else np.dtype("<f4")
        self.policy = policy
        self.block_timeout_s = float(block_timeout_s)
        self.max_queue = int(max_queue)
        self.max_unacked = int(max_unacked)
        self.max_batch_rows = int(max_batch_rows)
        self.connect_timeout_s = float(connect_timeout_s)
        self.backoff_s = float(backoff_s)
        self.max_backoff_s = float(max_backoff_s)
        self.raise_on_error = bool(raise_on_error)
        self._tls = bool(tls) or tls_root_certificates is not None
        self._tls_root_certificates = tls_root_certificates
        self._hello = pb.TrainerMessage(
            hello=pb.Hello(
                run_id=run_id,
                rank=self.rank,
                world_size=self.world_size,
                projection=pb.Projection(kind=projection_kind, seed=int(seed), dim=self.dim, fingerprint=fingerprint),
                dtype=pb.FLOAT16 if dtype == "float16" else pb.FLOAT32,
                token=token or "",
                client=f"motive-hooks/{CLIENT_VERSION}",
                apply_weights=bool(apply_weights),
                feature_names=names,
                worker=bool(worker),
            )
        )
        self.worker = bool(worker)
        self._lock = threading.Lock()
        self._cv = threading.Condition(self._lock)
        self._pending: Deque[Union[_Rows, _Queries]] = deque()
        self._pending_rows = 0
        # Sequence numbers, unacknowledged batches and query versions (protocol.py); guarded by _lock.
        self._protocol: StreamProtocol[Any] = StreamProtocol(
            world_size=self.world_size, max_unacked=self.max_unacked, max_unconfirmed_queries=MAX_UNCONFIRMED_QUERIES
        )
        self._last_step = -1
        self._weights: Dict[str, float] = {}
        self._weights_version = 0
        self._acked_weights_version = 0
        self._stats = ClientStats()
        self._closing = False
        self._failed = False
        self._in_flight = False  # the sender holds items taken from _pending but not yet numbered
        self._refusal: Optional[str] = None  # the daemon's reason for refusing the Hello
        self._conn: Optional[_Conn] = None
        self._channel_lock = threading.Lock()
        self._channel: Any = None
        self._attach: Any = None
        self._open_channel()
        self._thread = threading.Thread(target=self._run, name=f"motive-client-{run_id}-{rank}", daemon=True)
        self._thread.start()

    def _open_channel(self) -> None:
        """(Re)creates the gRPC channel, closing the previous one.

        A channel whose connection failed keeps its own reconnect backoff; a fresh channel
        connects at once, so a restarted daemon is found again within ``max_backoff_s``.
        """
        options = [
            ("grpc.initial_reconnect_backoff_ms", max(10, int(self.backoff_s * 1000))),
            ("grpc.max_reconnect_backoff_ms", max(10, int(self.max_backoff_s * 1000))),
            ("grpc.keepalive_time_ms", 10000),
            ("grpc.keepalive_timeout_ms", 5000),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
        ]
        if self._tls:
            credentials = grpc.ssl_channel_credentials(root_certificates=self._tls_root_certificates)
            channel = grpc.secure_channel(self.address, credentials, options=options)
        else:
            channel = grpc.insecure_channel(self.address, options=options)
        attach = channel.stream_stream(
            _METHOD,
            request_serializer=pb.TrainerMessage.SerializeToString,
            response_deserializer=pb.DaemonMessage.FromString,
        )
        with self._channel_lock:
            if self._closing:  # close() has taken (or will take) the current channel down
                old = channel
            else:
                old, self._channel, self._attach = self._channel, channel, attach
        if old is not None:
            try:
                old.close()
            except Exception as exc:
                self._note_error(repr(exc))

    # -- public API -----------------------------------------------------------------------------

    def _encode(self, sketches: ArrayLike, n: int) -> bytes:
        if isinstance(sketches, torch.Tensor):
            arr = sketches.detach().to(device="cpu", dtype=torch.float32).numpy()
        else:
            arr = np.asarray(sketches, dtype=np.float32)
        if arr.shape != (n, self.dim):
            raise ValueError(f"sketches must be [{n} x {self.dim}], got {list(arr.shape)}")
        out = arr.astype(self._np_dtype)
        bad = ~np.isfinite(out).all(axis=1)
        if bad.any():
            out[bad] = 0
            with self._lock:
                self._stats.nonfinite_rows += int(bad.sum())
        return np.ascontiguousarray(out).tobytes()

    def set_queries(
        self,
        ids: Sequence[str],
        sketches: ArrayLike,
        step: Optional[int] = None,
        groups: Optional[Sequence[str]] = None,
    ) -> int:
        """Publishes a new QuerySet version (in force for batches with ``step >= step``).

        ``step`` defaults to the step after the last ``send``. It is queued ahead of any later
        ``send`` and is never dropped. Returns the version it is numbered with now: one above
        both this client's last version and the newest version the run held at the last
        ``Welcome``. If a later ``Welcome`` shows the run already holds that version (a restarted
        trainer that published before attaching), it is renumbered above it when sent;
        :attr:`query_version` tells the final number (with ``world_size > 1`` only the first
        ``Welcome`` of a rank with history counts). Returns 0 when nothing was queued (the
        client is closed or refused, or the arguments are malformed and ``raise_on_error`` is
        False).
        """
        try:
            ids = [str(i) for i in ids]
            data = self._encode(sketches, len(ids))
            group_list = [str(g) for g in groups] if groups is not None else []
            step = None if step is None else int(step)
        except Exception as exc:
            return self._bad_call("set_queries", exc, 0)
        with self._cv:
            if self._failed or self._closing:
                reason = self._refusal if self._failed else "the client is closed"
                if self.raise_on_error:
                    raise MotiveClientError(f"query set not queued: {reason}")
                return 0
            if step is None:
                step = self._last_step + 1
            version = self._protocol.number_queries()
            msg = pb.TrainerMessage(
                queries=pb.QuerySet(
                    version=version,
                    step=max(0, step),
                    query_ids=ids,
                    groups=group_list,
                    sketches=data,
                )
            )
            self._pending.append(_Queries(msg))
            self._cv.notify_all()
            return version

    def wait_attached(self, timeout_s: float = 10.0) -> bool:
        """Waits up to ``timeout_s`` seconds for the first ``Welcome``; False on timeout/refusal.

        Ranks of a restarted multi-rank run call it (and a barrier) before publishing queries.
        """
        deadline = time.monotonic() + max(0.0, float(timeout_s))
        with self._cv:
            while not self._protocol.welcomed and not self._failed and not self._closing:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(min(left, 0.05))
            return self._protocol.welcomed and not self._failed

    @property
    def query_version(self) -> int:
        """The highest QuerySet version this client numbered or saw in a ``Welcome`` (0: none)."""
        with self._lock:
            return self._protocol.query_version

    def _bad_call(self, what: str, exc: BaseException, result: Any) -> Any:
        """Reports a malformed call: raises under ``raise_on_error``, else logs and counts it."""
        if self.raise_on_error:
            if isinstance(exc, ValueError):
                raise exc
            raise MotiveClientError(f"{what}: {exc!r}") from exc
        _log.warning("motive client %s ignored: %r", what, exc)
        self._note_error(f"{what}: {exc!r}")
        return result

    def send(
        self,
        step: int,
        lr: float,
        ids: Sequence[str],
        sketches: ArrayLike,
        losses: Optional[Sequence[float]] = None,
        features: Optional[ArrayLike] = None,
        *,
        job_ids: Optional[Sequence[int]] = None,
        snapshot_step: int = 0,
    ) -> bool:
        """Queues one row per sample for optimizer step ``step`` with learning rate ``lr``.

        A worker's client (``worker=True``) also names the job each row answers (``job_ids``)
        and the step of the parameter snapshot it sketched them at (``snapshot_step``).

        ``features``, when given, is ``[len(ids) x len(feature_names)]`` finite values (a tensor,
        array or nested sequence): the clips' motion checks, stored per sample (the latest wins).

        Stalls for at most ``block_timeout_s`` seconds (policy ``"block"``) or not at all
        (``"drop"``) when the queue is full. Returns False when the rows were dropped (queue
        full past the policy's bound, client closed or refused by the daemon, malformed
        arguments); the drop is counted in :meth:`stats`. Under ``raise_on_error`` a drop raises
        :class:`MotiveClientError` instead.
        """
        try:
            ids = [str(i) for i in ids]
            data = self._encode(sketches, len(ids))
            loss_list: Optional[List[float]] = None
            if losses is not None:
                raw = losses.detach().cpu().tolist() if isinstance(losses, torch.Tensor) else losses
                loss_list = [float(v) for v in raw]
            rows = _Rows(int(step), float(lr), ids, data, loss_list, self._features(features, len(ids)))
            if self.worker != (job_ids is not None):
                raise ValueError("job_ids go with a worker's client (worker=True), and only there")
            if job_ids is not None:
                rows.job_ids = [int(j) for j in job_ids]
                rows.snapshot_step = int(snapshot_step)
                if len(rows.job_ids) != len(ids):
                    raise ValueError(f"{len(rows.job_ids)} job ids for {len(ids)} samples")
        except Exception as exc:
            return bool(self._bad_call("send", exc, False))
        return self._enqueue(rows)

    def report(self, step: int, lr: float, ids: Sequence[str]) -> bool:
        """Side-car mode: reports that optimizer step ``step`` (learning rate ``lr``) trained on
        ``ids``; side-car workers sketch them later (docs/wire.md, "Side-car attribution").

        Costs the training loop what queuing the ids costs; the sender thread sends it as a
        deferred ``SketchBatch``, deduplicated by its seq like any batch. Returns as :meth:`send`.
        """
        try:
            if self.worker:
                raise ValueError("a worker's client does not report training steps")
            rows = _Rows(int(step), float(lr), [str(i) for i in ids], b"", None, None, deferred=True)
            if not rows.ids:
                raise ValueError("no sample ids")
        except Exception as exc:
            return bool(self._bad_call("report", exc, False))
        return self._enqueue(rows)

    def _enqueue(self, rows: _Rows) -> bool:
        ids, step = rows.ids, rows.step
        deadline = time.monotonic() + (self.block_timeout_s if self.policy == "block" else 0.0)
        with self._cv:
            self._last_step = max(self._last_step, rows.step)
            while not self._failed and not self._closing and self._pending_rows >= self.max_queue:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cv.wait(left)
            if self._failed or self._closing or self._pending_rows >= self.max_queue:
                self._stats.dropped_rows += len(ids)
                self._stats.dropped_sends += 1
                if self.raise_on_error:
                    reason = (
                        self._refusal
                        if self._failed
                        else "the client is closed" if self._closing else "the send queue is full"
                    )
                    raise MotiveClientError(f"{len(ids)} rows of step {step} dropped: {reason}")
                return False
            self._pending.append(rows)
            self._pending_rows += 1
            self._cv.notify_all()
            return True

    def _features(self, features: Optional[ArrayLike], n: int) -> Optional[List[float]]:
        if features is None:
            return None
        nf = len(self.feature_names)
        if nf == 0:
            raise ValueError("features given, but the client was made without feature_names")
        if isinstance(features, torch.Tensor):
            features = features.detach().to("cpu", torch.float64).numpy()
        arr = np.asarray(features, dtype=np.float64)
        if arr.shape != (n, nf):
            raise ValueError(f"features have shape {arr.shape}, expected ({n}, {nf})")
        if not np.isfinite(arr).all():
            raise ValueError("features hold NaN or Inf")
        return [float(v) for v in arr.reshape(-1)]

    def flush(self, timeout_s: Optional[float] = None) -> bool:
        """Waits up to ``timeout_s`` seconds (None: no limit) until everything queued is acked.

        Returns False on timeout or when the daemon refused the Hello (under ``raise_on_error``
        a refusal raises :class:`MotiveClientError`).
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cv:
            while self._pending or self._protocol.unacked or self._in_flight:
                if self._failed:
                    break
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cv.wait(0.05 if left is None else min(left, 0.05))
            if self._failed and self.raise_on_error:
                raise MotiveClientError(f"the daemon refused this client: {self._refusal}")
            return not self._failed

    def close(self, timeout_s: float = 10.0) -> None:
        """Flushes, ends the stream and stops the thread, all within about ``timeout_s`` seconds.

        Never raises and never waits longer than ``timeout_s`` plus a fraction of a second, even
        when the daemon is gone. Rows not acked by then are counted in ``stats().dropped_rows``.
        Calling it again is harmless.
        """
        deadline = time.monotonic() + max(0.0, float(timeout_s))
        try:
            with self._cv:
                busy = bool(self._pending or self._protocol.unacked or self._in_flight) and not self._failed
            if busy:
                self.flush(max(0.0, deadline - time.monotonic() - 0.2))
        except Exception as exc:  # close must not raise into the training loop
            self._note_error(repr(exc))
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        conn = self._conn
        if conn is not None:
            conn.dead.set()
            conn.put(None)
        self._thread.join(timeout=max(0.2, deadline - time.monotonic()))
        with self._channel_lock:
            channel = self._channel
        try:
            channel.close()
        except Exception as exc:
            self._note_error(repr(exc))
        with self._cv:
            self._drop_all_locked()  # whatever did not reach a durable commit is counted as lost
            if self._stats.state not in ("failed", "closed"):
                self._stats.state = "closed"
            self._cv.notify_all()

    def __enter__(self) -> "MotiveClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def weights(self) -> Dict[str, float]:
        """The daemon's current non-default weights ``{sample_id: w}``; unlisted samples have 1."""
        with self._lock:
            return dict(self._weights)

    def weight(self, sample_id: str) -> float:
        """The current weight of one sample (1 when the daemon has not set one)."""
        with self._lock:
            return self._weights.get(str(sample_id), 1.0)

    @property
    def weights_version(self) -> int:
        """Version of the last applied ``WeightUpdate`` (0 before the first)."""
        with self._lock:
            return self._weights_version

    @property
    def acked_weights_version(self) -> int:
        """The weights version this client held when the latest ack arrived.

        The daemon sends a batch's ack before the ``WeightUpdate`` that carries its weights (with
        ``weights.batchUpdates`` both leave together, right after the commit), so an update that
        reflects the acked batches is newer than this: wait for it with
        ``wait_weights(acked_weights_version, ...)``. By the time ``flush`` returns,
        :attr:`weights_version` may already include it.
        """
        with self._lock:
            return self._acked_weights_version

    def wait_weights(self, after_version: int, timeout_s: float) -> bool:
        """Waits up to ``timeout_s`` seconds for a ``WeightUpdate`` newer than ``after_version``.

        For a trainer that gates a step on the daemon's verdict: flush the step's sketches (their
        ack means they are committed), then wait here with ``after_version`` =
        :attr:`acked_weights_version` for the update that follows the commit (with the daemon's
        ``weights.batchUpdates``, on by default, the batch's own weights, sent right after its
        ack; otherwise the next recompute), then read :meth:`loss_weights`. Returns at once if
        that update already arrived. The daemon pushes an update only when some weight moved, so
        False (timeout) can also mean "nothing changed".
        """
        deadline = time.monotonic() + max(0.0, float(timeout_s))
        with self._cv:
            while self._weights_version <= after_version and not self._failed and not self._closing:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(left)
            return self._weights_version > after_version

    def loss_weights(self, ids: Sequence[str], device: Optional[torch.device] = None) -> torch.Tensor:
        """Per-sample loss weights ``[len(ids)]`` float32 for loss reweighting (1 by default)."""
        with self._lock:
            w = [self._weights.get(str(i), 1.0) for i in ids]
        return torch.tensor(w, dtype=torch.float32, device=device)

    def stats(self) -> ClientStats:
        """A snapshot of the counters."""
        with self._lock:
            s = ClientStats(**{k: getattr(self._stats, k) for k in self._stats.__dataclass_fields__})
            s.errors = list(self._stats.errors)
            s.unacked_batches = len(self._protocol.unacked)
            s.queued_sends = self._pending_rows
            return s

    # -- background thread ----------------------------------------------------------------------

    def _set_state(self, state: str) -> None:
        with self._lock:
            self._stats.state = state

    def _run(self) -> None:
        """The sender thread. If it ever fails unexpectedly, the client turns ``failed`` so that
        ``send`` returns at once instead of waiting for a queue nobody drains."""
        try:
            self._run_streams()
        except BaseException as exc:  # pragma: no cover - a bug guard, not an expected path
            _log.error("motive client sender stopped: %r", exc)
            self._note_error(f"sender stopped: {exc!r}")
            with self._cv:
                self._failed = True
                self._refusal = f"sender stopped: {exc!r}"
                self._stats.state = "failed"
                self._drop_all_locked()
                self._cv.notify_all()

    def _run_streams(self) -> None:
        """Opens streams until closed or refused, backing off between failed attempts."""
        backoff = self.backoff_s
        while True:
            with self._lock:
                if self._closing or self._failed:
                    break
            conn = _Conn()
            self._conn = conn
            self._set_state("connecting")
            ok = False
            try:
                ok = self._serve(conn)
            except Exception as exc:  # the training loop must never see a sender failure
                _log.warning("motive client stream failed: %r", exc)
                self._note_error(repr(exc))
            finally:
                conn.dead.set()
                conn.put(None)
            if conn.refused:
                with self._cv:
                    self._failed = True
                    self._stats.state = "failed"
                    self._drop_all_locked()
                    self._cv.notify_all()
                break
            with self._lock:
                if self._closing:
                    break
                self._stats.reconnects += 1
                self._stats.state = "reconnecting"
            if ok:
                backoff = self.backoff_s
            else:  # no Welcome: start the next attempt on a fresh connection
                self._open_channel()
            with self._cv:
                self._cv.wait_for(lambda: self._closing, timeout=backoff)
            backoff = min(self.max_backoff_s, backoff * 2)
        with self._lock:
            if not self._failed:
                self._stats.state = "closed"

    def _note_error(self, text: str) -> None:
        with self._lock:
            self._stats.last_error = text
            self._stats.errors.append(text)
            del self._stats.errors[:-20]

    def _drop_all_locked(self) -> None:
        for item in self._pending:
            if isinstance(item, _Rows):
                self._stats.dropped_rows += len(item.ids)
                self._stats.dropped_sends += 1
        self._pending.clear()
        self._pending_rows = 0
        for msg in self._protocol.drop_unacked():
            self._stats.dropped_rows += len(msg.batch.sample_ids)

    def _read(self, conn: _Conn, call: Any) -> None:
        try:
            for msg in call:
                self._on_message(conn, msg)
        except grpc.RpcError as exc:
            if not conn.dead.is_set():
                self._note_error(f"{exc.code()}: {exc.details()}")  # type: ignore[attr-defined]
        except Exception as exc:
            self._note_error(repr(exc))
        finally:
            conn.dead.set()
            with self._cv:
                self._cv.notify_all()

    def _on_message(self, conn: _Conn, msg: Any) -> None:
        kind = msg.WhichOneof("body")
        if kind == "welcome":
            conn.welcome = msg.welcome
            conn.welcomed.set()
            with self._cv:
                self._cv.notify_all()
        elif kind == "ack":
            with self._cv:
                if self._protocol.ack(int(msg.ack.seq)):
                    self._stats.acked_batches += 1
                self._acked_weights_version = self._weights_version
                self._cv.notify_all()
        elif kind == "weights":
            wu = msg.weights
            with self._cv:
                if wu.full:
                    self._weights = {}
                for sid, w in zip(wu.sample_ids, wu.weights):
                    self._weights[sid] = float(w)
                self._weights_version = int(wu.version)
                self._stats.weight_updates += 1
                self._cv.notify_all()
        elif kind == "error":
            err = msg.error
            text = f"{err.code}: {err.message}"
            self._note_error(text)
            if err.fatal:
                _log.warning("motive daemon closed the stream: %s", text)
                # A fatal error the registry does not mark retryable ends the client, before or
                # after Welcome: reconnecting after MOTIVE_INGEST_RUN_DELETED would create the run
                # again, after a refused Hello would be refused again.
                conn.refused = err.code not in RETRYABLE_CODES
                if conn.refused:
                    with self._lock:
                        self._refusal = text
                conn.welcomed.set()
                conn.dead.set()
            elif err.seq:
                with self._cv:
                    if self._protocol.reject(int(err.seq)):
                        self._stats.rejected_batches += 1
                    self._cv.notify_all()
            with self._cv:
                self._cv.notify_all()

    def _serve(self, conn: _Conn) -> bool:
        """Runs one stream until it dies or the client closes; True if it got a Welcome."""
        call = self._attach(conn.requests(self._hello))
        reader = threading.Thread(target=self._read, args=(conn, call), name="motive-client-reader", daemon=True)
        reader.start()
        try:
            deadline = time.monotonic() + self.connect_timeout_s
            while not conn.welcomed.wait(0.05):
                if conn.dead.is_set() or time.monotonic() > deadline:
                    return False
                with self._lock:
                    if self._closing:
                        return False
            if conn.refused or conn.welcome is None:
                return False
            with self._cv:
                resume = self._protocol.welcome(
                    int(conn.welcome.last_committed_seq), int(conn.welcome.query_version)
                )
                self._stats.acked_batches += resume.acked
                for msg in resume.messages:
                    conn.put(msg)
                self._stats.resent_batches += resume.resent
                self._stats.state = "connected"
                self._cv.notify_all()
            self._pump(conn)
            return True
        finally:
            conn.dead.set()
            conn.put(None)
            call.cancel()
            reader.join(timeout=5.0)

    def _pump(self, conn: _Conn) -> None:
        """Moves queued work onto the stream while it lives."""
        while True:
            with self._cv:
                while True:
                    if conn.dead.is_set() or self._closing:
                        return
                    if self._pending and (isinstance(self._pending[0], _Queries) or self._protocol.has_room()):
                        break
                    self._cv.wait(0.05)
                head = self._pending.popleft()
                if isinstance(head, _Queries):
                    qs = head.msg.queries
                    qs.version = self._protocol.queries_sent(int(qs.version), head.msg)
                    conn.put(head.msg)
                    continue
                self._pending_rows -= 1
                group = [head]
                rows = len(head.ids)
                while self._pending:
                    nxt = self._pending[0]
                    if not isinstance(nxt, _Rows) or nxt.step != head.step or nxt.lr != head.lr:
                        break
                    # A batch carries features for all of its rows or for none.
                    if (nxt.features is None) != (head.features is None):
                        break
                    # Reports, worker rows (of one snapshot) and sketches travel apart.
                    if nxt.deferred != head.deferred or nxt.snapshot_step != head.snapshot_step:
                        break
                    if (nxt.job_ids is None) != (head.job_ids is None):
                        break
                    if rows + len(nxt.ids) > self.max_batch_rows:
                        break
                    self._pending.popleft()
                    self._pending_rows -= 1
                    group.append(nxt)
                    rows += len(nxt.ids)
                seq = self._protocol.take_seq()
                self._cv.notify_all()
                self._in_flight = True
            msg: Optional[Any] = None
            try:
                msg = self._batch(seq, group)
            finally:
                with self._cv:
                    self._in_flight = False
                    if msg is None or self._closing:  # never reaches a commit: counted as lost
                        self._stats.dropped_rows += sum(len(g.ids) for g in group)
                        self._stats.dropped_sends += len(group)
                    else:
                        self._protocol.batch_sent(seq, msg)
                        self._stats.sent_batches += 1
                    self._cv.notify_all()
            if msg is None or self._closing:
                return
            conn.put(msg)

    def _batch(self, seq: int, group: List[_Rows]) -> Any:
        ids: List[str] = []
        losses: List[float] = []
        have_losses = all(g.losses is not None for g in group)
        features: List[float] = []
        job_ids: List[int] = []
        for g in group:
            ids.extend(g.ids)
            if g.job_ids is not None:
                job_ids.extend(g.job_ids)
            if g.features is not None:
                features.extend(g.features)
            if have_losses and g.losses is not None:
                losses.extend(g.losses)
        return pb.TrainerMessage(
            batch=pb.SketchBatch(
                seq=seq,
                step=group[0].step,
                lr=group[0].lr,
                sample_ids=ids,
                sketches=b"".join(g.data for g in group),
                losses=losses if have_losses else [],
                features=features,
                deferred=group[0].deferred,
                job_ids=job_ids,
                snapshot_step=group[0].snapshot_step,
            )
        )
