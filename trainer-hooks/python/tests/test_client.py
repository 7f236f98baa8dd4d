"""MotiveClient and MotiveSampler against the real daemon (``node bin/motived.js``).

One daemon (with a trainer token and a fast weight policy) serves every test of this module that
does not kill it; the tests that SIGKILL and restart a daemon get their own. What the daemon stored
is read back over REST and compared with a float64 reference computed from the exact bytes sent.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
import urllib.parse
import urllib.request
from collections import Counter
from typing import Callable, Dict, Iterator, List, Sequence, Tuple

import numpy as np
import pytest
import torch

from motive_hooks import MotiveClient, MotiveSampler
from motive_hooks.client import ArrayLike, MotiveClientError
from test_interop import MOTIVED, Daemon

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not os.path.exists(MOTIVED),
    reason="needs node and bin/motived.js (the daemon) in this checkout",
)

DIM = 8
TOKEN = "trainer-token-0123"
#: A read-only token for the REST checks (with tokens configured, REST wants one too).
VIEWER_TOKEN = "viewer-token-4567"
#: Weights recomputed every 100 ms from the first sighting of a sample on.
CONFIG: Dict[str, object] = {
    "weights": {"minSeen": 1, "intervalMs": 100, "beta": 1.0},
    "auth": {"tokens": [{"name": "tests", "token": VIEWER_TOKEN, "role": "viewer"}]},
}

#: One sent batch: (step, lr, sample ids, the row bytes as sent, wire dtype).
Sent = Tuple[int, float, List[str], bytes, str]


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    """The module's shared daemon; it requires ``TOKEN`` in every Hello."""
    tmp = tempfile.mkdtemp(prefix="motive-client-")
    d = Daemon(os.path.join(tmp, "data"), CONFIG, env={"MOTIVE_TRAINER_TOKEN": TOKEN}, read_token=VIEWER_TOKEN)
    try:
        yield d
    finally:
        d.stop()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture()
def own_daemon(request: pytest.FixtureRequest) -> Iterator[List[Daemon]]:
    """A daemon of the test's own, to kill; the list holds the live one after restarts.

    Parametrised indirectly, ``request.param`` is its config (a dict).
    """
    tmp = tempfile.mkdtemp(prefix="motive-client-own-")
    box = [Daemon(os.path.join(tmp, "data"), getattr(request, "param", None))]
    try:
        yield box
    finally:
        box[0].stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _client(address: str, run_id: str, dim: int = DIM, **kw: object) -> MotiveClient:
    """A client with fast reconnects (at most 0.2 s apart) and the shared daemon's token."""
    opts: Dict[str, object] = dict(token=TOKEN, fingerprint="fp", max_backoff_s=0.2, backoff_s=0.05)
    opts.update(kw)
    return MotiveClient(address, run_id, dim, **opts)  # type: ignore[arg-type]


