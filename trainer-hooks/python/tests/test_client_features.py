"""Per-clip features (``feature_names`` / ``send(..., features=...)``) against the real daemon.

The client names the features in its Hello and sends them with its rows; the daemon stores each
sample's latest row and shows it in ``GET /v1/runs/:run/samples/:id`` (docs/wire.md).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import urllib.parse
from typing import Dict, Iterator

import numpy as np
import pytest
import torch

from motive_hooks import MotiveClient
from test_interop import MOTIVED, Daemon

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not os.path.exists(MOTIVED),
    reason="needs node and bin/motived.js (the daemon) in this checkout",
)

DIM = 8
NAMES = ["shake", "freeze", "flicker"]


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    tmp = tempfile.mkdtemp(prefix="motive-features-")
    d = Daemon(os.path.join(tmp, "data"), {"weights": {"minSeen": 1, "intervalMs": 100}})
    try:
        yield d
    finally:
        d.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _client(d: Daemon, run_id: str, **kw: object) -> MotiveClient:
    opts: Dict[str, object] = dict(fingerprint="fp", max_backoff_s=0.2, backoff_s=0.05, dtype="float32")
    opts.update(kw)
    return MotiveClient(d.address, run_id, DIM, **opts)  # type: ignore[arg-type]


def _features(d: Daemon, run_id: str, sid: str) -> Dict[str, float]:
    got = d.get(f"/v1/runs/{run_id}/samples/{urllib.parse.quote(sid, safe='')}")
    return got["features"]  # type: ignore[no-any-return]


def _f32(row: np.ndarray) -> Dict[str, float]:
    """A row as the daemon stores it (float32), by name."""
    return {n: float(np.float32(v)) for n, v in zip(NAMES, row)}


def test_features_are_sent_and_the_latest_row_is_stored(daemon: Daemon) -> None:
    rng = np.random.default_rng(5)
    c = _client(daemon, "feat", feature_names=NAMES)
    expect: Dict[str, Dict[str, float]] = {}
    try:
        for step in range(4):
            ids = [f"clip-{(step * 3 + i) % 7}" for i in range(3)]
            feats = rng.standard_normal((3, len(NAMES))) * 10
            # A tensor one step, an array the next: both are [n x nf].
            arg = torch.from_numpy(feats) if step % 2 == 0 else feats
            assert c.send(step, 0.1, ids, rng.standard_normal((3, DIM)).astype(np.float32), features=arg)
            for sid, row in zip(ids, feats):
                expect[sid] = _f32(row)  # the latest row wins
        # Rows without features at the same step are not coalesced with rows that have them.
        assert c.send(9, 0.1, ["bare"], rng.standard_normal((1, DIM)).astype(np.float32))
        last = np.array([[1.5, -2.25, 1e6]])
        assert c.send(9, 0.1, ["clip-0"], rng.standard_normal((1, DIM)).astype(np.float32), features=last)
        expect["clip-0"] = _f32(last[0])
        # Malformed features drop the rows (no exception into the training loop).
        assert not c.send(10, 0.1, ["x"], np.zeros((1, DIM), np.float32), features=np.zeros((1, 2)))
        assert not c.send(10, 0.1, ["x"], np.zeros((1, DIM), np.float32), features=[[0.0, float("nan"), 1.0]])
        assert c.flush(10.0)
        st = c.stats()
        assert st.rejected_batches == 0 and st.dropped_rows == 0
        assert any("features have shape" in e for e in st.errors) and any("NaN" in e for e in st.errors)
    finally:
        c.close(2.0)
    for sid, row in expect.items():
        assert _features(daemon, "feat", sid) == row, sid
    assert _features(daemon, "feat", "bare") == {}
    view = daemon.get("/v1/runs/feat/samples/clip-0")
    assert isinstance(view["check"], float) and isinstance(view["fused"], float)


def test_hello_with_other_names_is_refused(daemon: Daemon) -> None:
    first = _client(daemon, "feat-names", feature_names=NAMES)
    try:
        assert first.send(0, 0.1, ["a"], np.zeros((1, DIM), np.float32), features=[[1.0, 2.0, 3.0]])
        assert first.flush(10.0)
    finally:
        first.close(1.0)
    # Without names a client may still attach (and sends no features).
    plain = _client(daemon, "feat-names")
    try:
        assert plain.send(1, 0.1, ["b"], np.ones((1, DIM), np.float32)) and plain.flush(10.0)
        assert not plain.send(2, 0.1, ["c"], np.ones((1, DIM), np.float32), features=[[1.0, 2.0, 3.0]])
    finally:
        plain.close(1.0)
    other = _client(daemon, "feat-names", feature_names=["shake"])
    try:
        end = time.monotonic() + 10
        while other.stats().state != "failed" and time.monotonic() < end:
            time.sleep(0.01)
        assert other.stats().state == "failed"
        assert "MOTIVE_INGEST_FEATURES_MISMATCH" in (other.stats().last_error or "")
    finally:
        other.close(0.5)
    assert _features(daemon, "feat-names", "a") == {"shake": 1.0, "freeze": 2.0, "flicker": 3.0}


def test_bad_feature_names_are_refused_by_the_constructor() -> None:
    for names in (["a", "a"], [""], ["x" * 65], [f"f{i}" for i in range(33)]):
        with pytest.raises(ValueError):
            MotiveClient("127.0.0.1:1", "r", DIM, feature_names=names)
