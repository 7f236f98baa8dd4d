"""The daemon process and the capture-recording client of the sprite experiment (experiment.py):
``node bin/motived.js`` on free ports with a temporary store, and a :class:`MotiveClient` wrapper
that records the run's messages for ``motive replay``."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any, Dict, Optional, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "trainer-hooks", "python"))

import torch  # noqa: E402

from motive_hooks import MotiveClient  # noqa: E402
from motive_hooks._proto import motive_pb2 as pb  # noqa: E402


class Daemon:
    """``node bin/motived.js`` on free ports with a temporary store.

    ``MOTIVE_DAEMON_ROOT`` (environment) runs the daemon of another checkout (default: this one).
    """

    def __init__(self, config: Dict[str, Any]) -> None:
        self.dir = tempfile.mkdtemp(prefix="motive-synthetic-")
        cfg_path = os.path.join(self.dir, "config.json")
        with open(cfg_path, "w") as f:
            json.dump(config, f)
        env = dict(os.environ, MOTIVE_DATA_DIR=os.path.join(self.dir, "data"), MOTIVE_GRPC_PORT="0", MOTIVE_HTTP_PORT="0", MOTIVE_CONFIG=cfg_path)
        root = os.environ.get("MOTIVE_DAEMON_ROOT") or ROOT
        self.proc = subprocess.Popen(
            ["node", os.path.join(root, "bin", "motived.js")], cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        deadline = time.time() + 60
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("the daemon exited before it was ready")
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if msg.get("msg") == "ready":
                self.grpc = f"127.0.0.1:{msg['grpcPort']}"
                self.http = f"http://127.0.0.1:{msg['httpPort']}"
                break
            if time.time() > deadline:
                raise RuntimeError("the daemon did not get ready in 60 s")

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.http + path, timeout=30) as r:
            return json.loads(r.read())

    def scores(self, run: str) -> Dict[str, Tuple[float, int]]:
        """Live score and seen count of every sample of ``run``."""
        rows = self.get(f"/v1/runs/{run}/samples?order=harmful&limit=10000")["samples"]
        return {r["id"]: (float(r["score"]), int(r["seen"])) for r in rows}

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


# -- recording ------------------------------------------------------------------------------------

CAPTURE_MAGIC = b"MOTCAP1\n"
KIND_CODES = {"hello": 1, "batch": 2, "queries": 3}


class RecordingClient:
    """Forwards to a :class:`MotiveClient` and records the run's messages as a capture file.

    Each record: ``u32 length, u8 kind (1 hello, 2 batch, 3 queries), u32 rank, f64 t_ms``, then the
    serialized ``motive.v1.TrainerMessage``; little-endian, after the 8-byte magic ``MOTCAP1\\n``.
    Batches are numbered ``seq = 1, 2, …`` per ``send``; query sets ``version = 1, 2, …``.
    """

    def __init__(self, inner: MotiveClient, path: str, identity: Any, run_id: str) -> None:
        self.inner = inner
        self.f = open(path, "wb")
        self.f.write(CAPTURE_MAGIC)
        self.t0 = time.time()
        self.seq = 0
        self.version = 0
        self.dim = int(identity.dim)
        hello = pb.Hello(
            run_id=run_id,
            rank=0,
            world_size=1,
            projection=pb.Projection(kind=identity.kind, seed=int(identity.seed), dim=self.dim, fingerprint=identity.fingerprint),
            dtype=pb.FLOAT32,
            client="motive-synthetic-motion",
            apply_weights=True,
        )
        self._write("hello", pb.TrainerMessage(hello=hello))

    def _write(self, kind: str, msg: Any) -> None:
        blob = msg.SerializeToString()
        self.f.write(struct.pack("<IBId", len(blob), KIND_CODES[kind], 0, 1000.0 * (time.time() - self.t0)))
        self.f.write(blob)

    def set_queries(self, ids: Sequence[str], sketches: torch.Tensor, step: int = 0, groups: Optional[Sequence[str]] = None) -> Any:
        self.version += 1
        arr = sketches.detach().to(torch.float32).contiguous().numpy().astype("<f4")
        q = pb.QuerySet(version=self.version, step=int(step), query_ids=list(ids), groups=list(groups or []), sketches=arr.tobytes())
        self._write("queries", pb.TrainerMessage(queries=q))
        return self.inner.set_queries(ids, sketches, step=step, groups=groups)

    def send(self, step: int, lr: float, ids: Sequence[str], sketches: torch.Tensor, losses: Optional[torch.Tensor] = None) -> Any:
        self.seq += 1
        arr = sketches.detach().to(torch.float32).contiguous().numpy().astype("<f4")
        b = pb.SketchBatch(
            seq=self.seq, step=int(step), lr=float(lr), sample_ids=list(ids), sketches=arr.tobytes(), losses=[] if losses is None else [float(v) for v in losses]
        )
        self._write("batch", pb.TrainerMessage(batch=b))
        return self.inner.send(step, lr, ids, sketches, losses)

    def close(self, timeout_s: float = 10.0) -> None:
        self.f.close()
        self.inner.close(timeout_s=timeout_s)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