def _rows(n: int, seed: int, dim: int = DIM) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def _wait(cond: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    """Polls ``cond`` every 10 ms for at most ``timeout_s`` seconds."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def _wire(rows: np.ndarray, dtype: str) -> bytes:
    """The bytes the client puts on the wire for ``rows``."""
    return np.ascontiguousarray(rows.astype("<f2" if dtype == "float16" else "<f4")).tobytes()


def _unit(raw: bytes, n: int, dim: int, dtype: str) -> np.ndarray:
    """Rows decoded from wire bytes to float64 and L2-normalised (zero rows stay zero)."""
    x = np.frombuffer(raw, dtype="<f2" if dtype == "float16" else "<f4").reshape(n, dim).astype(np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def _sample(d: Daemon, run_id: str, sid: str) -> Dict[str, object]:
    return d.get(f"/v1/runs/{run_id}/samples/{urllib.parse.quote(sid, safe='')}")  # type: ignore[no-any-return]


def _check_sums(
    d: Daemon, run_id: str, sent: Sequence[Sent], queries: Sequence[Tuple[int, List[str], bytes, str]], dim: int = DIM
) -> None:
    """Every sample's ``seen`` and ``querySums`` equal the float64 reference of what was sent.

    ``queries`` are ``(step, ids, bytes, dtype)`` in version order; each batch is scored against
    the last one whose step is at most the batch's (cosine scores, summed with the batch's lr).
    """
    run = d.get(f"/v1/runs/{run_id}")
    qids: List[str] = run["queryIds"]
    expect: Dict[str, np.ndarray] = {}
    seen: Counter = Counter()
    for step, lr, sids, raw, dtype in sent:
        g = _unit(raw, len(sids), dim, dtype)
        active = [q for q in queries if q[0] <= step]
        for r, sid in enumerate(sids):
            seen[sid] += 1
            acc = expect.setdefault(sid, np.zeros(len(qids)))
            if active:
                qstep, q_ids, q_raw, q_dtype = active[-1]
                q = _unit(q_raw, len(q_ids), dim, q_dtype)
                for j, qid in enumerate(qids):
                    if qid in q_ids:
                        acc[j] += lr * float(g[r] @ q[q_ids.index(qid)])
    for sid, n in seen.items():
        got = _sample(d, run_id, sid)
        assert got["seen"] == n, (sid, got["seen"], n)
        np.testing.assert_allclose(np.array(got["querySums"], dtype=np.float64), expect[sid], rtol=1e-5, atol=1e-7)


def _committed(d: Daemon, run_id: str, rank: int = 0) -> int:
    ranks = d.get(f"/v1/runs/{run_id}")["ranks"]
    return int(next((r["lastCommittedSeq"] for r in ranks if r["rank"] == rank), 0))


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_batches_queries_and_encoding(daemon: Daemon, dtype: str) -> None:
    run_id = f"enc-{dtype}"
    c = _client(daemon.address, run_id, dtype=dtype, fingerprint="fp1", seed=3)
    try:
        q = _rows(2, 0)
        assert c.set_queries(["q0", "q1"], q, step=0) == 1
        sent: List[Sent] = []
        for step in range(5):
            rows = _rows(3, step + 1)
            lr = 0.1 * (step + 1)
            ids = [f"s{step}-{i}" for i in range(3)]
            assert c.send(step, lr, ids, rows, losses=[1.0, 2.0, 3.0])
            sent.append((step, lr, ids, _wire(rows, dtype), dtype))
        # rows of one step are coalesced into fewer batches; the daemon sees them all
        same = _rows(4, 9)
        for i in range(4):
            assert c.send(7, 0.5, [f"x{i}"], same[i : i + 1])
            sent.append((7, 0.5, [f"x{i}"], _wire(same[i : i + 1], dtype), dtype))
        assert c.flush(10.0)
        st = c.stats()
        assert st.state == "connected" and st.dropped_rows == 0 and st.rejected_batches == 0
        assert 6 <= st.sent_batches <= 9 and st.acked_batches == st.sent_batches
        run = daemon.get(f"/v1/runs/{run_id}")
        assert run["dim"] == DIM
        assert run["projection"]["fingerprint"] == "fp1" and int(run["projection"]["seed"]) == 3
        assert run["queryIds"] == ["q0", "q1"] and run["queryVersion"] == 1
        assert run["sketches"] == 19
        assert _committed(daemon, run_id) == st.sent_batches
        _check_sums(daemon, run_id, sent, [(0, ["q0", "q1"], _wire(q, dtype), dtype)])
    finally:
        c.close(2.0)


#: Commits held back 150 ms each, so a SIGKILL finds batches and query sets received but not committed.
SLOW_COMMITS: Dict[str, object] = {"store": {"commitDelayMs": 150}}


@pytest.mark.parametrize("own_daemon", [SLOW_COMMITS], indirect=True)
def test_resend_after_daemon_restart_is_exactly_once(own_daemon: List[Daemon]) -> None:
    d = own_daemon[0]
    run_id = "restart"
    c = _client(d.address, run_id, dtype="float32", token=None, block_timeout_s=10.0)
    sent: List[Sent] = []
    queries: List[Tuple[int, List[str], bytes, str]] = []

    def publish(step: int) -> None:
        q = _rows(2, 100 + step)
        c.set_queries(["qa", "qb"], q, step=step)
        queries.append((step, ["qa", "qb"], _wire(q, "float32"), "float32"))

    def send(step: int) -> None:
        rows = _rows(2, 200 + step)
        ids = [f"a{step}-0", f"a{step}-1"]
        assert c.send(step, 0.01 * (step + 1), ids, rows)
        sent.append((step, 0.01 * (step + 1), ids, _wire(rows, "float32"), "float32"))

    try:
        for step in range(6):
            if step % 2 == 0:  # three query sets, all on the stream before the kill
                publish(step)
            send(step)
        assert _wait(lambda: c.stats().sent_batches == 6)
        d.kill()  # query sets and batches in flight: committed or not, acked or not
        assert _wait(lambda: c.stats().state != "connected", 5.0)
        for step in range(6, 10):  # during the outage: queued, not lost
            if step == 8:
                publish(step)
            send(step)
        # the successor: same ports and store, commits at full speed
        d = own_daemon[0] = Daemon(d.data_dir, None, d.grpc_port, d.http_port)
        assert c.flush(15.0), c.stats()
        s = c.stats()
        assert s.reconnects >= 1 and s.unacked_batches == 0 and s.dropped_rows == 0 and s.rejected_batches == 0
        assert _committed(d, run_id) == s.sent_batches  # numbered 1..n without gaps, each once
        _check_sums(d, run_id, sent, queries)  # nothing lost, nothing counted twice

        # a graceful restart (SIGTERM: drain, then a successor) while the trainer keeps sending
        send(10)
        d.stop()
        send(11)
        d = own_daemon[0] = d.restart()
        send(12)
        assert c.flush(15.0), c.stats()
        s = c.stats()
        assert s.dropped_rows == 0 and s.rejected_batches == 0 and s.state == "connected"
        assert _committed(d, run_id) == s.sent_batches
        _check_sums(d, run_id, sent, queries)
    finally:
        c.close(2.0)
    # a restarted trainer continues after the daemon's last committed seq
    c2 = _client(d.address, run_id, dtype="float32", token=None)
    try:
        before = _committed(d, run_id)
        rows = _rows(1, 999)
        assert c2.send(13, 0.5, ["late"], rows)
        assert c2.flush(10.0)
        assert _committed(d, run_id) == before + 1
        sent.append((13, 0.5, ["late"], _wire(rows, "float32"), "float32"))
        _check_sums(d, run_id, sent, queries)
    finally:
        c2.close(2.0)


def test_outage_never_stalls_training_and_close_is_bounded(own_daemon: List[Daemon]) -> None:
    d = own_daemon[0]
    address = d.address
    drop = _client(address, "outage", token=None, policy="drop", max_queue=3)
    block = _client(address, "outage", token=None, policy="block", block_timeout_s=0.2, max_queue=1)
    busy = _client(address, "outage-busy", token=None)
    clients = (drop, block, busy)
    try:
        assert _wait(lambda: all(c.stats().state == "connected" for c in clients))
        assert drop.send(0, 0.1, ["z"], _rows(1, 0)) and drop.flush(5.0)
        for step in range(5):
            assert busy.send(step, 0.1, [f"g{step}"], _rows(1, step))
        d.kill()  # while busy's batches may be unacked
        assert _wait(lambda: all(c.stats().state != "connected" for c in clients), 5.0)

        t0 = time.monotonic()
        ok = [drop.send(i, 0.1, ["z"], _rows(1, i)) for i in range(1, 11)]
        assert time.monotonic() - t0 < 1.0
        assert ok[:3] == [True] * 3 and not any(ok[3:])
        assert drop.stats().dropped_rows == 7 and drop.stats().queued_sends == 3

        assert block.send(0, 0.1, ["z"], _rows(1, 0))
        t0 = time.monotonic()
        assert not block.send(1, 0.1, ["z"], _rows(1, 1))
        assert 0.15 <= time.monotonic() - t0 < 1.0
        assert not block.flush(0.1)

        for step in range(5, 8):
            assert busy.send(step, 0.1, [f"g{step}"], _rows(1, step))

        # close with the daemon gone: bounded by its timeout; what never committed is counted
        for c, queued, timeout_s in ((drop, 3, 0.5), (block, 1, 0.0), (busy, 3, 1.0)):
            t0 = time.monotonic()
            c.close(timeout_s)
            assert time.monotonic() - t0 < timeout_s + 0.7
            s = c.stats()
            assert s.state == "closed" and s.queued_sends == 0 and s.unacked_batches == 0
            assert s.dropped_rows >= queued
            assert not c.send(99, 0.1, ["after"], _rows(1, 0))  # closed: dropped, never raised
            t0 = time.monotonic()
            c.close(0.2)  # again: harmless
            assert time.monotonic() - t0 < 1.0
        s = busy.stats()
        assert s.acked_batches + s.dropped_rows == 8 + 1  # one row per batch: acked or counted lost

        # nothing listening at all, from the start
        never = _client(address, "gone", token=None)
        assert never.send(0, 0.1, ["x"], _rows(1, 0))
        t0 = time.monotonic()
        never.close(0.3)
        assert time.monotonic() - t0 < 1.0
        assert never.stats().state == "closed" and never.stats().dropped_rows == 1
    finally:
        for c in clients:
            c.close(0.2)


def test_refused_hello_fails_softly(daemon: Daemon) -> None:
    first = _client(daemon.address, "refuse", dim=DIM)
    try:
        assert first.send(0, 0.1, ["a"], _rows(1, 0)) and first.flush(10.0)
    finally:
        first.close(1.0)

    cases = [
        (dict(dim=2 * DIM), "MOTIVE_INGEST_PROJECTION_MISMATCH"),  # the run has dim 8
        (dict(fingerprint="other"), "MOTIVE_INGEST_PROJECTION_MISMATCH"),
        (dict(token="wrong-token-000"), "MOTIVE_INGEST_UNAUTHENTICATED"),
        (dict(token=None), "MOTIVE_INGEST_UNAUTHENTICATED"),
    ]
    for kw, code in cases:
        c = _client(daemon.address, "refuse", **kw)  # type: ignore[arg-type]
        try:
            assert _wait(lambda: c.stats().state == "failed"), (kw, c.stats())
            dim = int(kw.get("dim", DIM))  # type: ignore[call-overload]
            assert not c.send(1, 0.1, ["b"], _rows(1, 1, dim))
            assert c.set_queries(["q"], _rows(1, 2, dim)) == 0
            s = c.stats()
            assert code in (s.last_error or ""), (kw, s.last_error)
            assert s.dropped_rows == 1 and s.reconnects == 0
            assert not c.flush(0.5)
        finally:
            t0 = time.monotonic()
            c.close(0.5)
            assert time.monotonic() - t0 < 1.2
        assert c.stats().state == "failed"
    assert _sample(daemon, "refuse", "a")["seen"] == 1

    # asked to raise: the refusal surfaces as MotiveClientError
    c = _client(daemon.address, "refuse", token="wrong-token-000", raise_on_error=True)
    try:
        assert _wait(lambda: c.stats().state == "failed")
        with pytest.raises(MotiveClientError, match="UNAUTHENTICATED"):
            c.send(1, 0.1, ["b"], _rows(1, 1))
        with pytest.raises(MotiveClientError):
            c.flush(0.5)
        with pytest.raises(ValueError):
            c.send(1, 0.1, ["b"], _rows(2, 1))  # 2 rows for 1 id
    finally:
        c.close(0.5)


def test_deleted_run_stops_the_client_and_stays_deleted(own_daemon: List[Daemon]) -> None:
    """MOTIVE_INGEST_RUN_DELETED is not retryable (the generated error table): the client stops
    instead of reconnecting, which would create the run again with its next Hello."""
    d = own_daemon[0]
    c = _client(d.address, "gone", token=None)
    try:
        assert c.send(0, 0.1, ["a"], _rows(1, 0)) and c.flush(10.0)
        req = urllib.request.Request(f"http://127.0.0.1:{d.http_port}/v1/runs/gone", method="DELETE")
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200
        assert _wait(lambda: c.stats().state == "failed"), c.stats()
        assert "MOTIVE_INGEST_RUN_DELETED" in (c.stats().last_error or "")
        assert not c.send(1, 0.1, ["b"], _rows(1, 1))
        time.sleep(1.0)  # five times max_backoff_s: a reconnecting client would have said Hello again
        assert c.stats().reconnects == 0
        assert "gone" not in [r["id"] for r in d.get("/v1/runs")["runs"]]
    finally:
        c.close(0.5)


class _UnsanitizedClient(MotiveClient):
    """Sends rows as given, non-finite values included (the stock client zeroes such rows)."""

    def _encode(self, sketches: ArrayLike, n: int) -> bytes:
        return np.ascontiguousarray(np.asarray(sketches, dtype=np.float32).astype(self._np_dtype)).tobytes()


def test_rejected_batches_are_counted_and_dropped(daemon: Daemon) -> None:
    run_id = "reject"
    c = _client(daemon.address, run_id, dtype="float32", world_size=2)
    raw = _UnsanitizedClient(
        daemon.address, run_id, DIM, rank=1, world_size=2, dtype="float32", token=TOKEN, fingerprint="fp"
    )
    try:
        q = _rows(1, 50)
        c.set_queries(["q"], q, step=0)
        sent: List[Sent] = []
        good = _rows(1, 1)
        assert c.send(0, 0.1, ["ok0"], good) and c.flush(10.0)
        sent.append((0, 0.1, ["ok0"], _wire(good, "float32"), "float32"))
        assert c.send(1, float("nan"), ["badlr"], _rows(1, 2)) and c.flush(10.0)  # seq 2
        assert c.send(2, 0.1, ["bad\x00id"], _rows(1, 3)) and c.flush(10.0)  # seq 3
        nan_row = _rows(1, 4)
        nan_row[0, 3] = math.nan
        assert c.send(3, 0.1, ["zeroed"], nan_row) and c.flush(10.0)  # the client zeroes the row
        sent.append((3, 0.1, ["zeroed"], _wire(np.zeros((1, DIM), np.float32), "float32"), "float32"))
        good = _rows(1, 5)
        assert c.send(4, 0.1, ["ok4"], good) and c.flush(10.0)
        sent.append((4, 0.1, ["ok4"], _wire(good, "float32"), "float32"))
        s = c.stats()
        assert s.rejected_batches == 2 and s.unacked_batches == 0 and s.nonfinite_rows == 1
        assert any("MOTIVE_INGEST_BAD_LR" in e for e in s.errors)  # the NaN learning rate
        assert any("MOTIVE_INGEST_SAMPLE_ID" in e for e in s.errors)
        assert s.state == "connected"  # non-fatal: the stream goes on

        assert raw.send(5, 0.1, ["nan"], nan_row) and raw.flush(10.0)  # NaN reaches the daemon
        ok = _rows(1, 6)
        assert raw.send(6, 0.1, ["ok6"], ok) and raw.flush(10.0)
        sent.append((6, 0.1, ["ok6"], _wire(ok, "float32"), "float32"))
        rs = raw.stats()
        assert rs.rejected_batches == 1 and rs.unacked_batches == 0
        assert any("MOTIVE_INGEST_BATCH_NONFINITE" in e for e in rs.errors)
        assert _committed(daemon, run_id, 0) == 5 and _committed(daemon, run_id, 1) == 2
        _check_sums(daemon, run_id, sent, [(0, ["q"], _wire(q, "float32"), "float32")])
    finally:
        c.close(1.0)
        raw.close(1.0)


def test_query_versions_continue_after_trainer_restart(daemon: Daemon) -> None:
    run_id = "qversions"
    q1, q2, q3 = _rows(2, 61), _rows(2, 62), _rows(2, 63)
    a = _client(daemon.address, run_id)
    try:
        assert a.set_queries(["qa", "qb"], q1, step=0) == 1
        assert a.set_queries(["qa", "qb"], q2, step=2) == 2
        assert a.send(2, 0.1, ["s-a"], _rows(1, 64)) and a.flush(10.0)
    finally:
        a.close(1.0)
    assert daemon.get(f"/v1/runs/{run_id}")["queryVersion"] == 2

    # the restarted trainer publishes before its Welcome arrived: renumbered above the run's
    b = _client(daemon.address, run_id)
    sent: List[Sent] = []
    try:
        b.set_queries(["qa", "qb"], q3, step=5)
        rows = _rows(1, 65)
        assert b.send(5, 0.2, ["s-b"], rows) and b.flush(10.0)
        sent.append((5, 0.2, ["s-b"], _wire(rows, "float16"), "float16"))
        assert b.query_version == 3
        run = daemon.get(f"/v1/runs/{run_id}")
        assert run["queryVersion"] == 3 and [qs["version"] for qs in run["querySets"]] == [1, 2, 3]
        # the batch at step 5 was scored against the refreshed queries, not the old version 2
        _check_sums(daemon, run_id, sent, [(5, ["qa", "qb"], _wire(q3, "float16"), "float16")])
        # A QuerySet has no Ack of its own: a batch behind it is acked only once it is committed.
        assert b.set_queries(["qa", "qb"], q1, step=6) == 4
        assert b.send(6, 0.1, ["s-b"], _rows(1, 66)) and b.flush(10.0)
    finally:
        b.close(1.0)

    # after its Welcome, a restarted trainer numbers directly above the run's newest version
    c = _client(daemon.address, run_id)
    try:
        assert _wait(lambda: c.stats().state == "connected")
        assert c.query_version == 4
        assert c.set_queries(["qa", "qb"], q2, step=7) == 5
        assert c.send(7, 0.1, ["s-c"], _rows(1, 67)) and c.flush(10.0)
        assert daemon.get(f"/v1/runs/{run_id}")["queryVersion"] == 5
    finally:
        c.close(1.0)


def test_query_versions_agree_across_ranks(daemon: Daemon) -> None:
    run_id = "qranks"
    q1, q2, q3 = _rows(2, 71), _rows(2, 72), _rows(2, 73)
    ids = ["qa", "qb"]

    def versions() -> List[int]:
        return [qs["version"] for qs in daemon.get(f"/v1/runs/{run_id}")["querySets"]]

    r0 = _client(daemon.address, run_id, rank=0, world_size=2)
    r1 = _client(daemon.address, run_id, rank=1, world_size=2)
    try:
        assert r0.wait_attached() and r0.set_queries(ids, q1, step=0) == 1
        assert r0.send(0, 0.1, ["r0-0"], _rows(1, 1)) and r0.flush(10.0)
        # a fresh sibling attaching after rank 0 published keeps the same numbering
        assert r1.wait_attached() and r1.set_queries(ids, q1, step=0) == 1
        assert r1.send(0, 0.1, ["r1-0"], _rows(1, 2)) and r1.flush(10.0)
        assert r0.set_queries(ids, q2, step=3) == 2 and r1.set_queries(ids, q2, step=3) == 2
        assert r0.send(3, 0.1, ["r0-3"], _rows(1, 3)) and r1.send(3, 0.1, ["r1-3"], _rows(1, 4))
        assert r0.flush(10.0) and r1.flush(10.0) and r1.query_version == 2
        assert versions() == [1, 2]
    finally:
        r0.close(1.0)
        r1.close(1.0)

    # both ranks restarted: each attaches, then both number above the run's newest version
    n0 = _client(daemon.address, run_id, rank=0, world_size=2)
    n1 = _client(daemon.address, run_id, rank=1, world_size=2)
    try:
        assert n0.wait_attached() and n1.wait_attached()
        assert n0.set_queries(ids, q3, step=5) == 3
        rows = _rows(1, 5)
        assert n0.send(5, 0.2, ["r0-5"], rows) and n0.flush(10.0)
        assert n1.set_queries(ids, q3, step=5) == 3 and n1.flush(10.0)
        assert versions() == [1, 2, 3]
        _check_sums(
            daemon,
            run_id,
            [(5, 0.2, ["r0-5"], _wire(rows, "float16"), "float16")],
            [(5, ids, _wire(q3, "float16"), "float16")],
        )
    finally:
        n0.close(1.0)
        n1.close(1.0)


def test_pushed_weights_drive_sampler_and_loss_weights(daemon: Daemon) -> None:
    run_id = "weights"
    dim = 16
    rng = np.random.default_rng(7)
    q = rng.standard_normal((2, dim)).astype(np.float32)
    direction = q.sum(axis=0) / np.linalg.norm(q.sum(axis=0))
    normal = [f"n{i}" for i in range(10)]
    harmful = ["h0", "h1"]
    late = "h2"
    ids = normal + harmful + [late]
    c = _client(daemon.address, run_id, dim=dim)
    try:
        c.set_queries(["qa", "qb"], q, step=0)
        good = (direction + 0.3 * rng.standard_normal((len(normal), dim))).astype(np.float32)
        bad = (-direction + 0.05 * rng.standard_normal((len(harmful), dim))).astype(np.float32)
        assert c.send(0, 0.1, normal, good) and c.send(0, 0.1, harmful, bad) and c.flush(10.0)

        def synced() -> bool:
            rest = daemon.get(f"/v1/runs/{run_id}/weights")["weights"]
            live = c.weights()
            return all(rest.get(h, 1.0) < 0.2 for h in harmful) and all(
                abs(live.get(k, 1.0) - w) < 1e-6 for k, w in rest.items()
            )

        assert _wait(synced, 10.0), (c.weights(), c.stats())
        assert c.weights_version >= 1
        w = np.array([c.weight(i) for i in ids])
        assert all(c.weight(h) < 0.2 for h in harmful) and c.weight(late) == 1.0
        assert max(c.weight(h) for h in harmful) < min(c.weight(n) for n in normal)

        lw = c.loss_weights(ids)
        assert lw.dtype == torch.float32 and torch.equal(lw, torch.tensor(w, dtype=torch.float32))

        n_draws = 20000
        sampler = MotiveSampler(ids, c, num_samples=n_draws, seed=1, refresh_every=500)
        counts = Counter(sampler)
        for i, wi in enumerate(w):  # draws ∝ the pushed weights
            expected = n_draws * wi / w.sum()
            assert abs(counts[i] - expected) < 5 * math.sqrt(expected) + 5, (ids[i], counts[i], expected)

        # a later harmful sample: the next WeightUpdate reaches the sampler within its epoch
        version = c.weights_version
        assert c.send(1, 0.1, [late], bad[:1]) and c.flush(10.0)
        assert _wait(lambda: c.weight(late) < 0.2, 10.0), c.weights()
        assert c.weights_version > version
        counts = Counter(sampler)
        w = np.array([c.weight(i) for i in ids])
        expected_late = n_draws * w[-1] / w.sum()
        assert counts[len(ids) - 1] < n_draws / len(ids) / 2
        assert abs(counts[len(ids) - 1] - expected_late) < 5 * math.sqrt(expected_late) + 5
        assert float(c.loss_weights([late])[0]) == pytest.approx(c.weight(late))
    finally:
        c.close(1.0)


def test_wait_weights_gates_a_step_on_the_daemons_verdict(daemon: Daemon) -> None:
    """A trainer sends a step's sketches, waits for the weight update that follows their commit
    and weights that same step's losses by it (the synthetic-motion experiment's gated mode)."""
    dim = 16
    rng = np.random.default_rng(11)
    q = rng.standard_normal((2, dim)).astype(np.float32)
    direction = q.sum(axis=0) / np.linalg.norm(q.sum(axis=0))
    c = _client(daemon.address, "gated", dim=dim)
    try:
        assert c.wait_weights(c.weights_version, 0.05) is False  # nothing pushed yet: a timeout
        c.set_queries(["qa", "qb"], q, step=0)
        good = (direction + 0.3 * rng.standard_normal((10, dim))).astype(np.float32)
        assert c.send(0, 0.1, [f"n{i}" for i in range(10)], good) and c.flush(10.0)
        # let the recomputes that the first commits asked for finish (intervalMs is 100), so the
        # next update is the one that follows h0's commit
        assert c.wait_weights(0, 10.0), c.stats()
        time.sleep(0.5)
        version = c.weights_version
        bad = (-direction).reshape(1, dim).astype(np.float32)
        assert c.send(1, 0.1, ["h0"], bad) and c.flush(10.0)
        # the update with h0's weight comes after its ack, whether or not it is here already
        assert c.acked_weights_version == version
        assert c.wait_weights(c.acked_weights_version, 10.0), c.stats()
        assert c.weights_version > version
        assert float(c.loss_weights(["h0"])[0]) < 0.2
    finally:
        c.close(1.0)


def test_malformed_calls_never_raise_into_training(daemon: Daemon) -> None:
    run_id = "malformed"
    c = _client(daemon.address, run_id)
    try:
        assert not c.send(0, 0.1, ["a", "b"], _rows(1, 0))  # 1 row for 2 ids
        assert not c.send(0, 0.1, ["a"], _rows(1, 0, DIM + 1))  # wrong k
        assert not c.send("step", 0.1, ["a"], _rows(1, 0))  # type: ignore[arg-type]
        assert not c.send(0, 0.1, ["a"], _rows(1, 0), losses=[1.0, 2.0, "x"])  # type: ignore[list-item]
        assert c.set_queries(["q0", "q1"], _rows(1, 0)) == 0
        assert c.set_queries(["q0"], _rows(1, 0), step="later") == 0  # type: ignore[arg-type]
        s = c.stats()
        assert len(s.errors) == 6 and s.queued_sends == 0
        rows = _rows(1, 1)
        assert c.send(0, 0.1, ["fine"], rows) and c.flush(10.0)  # the client still works
        assert c.stats().state == "connected" and c.stats().acked_batches == 1
        assert _sample(daemon, run_id, "fine")["seen"] == 1
    finally:
        c.close(1.0)
    with pytest.raises(ValueError):
        MotiveClient(daemon.address, run_id, DIM, dtype="bfloat16")  # configuration errors do raise
