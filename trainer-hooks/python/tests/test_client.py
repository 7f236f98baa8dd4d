"""MotiveClient and MotiveSampler against an in-process fake daemon (wire rules of DESIGN §4)."""

from __future__ import annotations

import socket
import time
from collections import Counter
from typing import List

import numpy as np
import torch

from fake_daemon import FakeDaemon, FakeState
from motive_hooks import MotiveClient, MotiveSampler

DIM = 8


def _rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(cond, timeout_s: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return False


def test_batches_queries_and_encoding() -> None:
    d = FakeDaemon()
    c = MotiveClient(d.address, "run-a", DIM, dtype="float32", fingerprint="fp1", seed=3)
    try:
        q = _rows(2, 0)
        assert c.set_queries(["q0", "q1"], q, step=0) == 1
        sent: List[np.ndarray] = []
        for step in range(5):
            rows = _rows(3, step + 1)
            sent.append(rows)
            assert c.send(step, 0.1, [f"s{step}-{i}" for i in range(3)], rows, losses=[1.0, 2.0, 3.0])
        assert c.flush(5.0)
        st = d.state
        assert [b.seq for b in st.batches] == [1, 2, 3, 4, 5]
        for b, rows in zip(st.batches, sent):
            got = np.frombuffer(b.sketches, dtype="<f4").reshape(-1, DIM)
            np.testing.assert_array_equal(got, rows)
            assert list(b.losses) == [1.0, 2.0, 3.0]
            assert abs(b.lr - 0.1) < 1e-15
        assert st.queries[1].query_ids == ["q0", "q1"]
        np.testing.assert_array_equal(np.frombuffer(st.queries[1].sketches, dtype="<f4").reshape(2, DIM), q)
        h = st.hellos[0]
        assert h.run_id == "run-a" and h.projection.fingerprint == "fp1" and h.projection.dim == DIM
        assert h.client.startswith("motive-hooks/") and h.apply_weights
    finally:
        c.close(2.0)
        d.stop()


def test_float16_rows_and_coalescing() -> None:
    d = FakeDaemon()
    c = MotiveClient(d.address, "run-h", DIM, fingerprint="fp")
    try:
        rows = _rows(4, 9)
        for i in range(4):  # same step: may be coalesced into fewer batches
            c.send(7, 0.5, [f"x{i}"], rows[i : i + 1])
        assert c.flush(5.0)
        got = np.concatenate([np.frombuffer(b.sketches, dtype="<f2").reshape(-1, DIM) for b in d.state.batches])
        np.testing.assert_array_equal(got, rows.astype(np.float16))
        assert [i for b in d.state.batches for i in b.sample_ids] == ["x0", "x1", "x2", "x3"]
    finally:
        c.close(2.0)
        d.stop()


def test_resend_after_restart_is_exactly_once() -> None:
    port = _free_port()
    state = FakeState()
    d = FakeDaemon(state, port=port, ack=False)  # commits but never acks: everything stays unacked
    c = MotiveClient(f"127.0.0.1:{port}", "run-r", DIM, dtype="float32", fingerprint="fp", block_timeout_s=10.0)
    try:
        c.set_queries(["q"], _rows(1, 0), step=0)
        for step in range(4):
            c.send(step, 0.01, [f"a{step}"], _rows(1, step))
        assert _wait(lambda: len(state.batches) == 4)
        assert c.stats().unacked_batches == 4
        d.stop()
        for step in range(4, 8):  # during the outage: queued, not lost
            assert c.send(step, 0.01, [f"a{step}"], _rows(1, step))
        d = FakeDaemon(state, port=port, ack=True)
        assert c.flush(15.0)
        assert [b.seq for b in state.batches] == list(range(1, 9))
        assert [b.sample_ids[0] for b in state.batches] == [f"a{i}" for i in range(8)]
        assert state.duplicates == 0  # committed-but-unacked batches are not resent after Welcome
        s = c.stats()
        assert s.reconnects >= 1 and s.unacked_batches == 0 and s.dropped_rows == 0
        assert len(state.hellos) == 2
    finally:
        c.close(2.0)
        d.stop()


def test_outage_never_stalls_beyond_bound() -> None:
    port = _free_port()  # nothing listens here
    c = MotiveClient(f"127.0.0.1:{port}", "run-o", DIM, fingerprint="fp", policy="drop", max_queue=3)
    t0 = time.monotonic()
    ok = [c.send(i, 0.1, ["z"], _rows(1, i)) for i in range(10)]
    assert time.monotonic() - t0 < 1.0
    assert ok[:3] == [True] * 3 and not any(ok[3:])
    assert c.stats().dropped_rows == 7
    c.close(0.2)

    c = MotiveClient(f"127.0.0.1:{port}", "run-o", DIM, fingerprint="fp", policy="block", block_timeout_s=0.2, max_queue=1)
    assert c.send(0, 0.1, ["z"], _rows(1, 0))
    t0 = time.monotonic()
    assert not c.send(1, 0.1, ["z"], _rows(1, 1))
    assert 0.15 <= time.monotonic() - t0 < 1.0
    assert not c.flush(0.1)
    c.close(0.2)


def test_refused_hello_fails_softly() -> None:
    d = FakeDaemon()
    d.state.fingerprint = "other"
    c = MotiveClient(d.address, "run-f", DIM, fingerprint="mine")
    try:
        assert _wait(lambda: c.stats().state == "failed")
        assert not c.send(0, 0.1, ["a"], _rows(1, 0))
        assert "PROJECTION_MISMATCH" in (c.stats().last_error or "")
        assert not c.flush(0.5)
    finally:
        c.close(0.5)
        d.stop()


def test_rejected_batch_is_counted_and_dropped() -> None:
    d = FakeDaemon()
    d.state.reject_seqs = {2}
    c = MotiveClient(d.address, "run-j", DIM, fingerprint="fp")
    try:
        for step in range(3):
            c.send(step, 0.1, [f"r{step}"], _rows(1, step))
            c.flush(5.0)  # one batch per step, so seq 2 is exactly step 1
        assert c.flush(5.0)
        assert c.stats().rejected_batches == 1
    finally:
        c.close(1.0)
        d.stop()


def test_weights_drive_sampler_and_loss_weights() -> None:
    d = FakeDaemon()
    d.state.weights = {"s0": 0.0}
    d.state.weights_version = 1
    ids = [f"s{i}" for i in range(4)]
    c = MotiveClient(d.address, "run-w", DIM, fingerprint="fp")
    try:
        assert _wait(lambda: c.weights_version == 1)
        assert c.weights() == {"s0": 0.0}
        sampler = MotiveSampler(ids, c, num_samples=4000, seed=1, refresh_every=4000)
        counts = Counter(sampler)
        assert counts[0] == 0 and all(900 < counts[i] < 1800 for i in (1, 2, 3))
        d.push_weights({"s1": 0.0, "s2": 0.0})
        assert _wait(lambda: c.weights_version == 2)
        counts = Counter(sampler)
        assert counts == Counter({3: 4000})
        lw = c.loss_weights(ids)
        assert torch.equal(lw, torch.tensor([0.0, 0.0, 0.0, 1.0]))
    finally:
        c.close(1.0)
        d.stop()
