"""gRPC streaming client for the Motive daemon (``motive.v1.Attribution/Attach``).

``send`` only encodes the sketches and appends them to a bounded queue; a background thread owns
the stream (``_transport.py``): it coalesces queued rows of the same step into ``SketchBatch``
messages, numbers them (``seq`` 1, 2, 3, ... per run and rank), keeps every batch until the
daemon acks it (acks come after durable commit) and, after a reconnect, drops what
``Welcome.last_committed_seq`` covers and resends the rest in order, after the query sets no Ack
has confirmed yet. Those rules are the protocol core's (``protocol.py``), tested without a daemon.
A daemon outage never raises into the training loop (unless ``raise_on_error=True``): when the
queue is full, ``send`` waits at most ``block_timeout_s`` (policy ``"block"``) or not at all
(``"drop"``) and then drops the rows and counts them; ``close`` returns within its timeout even
when the daemon is gone.

Query sets are numbered above both the client's own last version and ``Welcome.query_version``
(the newest version the run already holds), so a restarted trainer's refresh is not ignored by the
daemon as a duplicate version. With ``world_size > 1`` the ranks must agree on versions, so a fresh
rank numbers 1, 2, ... and only a rank with committed batches (a restarted one) takes the run's
newest version from its first ``Welcome`` as its base; ranks restarted together must all attach
(see ``MotiveClient.wait_attached``) before any of them publishes a query set.

The modules: this facade (the public API, run on the caller's thread), ``_client_state.py`` (what
the caller and the threads share, under one lock), ``_messages.py`` (encoding and batching),
``_transport.py`` (channel, sender and reader threads) and ``protocol.py`` (the rules).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from ._client_state import ClientState, ClientStats, MotiveClientError, Rows
from ._messages import ArrayLike, check_features, encode_rows, query_set
from ._proto import motive_pb2 as pb
from ._transport import Sender, StreamConfig
from .sketch import PROJECTION_KIND

__all__ = ["MotiveClient", "MotiveClientError", "ClientStats", "CLIENT_VERSION", "ArrayLike"]

#: Version reported in ``Hello.client`` as ``motive-hooks/<version>``.
CLIENT_VERSION = "0.1.0"

_log = logging.getLogger("motive_hooks.client")


def _feature_names(feature_names: Optional[Sequence[str]], sketcher: Optional[Any]) -> List[str]:
    """The Hello's feature names: the given ones, else the sketcher's; checked."""
    if feature_names is None and sketcher is not None:
        feature_names = getattr(sketcher, "feature_names", None)
    names = [str(n) for n in feature_names] if feature_names is not None else []
    if len(names) > 32 or len(set(names)) != len(names) or any(not 0 < len(n) <= 64 for n in names):
        raise ValueError("feature_names must be at most 32 unique names of 1-64 characters")
    return names


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
        self.feature_names: List[str] = _feature_names(feature_names, sketcher)
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
        self.worker = bool(worker)
        projection = pb.Projection(kind=projection_kind, seed=int(seed), dim=self.dim, fingerprint=fingerprint)
        hello = self._hello(projection, token, bool(apply_weights))
        self._state = ClientState(self.world_size, self.max_unacked)
        config = StreamConfig(
            address=address,
            hello=hello,
            max_batch_rows=self.max_batch_rows,
            connect_timeout_s=self.connect_timeout_s,
            backoff_s=self.backoff_s,
            max_backoff_s=self.max_backoff_s,
            tls=bool(tls) or tls_root_certificates is not None,
            tls_root_certificates=tls_root_certificates,
        )
        self._sender = Sender(config, self._state, name=f"motive-client-{run_id}-{rank}")
        self._sender.start()

    def _hello(self, projection: "pb.Projection", token: Optional[str], apply_weights: bool) -> "pb.TrainerMessage":
        return pb.TrainerMessage(
            hello=pb.Hello(
                run_id=self.run_id,
                rank=self.rank,
                world_size=self.world_size,
                projection=projection,
                dtype=pb.FLOAT16 if self.dtype == "float16" else pb.FLOAT32,
                token=token or "",
                client=f"motive-hooks/{CLIENT_VERSION}",
                apply_weights=apply_weights,
                feature_names=self.feature_names,
                worker=self.worker,
            )
        )

    # -- public API -----------------------------------------------------------------------------

    def _encode(self, sketches: ArrayLike, n: int) -> bytes:
        data, nonfinite = encode_rows(sketches, n, self.dim, self._np_dtype)
        if nonfinite:
            with self._state.lock:
                self._state.stats.nonfinite_rows += nonfinite
        return data

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
        st = self._state
        with st.cv:
            if st.failed or st.closing:
                reason = st.refusal if st.failed else "the client is closed"
                if self.raise_on_error:
                    raise MotiveClientError(f"query set not queued: {reason}")
                return 0
            if step is None:
                step = st.last_step + 1
            version = st.protocol.number_queries()
            st.pending.append(query_set(version, step, ids, group_list, data))
            st.cv.notify_all()
            return version

    def wait_attached(self, timeout_s: float = 10.0) -> bool:
        """Waits up to ``timeout_s`` seconds for the first ``Welcome``; False on timeout/refusal.

        Ranks of a restarted multi-rank run call it (and a barrier) before publishing queries.
        """
        st = self._state
        deadline = time.monotonic() + max(0.0, float(timeout_s))
        with st.cv:
            while not st.protocol.welcomed and not st.failed and not st.closing:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                st.cv.wait(min(left, 0.05))
            return st.protocol.welcomed and not st.failed

    @property
    def query_version(self) -> int:
        """The highest QuerySet version this client numbered or saw in a ``Welcome`` (0: none)."""
        with self._state.lock:
            return self._state.protocol.query_version

    def _bad_call(self, what: str, exc: BaseException, result: Any) -> Any:
        """Reports a malformed call: raises under ``raise_on_error``, else logs and counts it."""
        if self.raise_on_error:
            if isinstance(exc, ValueError):
                raise exc
            raise MotiveClientError(f"{what}: {exc!r}") from exc
        _log.warning("motive client %s ignored: %r", what, exc)
        self._state.note_error(f"{what}: {exc!r}")
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
            rows = Rows(int(step), float(lr), ids, data, loss_list, check_features(features, len(ids), self.feature_names))
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
            rows = Rows(int(step), float(lr), [str(i) for i in ids], b"", None, None, deferred=True)
            if not rows.ids:
                raise ValueError("no sample ids")
        except Exception as exc:
            return bool(self._bad_call("report", exc, False))
        return self._enqueue(rows)

    def _enqueue(self, rows: Rows) -> bool:
        st = self._state
        deadline = time.monotonic() + (self.block_timeout_s if self.policy == "block" else 0.0)
        with st.cv:
            st.last_step = max(st.last_step, rows.step)
            while not st.failed and not st.closing and st.pending_rows >= self.max_queue:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                st.cv.wait(left)
            if st.failed or st.closing or st.pending_rows >= self.max_queue:
                st.stats.dropped_rows += len(rows.ids)
                st.stats.dropped_sends += 1
                if self.raise_on_error:
                    reason = (
                        st.refusal if st.failed else "the client is closed" if st.closing else "the send queue is full"
                    )
                    raise MotiveClientError(f"{len(rows.ids)} rows of step {rows.step} dropped: {reason}")
                return False
            st.pending.append(rows)
            st.pending_rows += 1
            st.cv.notify_all()
            return True

    def flush(self, timeout_s: Optional[float] = None) -> bool:
        """Waits up to ``timeout_s`` seconds (None: no limit) until everything queued is acked.

        Returns False on timeout or when the daemon refused the Hello (under ``raise_on_error``
        a refusal raises :class:`MotiveClientError`).
        """
        st = self._state
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with st.cv:
            while st.busy_locked():
                if st.failed:
                    break
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                st.cv.wait(0.05 if left is None else min(left, 0.05))
            if st.failed and self.raise_on_error:
                raise MotiveClientError(f"the daemon refused this client: {st.refusal}")
            return not st.failed

    def close(self, timeout_s: float = 10.0) -> None:
        """Flushes, ends the stream and stops the thread, all within about ``timeout_s`` seconds.

        Never raises and never waits longer than ``timeout_s`` plus a fraction of a second, even
        when the daemon is gone. Rows not acked by then are counted in ``stats().dropped_rows``.
        Calling it again is harmless.
        """
        st = self._state
        deadline = time.monotonic() + max(0.0, float(timeout_s))
        try:
            with st.cv:
                busy = st.busy_locked() and not st.failed
            if busy:
                self.flush(max(0.0, deadline - time.monotonic() - 0.2))
        except Exception as exc:  # close must not raise into the training loop
            st.note_error(repr(exc))
        with st.cv:
            st.closing = True
            st.cv.notify_all()
        self._sender.stop(deadline)
        with st.cv:
            st.drop_all_locked()  # whatever did not reach a durable commit is counted as lost
            if st.stats.state not in ("failed", "closed"):
                st.stats.state = "closed"
            st.cv.notify_all()

    def __enter__(self) -> "MotiveClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def weights(self) -> Dict[str, float]:
        """The daemon's current non-default weights ``{sample_id: w}``; unlisted samples have 1."""
        with self._state.lock:
            return dict(self._state.weights)

    def weight(self, sample_id: str) -> float:
        """The current weight of one sample (1 when the daemon has not set one)."""
        with self._state.lock:
            return self._state.weights.get(str(sample_id), 1.0)

    @property
    def weights_version(self) -> int:
        """Version of the last applied ``WeightUpdate`` (0 before the first)."""
        with self._state.lock:
            return self._state.weights_version

    @property
    def acked_weights_version(self) -> int:
        """The weights version this client held when the latest ack arrived.

        The daemon sends a batch's ack before the ``WeightUpdate`` that carries its weights (with
        ``weights.batchUpdates`` both leave together, right after the commit), so an update that
        reflects the acked batches is newer than this: wait for it with
        ``wait_weights(acked_weights_version, ...)``. By the time ``flush`` returns,
        :attr:`weights_version` may already include it.
        """
        with self._state.lock:
            return self._state.acked_weights_version

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
        st = self._state
        deadline = time.monotonic() + max(0.0, float(timeout_s))
        with st.cv:
            while st.weights_version <= after_version and not st.failed and not st.closing:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                st.cv.wait(left)
            return st.weights_version > after_version

    def loss_weights(self, ids: Sequence[str], device: Optional[torch.device] = None) -> torch.Tensor:
        """Per-sample loss weights ``[len(ids)]`` float32 for loss reweighting (1 by default)."""
        with self._state.lock:
            w = [self._state.weights.get(str(i), 1.0) for i in ids]
        return torch.tensor(w, dtype=torch.float32, device=device)

    def stats(self) -> ClientStats:
        """A snapshot of the counters."""
        return self._state.snapshot_stats()
