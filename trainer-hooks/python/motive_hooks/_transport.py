"""The ``Attach`` stream of a :class:`~motive_hooks.client.MotiveClient`: its gRPC channel and threads.

A sender thread opens streams one after another until the client closes or the daemon refuses it,
backing off between failed attempts. On each stream it sends the Hello, waits for the Welcome,
sends again what the protocol core (``protocol.py``) says the Welcome asks for, then moves queued
work onto the stream: query sets as they come, rows coalesced into batches while fewer than
``max_unacked`` batches wait for their Ack. A reader thread per stream hands every daemon message
to the core and the shared state (``_client_state.py``). The decisions are the core's; this
module only moves messages and keeps time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Deque, Iterator, List, Optional

import grpc

from ._client_state import ClientState, Queries, Rows
from ._errors import RETRYABLE_CODES
from ._messages import sketch_batch, take_group
from ._proto import motive_pb2 as pb

__all__ = ["StreamConfig", "Sender"]

_METHOD = "/motive.v1.Attribution/Attach"
_log = logging.getLogger("motive_hooks.client")


@dataclass(frozen=True)
class StreamConfig:
    """Where and how the sender connects (the client's constructor arguments)."""

    address: str
    hello: "pb.TrainerMessage"
    max_batch_rows: int
    connect_timeout_s: float
    backoff_s: float
    max_backoff_s: float
    tls: bool
    tls_root_certificates: Optional[bytes]


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

    def end(self) -> None:
        self.dead.set()
        self.put(None)


class Sender:
    """The sender thread of one client and the channel it streams on."""

    def __init__(self, config: StreamConfig, state: ClientState, name: str) -> None:
        self.config = config
        self.state = state
        self._conn: Optional[_Conn] = None
        self._channel_lock = threading.Lock()
        self._channel: Any = None
        self._attach: Any = None
        self.open_channel()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, deadline: float) -> None:
        """Ends the current stream, waits for the thread until ``deadline`` and closes the channel.

        The caller has set ``state.closing``.
        """
        conn = self._conn
        if conn is not None:
            conn.end()
        self._thread.join(timeout=max(0.2, deadline - time.monotonic()))
        with self._channel_lock:
            channel = self._channel
        try:
            channel.close()
        except Exception as exc:
            self.state.note_error(repr(exc))

    def open_channel(self) -> None:
        """(Re)creates the gRPC channel, closing the previous one.

        A channel whose connection failed keeps its own reconnect backoff; a fresh channel
        connects at once, so a restarted daemon is found again within ``max_backoff_s``.
        """
        cfg = self.config
        options = [
            ("grpc.initial_reconnect_backoff_ms", max(10, int(cfg.backoff_s * 1000))),
            ("grpc.max_reconnect_backoff_ms", max(10, int(cfg.max_backoff_s * 1000))),
            ("grpc.keepalive_time_ms", 10000),
            ("grpc.keepalive_timeout_ms", 5000),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
        ]
        if cfg.tls:
            credentials = grpc.ssl_channel_credentials(root_certificates=cfg.tls_root_certificates)
            channel = grpc.secure_channel(cfg.address, credentials, options=options)
        else:
            channel = grpc.insecure_channel(cfg.address, options=options)
        attach = channel.stream_stream(
            _METHOD,
            request_serializer=pb.TrainerMessage.SerializeToString,
            response_deserializer=pb.DaemonMessage.FromString,
        )
        with self._channel_lock:
            if self.state.closing:  # close() has taken (or will take) the current channel down
                old = channel
            else:
                old, self._channel, self._attach = self._channel, channel, attach
        if old is not None:
            try:
                old.close()
            except Exception as exc:
                self.state.note_error(repr(exc))

    # -- the sender thread ----------------------------------------------------------------------

    def _run(self) -> None:
        """The sender thread. If it ever fails unexpectedly, the client turns ``failed`` so that
        ``send`` returns at once instead of waiting for a queue nobody drains."""
        try:
            self._run_streams()
        except BaseException as exc:  # pragma: no cover - a bug guard, not an expected path
            _log.error("motive client sender stopped: %r", exc)
            self.state.note_error(f"sender stopped: {exc!r}")
            with self.state.cv:
                self.state.fail_locked(f"sender stopped: {exc!r}")

    def _run_streams(self) -> None:
        """Opens streams until closed or refused, backing off between failed attempts."""
        st = self.state
        backoff = self.config.backoff_s
        while True:
            with st.lock:
                if st.closing or st.failed:
                    break
            conn = _Conn()
            self._conn = conn
            st.set_state("connecting")
            ok = False
            try:
                ok = self._serve(conn)
            except Exception as exc:  # the training loop must never see a sender failure
                _log.warning("motive client stream failed: %r", exc)
                st.note_error(repr(exc))
            finally:
                conn.end()
            if conn.refused:
                with st.cv:
                    st.fail_locked()
                break
            with st.lock:
                if st.closing:
                    break
                st.stats.reconnects += 1
                st.stats.state = "reconnecting"
            if ok:
                backoff = self.config.backoff_s
            else:  # no Welcome: start the next attempt on a fresh connection
                self.open_channel()
            with st.cv:
                st.cv.wait_for(lambda: st.closing, timeout=backoff)
            backoff = min(self.config.max_backoff_s, backoff * 2)
        with st.lock:
            if not st.failed:
                st.stats.state = "closed"

    def _serve(self, conn: _Conn) -> bool:
        """Runs one stream until it dies or the client closes; True if it got a Welcome."""
        call = self._attach(conn.requests(self.config.hello))
        reader = threading.Thread(target=self._read, args=(conn, call), name="motive-client-reader", daemon=True)
        reader.start()
        try:
            if not self._await_welcome(conn):
                return False
            self._resume(conn)
            self._pump(conn)
            return True
        finally:
            conn.end()
            call.cancel()
            reader.join(timeout=5.0)

    def _await_welcome(self, conn: _Conn) -> bool:
        """Waits for the stream's Welcome (at most ``connect_timeout_s``); False without one."""
        deadline = time.monotonic() + self.config.connect_timeout_s
        while not conn.welcomed.wait(0.05):
            if conn.dead.is_set() or time.monotonic() > deadline:
                return False
            with self.state.lock:
                if self.state.closing:
                    return False
        return not conn.refused and conn.welcome is not None

    def _resume(self, conn: _Conn) -> None:
        """Sends again what the Welcome asks for (query sets, then unacknowledged batches)."""
        st = self.state
        welcome = conn.welcome
        assert welcome is not None
        with st.cv:
            resume = st.protocol.welcome(int(welcome.last_committed_seq), int(welcome.query_version))
            st.stats.acked_batches += resume.acked
            for msg in resume.messages:
                conn.put(msg)
            st.stats.resent_batches += resume.resent
            st.stats.state = "connected"
            st.cv.notify_all()

    def _next_group(self, conn: _Conn) -> "Optional[tuple[int, List[Rows]]]":
        """Under the lock: sends queued query sets and takes the next rows to batch, numbered.

        None when the stream died or the client is closing.
        """
        st = self.state
        with st.cv:
            while True:
                while True:
                    if conn.dead.is_set() or st.closing:
                        return None
                    if st.pending and (isinstance(st.pending[0], Queries) or st.protocol.has_room()):
                        break
                    st.cv.wait(0.05)
                head = st.pending[0]
                if not isinstance(head, Queries):
                    break
                st.pending.popleft()
                qs = head.msg.queries
                qs.version = st.protocol.queries_sent(int(qs.version), head.msg)
                conn.put(head.msg)
            group = take_group(st.pending, self.config.max_batch_rows)
            st.pending_rows -= len(group)
            seq = st.protocol.take_seq()
            st.cv.notify_all()
            st.in_flight = True
            return seq, group

    def _pump(self, conn: _Conn) -> None:
        """Moves queued work onto the stream while it lives."""
        st = self.state
        while True:
            taken = self._next_group(conn)
            if taken is None:
                return
            seq, group = taken
            msg: Optional[Any] = None
            try:
                msg = sketch_batch(seq, group)
            finally:
                with st.cv:
                    st.in_flight = False
                    if msg is None or st.closing:  # never reaches a commit: counted as lost
                        st.stats.dropped_rows += sum(len(g.ids) for g in group)
                        st.stats.dropped_sends += len(group)
                    else:
                        st.protocol.batch_sent(seq, msg)
                        st.stats.sent_batches += 1
                    st.cv.notify_all()
            if msg is None or st.closing:
                return
            conn.put(msg)

    # -- the reader thread ----------------------------------------------------------------------

    def _read(self, conn: _Conn, call: Any) -> None:
        try:
            for msg in call:
                self._on_message(conn, msg)
        except grpc.RpcError as exc:
            if not conn.dead.is_set():
                self.state.note_error(f"{exc.code()}: {exc.details()}")  # type: ignore[attr-defined]
        except Exception as exc:
            self.state.note_error(repr(exc))
        finally:
            conn.dead.set()
            with self.state.cv:
                self.state.cv.notify_all()

    def _on_message(self, conn: _Conn, msg: Any) -> None:
        st = self.state
        kind = msg.WhichOneof("body")
        if kind == "welcome":
            conn.welcome = msg.welcome
            conn.welcomed.set()
        elif kind == "ack":
            with st.cv:
                st.stats.acked_batches += st.protocol.ack(int(msg.ack.seq))
                st.acked_weights_version = st.weights_version
        elif kind == "weights":
            with st.cv:
                st.apply_weights_locked(msg.weights)
        elif kind == "error":
            self._on_error(conn, msg.error)
        with st.cv:
            st.cv.notify_all()

    def _on_error(self, conn: _Conn, err: Any) -> None:
        st = self.state
        text = f"{err.code}: {err.message}"
        st.note_error(text)
        if err.fatal:
            _log.warning("motive daemon closed the stream: %s", text)
            # A fatal error the registry does not mark retryable ends the client, before or
            # after Welcome: reconnecting after MOTIVE_INGEST_RUN_DELETED would create the run
            # again, after a refused Hello would be refused again.
            conn.refused = err.code not in RETRYABLE_CODES
            if conn.refused:
                with st.lock:
                    st.refusal = text
            conn.welcomed.set()
            conn.dead.set()
        elif err.seq:
            with st.cv:
                if st.protocol.reject(int(err.seq)):
                    st.stats.rejected_batches += 1
