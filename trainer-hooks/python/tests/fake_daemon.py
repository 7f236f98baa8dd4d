"""A minimal in-process ``motive.v1.Attribution`` server for client tests.

It follows the wire rules of DESIGN §4: Welcome with the last committed seq, acks after "commit",
exactly-once by seq, weight snapshot on attach; it can be stopped and restarted on the same port
with its committed state kept (what a daemon restart with a durable store looks like).
"""

from __future__ import annotations

import queue
import threading
from concurrent import futures
from typing import Any, Dict, Iterator, List, Optional, Tuple

import grpc

from motive_hooks._proto import motive_pb2 as pb


class FakeState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.committed: Dict[Tuple[str, int], int] = {}
        self.batches: List[Any] = []  # committed SketchBatch messages, in commit order
        self.duplicates = 0
        self.queries: Dict[int, Any] = {}
        self.hellos: List[Any] = []
        self.fingerprint: Optional[str] = None
        self.weights: Dict[str, float] = {}
        self.weights_version = 0
        self.reject_seqs: set = set()


class FakeDaemon:
    def __init__(self, state: Optional[FakeState] = None, port: int = 0, ack: bool = True) -> None:
        self.state = state or FakeState()
        self.ack = ack
        self.outboxes: List["queue.Queue[Any]"] = []
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        handler = grpc.method_handlers_generic_handler(
            "motive.v1.Attribution",
            {
                "Attach": grpc.stream_stream_rpc_method_handler(
                    self._attach,
                    request_deserializer=pb.TrainerMessage.FromString,
                    response_serializer=pb.DaemonMessage.SerializeToString,
                )
            },
        )
        self.server.add_generic_rpc_handlers((handler,))
        self.port = self.server.add_insecure_port(f"127.0.0.1:{port}")
        self.server.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        for ob in self.outboxes:
            ob.put(None)
        self.server.stop(grace=None).wait()

    def push_weights(self, weights: Dict[str, float]) -> None:
        st = self.state
        with st.lock:
            st.weights.update(weights)
            st.weights_version += 1
            msg = pb.DaemonMessage(
                weights=pb.WeightUpdate(
                    version=st.weights_version, full=False, sample_ids=list(weights), weights=list(weights.values())
                )
            )
        for ob in self.outboxes:
            ob.put(msg)

    def _attach(self, requests: Iterator[Any], context: Any) -> Iterator[Any]:
        outbox: "queue.Queue[Any]" = queue.Queue()
        self.outboxes.append(outbox)
        st = self.state

        def consume() -> None:
            try:
                first = next(requests)
                hello = first.hello
                with st.lock:
                    st.hellos.append(hello)
                    if st.fingerprint is None:
                        st.fingerprint = hello.projection.fingerprint
                    if hello.projection.fingerprint != st.fingerprint:
                        outbox.put(pb.DaemonMessage(error=pb.Error(code="MOTIVE_INGEST_PROJECTION_MISMATCH", message="fingerprint differs", fatal=True)))
                        outbox.put(None)
                        return
                    key = (hello.run_id, hello.rank)
                    outbox.put(pb.DaemonMessage(welcome=pb.Welcome(last_committed_seq=st.committed.get(key, 0), weights_version=st.weights_version, daemon="fake")))
                    if hello.apply_weights:
                        outbox.put(pb.DaemonMessage(weights=pb.WeightUpdate(version=st.weights_version, full=True, sample_ids=list(st.weights), weights=list(st.weights.values()))))
                for msg in requests:
                    kind = msg.WhichOneof("body")
                    if kind == "queries":
                        with st.lock:
                            st.queries.setdefault(msg.queries.version, msg.queries)
                    elif kind == "batch":
                        b = msg.batch
                        with st.lock:
                            if b.seq in st.reject_seqs:
                                outbox.put(pb.DaemonMessage(error=pb.Error(code="MOTIVE_INGEST_BAD_BATCH", message="rejected", fatal=False, seq=b.seq)))
                                continue
                            last = st.committed.get(key, 0)
                            if b.seq <= last:
                                st.duplicates += 1
                            else:
                                st.batches.append(b)
                                st.committed[key] = b.seq
                        if self.ack:
                            outbox.put(pb.DaemonMessage(ack=pb.Ack(seq=b.seq)))
            except Exception:
                pass
            finally:
                outbox.put(None)

        threading.Thread(target=consume, daemon=True).start()
        while True:
            item = outbox.get()
            if item is None or not context.is_active():
                return
            yield item
