"""Interop with the real daemon (bin/motived.js): a training run streams to it through a SIGKILL
and restart; the daemon's per-sample sums equal what the hook sent, nothing lost or counted twice;
weights the daemon pushes change what the sampler draws."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import pytest
import torch

from motive_hooks import MotionAttributor, MotiveClient, MotiveSampler, flow_matching_predict
from motive_hooks.toy import SmallVideoDenoiser, synthetic_latents

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
MOTIVED = os.path.join(REPO, "bin", "motived.js")

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not os.path.exists(MOTIVED),
    reason="needs node and bin/motived.js (the daemon) in this checkout",
)


class Daemon:
    """``node bin/motived.js`` on 127.0.0.1, started and killed by the test.

    Args:
        data_dir: the store directory (its last component must not contain a dot).
        config: path of a JSON config file (``MOTIVE_CONFIG``), or a dict written to
            ``motive.json`` beside ``data_dir``; None: defaults.
        grpc_port, http_port: ports to bind; 0 picks free ones (a restart passes the old ones).
        env: extra environment variables (e.g. ``MOTIVE_TRAINER_TOKEN``).
        ready_timeout_s: how long to wait for the ``ready`` log line, seconds.
        read_token: bearer token for REST reads, when the daemon requires tokens.
    """

    def __init__(
        self,
        data_dir: str,
        config: Union[str, Dict[str, Any], None] = None,
        grpc_port: int = 0,
        http_port: int = 0,
        env: Optional[Dict[str, str]] = None,
        ready_timeout_s: float = 30.0,
        read_token: Optional[str] = None,
    ) -> None:
        self.read_token = read_token
        self.data_dir = data_dir
        if isinstance(config, dict):
            path = os.path.join(os.path.dirname(os.path.abspath(data_dir)), "motive.json")
            with open(path, "w") as f:
                json.dump(config, f)
            config = path
        self.config = config
        self.extra_env = dict(env or {})
        full_env = dict(os.environ)
        full_env.update(
            MOTIVE_DATA_DIR=data_dir,
            MOTIVE_GRPC_PORT=str(grpc_port),
            MOTIVE_HTTP_PORT=str(http_port),
        )
        if config is not None:
            full_env["MOTIVE_CONFIG"] = config
        full_env.update(self.extra_env)
        self.proc = subprocess.Popen(
            ["node", MOTIVED], cwd=REPO, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.grpc_port = 0
        self.http_port = 0
        seen: List[str] = []
        deadline = time.monotonic() + ready_timeout_s
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("msg") == "ready":
                self.grpc_port = int(rec["grpcPort"])
                self.http_port = int(rec["httpPort"])
                break
        if not self.grpc_port:
            self.proc.kill()
            self.proc.wait(10)
            raise RuntimeError("daemon did not get ready:\n" + "".join(seen[-20:]))
        # keep reading the log so the daemon never blocks on a full pipe
        self._drain = threading.Thread(target=self._read_log, daemon=True)
        self._drain.start()

    def _read_log(self) -> None:
        assert self.proc.stdout is not None
        for _ in self.proc.stdout:
            pass

    @property
    def address(self) -> str:
        """``127.0.0.1:<grpc port>``."""
        return f"127.0.0.1:{self.grpc_port}"

    def get(self, path: str) -> Any:
        """GET ``path`` from the REST API; the decoded JSON body."""
        req = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}")
        if self.read_token is not None:
            req.add_header("Authorization", f"Bearer {self.read_token}")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def restart(self) -> "Daemon":
        """A new daemon on the same ports, data dir, config and environment."""
        return Daemon(
            self.data_dir, self.config, self.grpc_port, self.http_port, self.extra_env, read_token=self.read_token
        )

    def kill(self) -> None:
        """SIGKILL: no drain, no final commit."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM (graceful drain), SIGKILL after 15 s."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def _decode(data: bytes, n: int, k: int) -> np.ndarray:
    return np.frombuffer(data, dtype="<f2").reshape(n, k).astype(np.float64)


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def test_training_run_through_daemon_crash() -> None:
    torch.manual_seed(0)
    run_id = "interop-run"
    dim = 64
    tmp = tempfile.mkdtemp(prefix="motive-interop-")
    config = os.path.join(tmp, "motive.json")
    with open(config, "w") as f:
        json.dump({"weights": {"policy": "downweight", "minSeen": 1, "intervalMs": 200, "beta": 1.0, "wMin": 0.05}}, f)
    data_dir = os.path.join(tmp, "data")
    daemon = Daemon(data_dir, config)
    client: Optional[MotiveClient] = None
    try:
        model = SmallVideoDenoiser(width=8)
        opt = torch.optim.SGD(model.parameters(), lr=1e-2)
        ids = [f"clip-{i:02d}" for i in range(12)]
        data = synthetic_latents(len(ids), size=6, frames=4, seed=3)
        masks = torch.rand(len(ids), 4, 6, 6)
        queries = synthetic_latents(2, size=6, frames=4, seed=9)
        attr = MotionAttributor(model, model.sketch_layers(), flow_matching_predict(), dim=dim, seed=1, query_every=4)
        client = MotiveClient(f"127.0.0.1:{daemon.grpc_port}", run_id, dim, sketcher=attr.sketcher, block_timeout_s=60.0)
        attr.client = client
        attr.add_queries(["q-left", "q-right"], queries, None)

        sent_rows: List[Tuple[int, float, List[str], bytes]] = []
        sent_queries: List[Tuple[int, int, List[str], bytes]] = []
        real_send, real_set = client.send, client.set_queries

        def rec_send(step: int, lr: float, sids: Any, sk: Any, losses: Any = None, features: Any = None) -> bool:
            ok = real_send(step, lr, sids, sk, losses, features=features)
            assert ok
            sent_rows.append((step, lr, list(sids), sk.detach().to(torch.float16).numpy().tobytes()))
            return ok

        def rec_set(qids: Any, sk: Any, step: Optional[int] = None, groups: Any = None) -> int:
            v = real_set(qids, sk, step=step, groups=groups)
            sent_queries.append((v, int(step or 0), list(qids), sk.detach().to(torch.float16).numpy().tobytes()))
            return v

        client.send = rec_send  # type: ignore[method-assign]
        client.set_queries = rec_set  # type: ignore[method-assign]
        sampler = MotiveSampler(ids, client, num_samples=4, seed=0)

        def train(steps: range) -> None:
            for step in steps:
                idx = list(sampler)
                x, m = data[idx], masks[idx]
                lr = 1e-2 * (1.0 + 0.1 * step)
                for g in opt.param_groups:
                    g["lr"] = lr
                opt.zero_grad()
                t = torch.rand(len(idx))
                noise = torch.randn_like(x)
                s = t.view(-1, 1, 1, 1, 1)
                loss = ((model((1 - s) * x + s * noise, t) - (noise - x)) ** 2).mean()
                loss.backward()
                attr.step(step, lr, [ids[i] for i in idx], x, m)
                opt.step()

        train(range(0, 6))
        daemon.kill()  # mid-run, with batches possibly unacked
        train(range(6, 9))  # trainer keeps going during the outage
        daemon = daemon.restart()
        train(range(9, 14))
        assert client.flush(60.0), client.stats()
        st = client.stats()
        assert st.dropped_rows == 0 and st.rejected_batches == 0
        assert st.reconnects >= 1
        print(f"interop: {st.sent_batches} batches, {st.resent_batches} resent after the restart, {st.reconnects} reconnects")

        # expected sums in float64 from exactly the bytes sent
        run = daemon.get(f"/v1/runs/{run_id}")
        qids = run["queryIds"]
        assert sorted(qids) == ["q-left", "q-right"]
        qsets = sorted(sent_queries, key=lambda q: (q[1], q[0]))
        expect: Dict[str, np.ndarray] = {i: np.zeros(len(qids)) for i in ids}
        seen: Counter = Counter()
        for step, lr, sids, raw in sent_rows:
            g = _unit(_decode(raw, len(sids), dim))
            active = [q for q in qsets if q[1] <= step]
            for sid in sids:
                seen[sid] += 1
            if not active:
                continue
            _, _, q_ids, q_raw = active[-1]
            q = _unit(_decode(q_raw, len(q_ids), dim))
            order = [q_ids.index(j) for j in qids]
            contrib = lr * (g @ q[order].T)
            for r, sid in enumerate(sids):
                expect[sid] += contrib[r]
        for sid in seen:
            got = daemon.get(f"/v1/runs/{run_id}/samples/{sid}")
            assert got["seen"] == seen[sid], (sid, got["seen"], seen[sid])
            np.testing.assert_allclose(np.array(got["querySums"]), expect[sid], rtol=1e-4, atol=1e-7)
            assert np.abs(expect[sid]).max() > 0

        # weights: the daemon's down-weighting reaches the client and the sampler
        # (the daemon may push more than one version after the restart's recompute: wait until the
        # client holds the daemon's version and it has stopped changing, so the draws below use it)
        deadline = time.monotonic() + 20
        rest: Dict[str, float] = {}
        settled: Optional[int] = None
        since = time.monotonic()
        while time.monotonic() < deadline:
            body = daemon.get(f"/v1/runs/{run_id}/weights")
            rest, version = body["weights"], body["version"]
            live = client.weights()
            same = any(w < 0.99 for w in rest.values()) and all(abs(live.get(k, 1.0) - w) < 1e-3 for k, w in rest.items())
            if not same or version != settled:
                settled, since = (version if same else None), time.monotonic()
            elif time.monotonic() - since >= 1.0:
                break
            time.sleep(0.1)
        low = min(rest, key=lambda k: rest[k])
        assert rest[low] < 0.99, rest
        assert abs(client.weight(low) - rest[low]) < 1e-3
        draws = Counter(MotiveSampler(ids, client, num_samples=20000, seed=5))
        w = np.array([client.weight(i) for i in ids])
        expected_low = 20000 * client.weight(low) / w.sum()
        got_low = draws[ids.index(low)]
        assert got_low < 20000 / len(ids) * 0.995  # drawn less than uniform sampling would
        assert abs(got_low - expected_low) < 5 * np.sqrt(expected_low) + 5
    finally:
        if client is not None:
            client.close(2.0)
        daemon.stop()
        shutil.rmtree(tmp, ignore_errors=True)
