"""Two ranks (torch.distributed over gloo, DistributedDataParallel) fine-tune the Wan-style DiT
with LoRA against the real daemon, each streaming its own sketches; one rank is SIGKILLed
mid-epoch and both resume from the last checkpoint. The daemon's per-sample counts and sums equal
a float64 reference built from the rows the daemon acknowledged (nothing lost, nothing counted
twice), the resumed samplers draw what an uninterrupted run draws, and the ranks' weights agree."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from collections import Counter
from typing import Any, Dict, List, Tuple

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

import ddp_worker
from motive_hooks.sampler import MotiveSampler
from test_interop import MOTIVED, Daemon

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not os.path.exists(MOTIVED) or not torch.distributed.is_available(),
    reason="needs node, bin/motived.js (the daemon) and torch.distributed",
)

STEPS = 6  # optimizer steps; 3 per epoch per rank (24 clips, 2 ranks, 2 × 2 clips a step)
CKPT_EVERY = 2
KILL = [1, 4]  # rank 1 dies after step 4's first micro-batch (mid second epoch); last checkpoint: step 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _read(path: str) -> List[Dict[str, Any]]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _unit(raw_hex: str, n: int) -> np.ndarray:
    x = np.frombuffer(bytes.fromhex(raw_hex), dtype="<f2").reshape(n, -1).astype(np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


class _Ones:
    """No pushed weights (the daemon runs the observe policy): every clip weighs 1."""

    def weights(self) -> Dict[str, float]:
        return {}

    @property
    def weights_version(self) -> int:
        return 0


def test_two_rank_ddp_lora_run_survives_a_killed_rank() -> None:
    tmp = tempfile.mkdtemp(prefix="motive-ddp-")
    daemon = Daemon(os.path.join(tmp, "data"), {"weights": {"policy": "observe", "minSeen": 1}})
    try:
        cfg: Dict[str, Any] = {
            "address": daemon.address,
            "run_id": "ddp-lora",
            "dir": tmp,
            "steps": STEPS,
            "ckpt_every": CKPT_EVERY,
            "resume": False,
            "kill": KILL,
            "port": _free_port(),
        }
        with pytest.raises(mp.ProcessExitedException) as died:  # the job goes down, as under torchrun
            mp.spawn(ddp_worker.main, args=(cfg,), nprocs=2, join=True)
        logs_before = [_read(os.path.join(tmp, f"log-rank{r}.jsonl")) for r in range(2)]
        assert [d["step"] for d in logs_before[1] if d["kind"] == "draw"][-1] == KILL[1]
        assert not os.path.exists(os.path.join(tmp, "final-rank0.pt"))
        resumed_at = torch.load(os.path.join(tmp, "ckpt-rank1.pt"))["step"]
        assert resumed_at == 4

        cfg.update(resume=True, kill=None, port=_free_port())
        mp.spawn(ddp_worker.main, args=(cfg,), nprocs=2, join=True)
        logs = [_read(os.path.join(tmp, f"log-rank{r}.jsonl")) for r in range(2)]

        # the ranks' LoRA weights agree (DDP averaged every step's gradients)
        finals = [torch.load(os.path.join(tmp, f"final-rank{r}.pt")) for r in range(2)]
        assert finals[0].keys() == finals[1].keys() and all(torch.equal(finals[0][k], finals[1][k]) for k in finals[0])

        # each rank trained on exactly the draws of an uninterrupted sampler
        ids = ddp_worker.clip_ids()
        per_step = ddp_worker.MICRO * ddp_worker.ACCUM
        for r in range(2):
            first = [d for d in logs_before[r] if d["kind"] == "draw"]
            second = [d for d in logs[r][len(logs_before[r]) :] if d["kind"] == "draw"]
            assert second[0]["step"] == resumed_at and first[-1]["step"] > resumed_at - 1
            # what the model trained on: the first run up to its checkpoint, then the resumed run
            trained = [i for d in first if d["step"] < resumed_at for i in d["idx"]] + [i for d in second for i in d["idx"]]
            ref = MotiveSampler(ids, _Ones(), seed=7, refresh_every=4, rank=r, world_size=2)
            expect: List[int] = []
            while len(expect) < STEPS * per_step:
                expect.extend(ref)
            assert trained == expect[: STEPS * per_step], r
        # together the ranks saw every clip once per epoch
        first_epoch = [i for r in range(2) for d in logs[r] if d["kind"] == "draw" and d["step"] < 3 for i in d["idx"]]
        assert sorted(first_epoch) == list(range(len(ids)))

        # the daemon's sums: float64 reference of every acknowledged row, both ranks, both runs;
        # a row is scored against the query set in force at its step among those the daemon held
        # when it committed the row (the first run's rows never see the resumed run's sets)
        sets: List[Tuple[int, int, int, List[str], str]] = []  # (step, version, phase, ids, hex)
        rows: List[Tuple[int, Dict[str, Any]]] = []
        for r in range(2):
            for n, d in enumerate(logs[r]):
                phase = 0 if n < len(logs_before[r]) else 1
                if d["kind"] == "rows":
                    rows.append((phase, d))
                elif d["kind"] == "queries" and r == 0:
                    sets.append((d["step"], d["version"], phase, d["ids"], d["hex"]))
        sets.sort()
        run = daemon.get("/v1/runs/ddp-lora")
        qids = run["queryIds"]
        assert sorted(qids) == ["q-a", "q-b"]
        expect_sums: Dict[str, np.ndarray] = {}
        seen: Counter = Counter()
        for phase, d in rows:
            g = _unit(d["hex"], len(d["ids"]))
            active = [q for q in sets if q[0] <= d["step"] and q[2] <= phase]
            assert active
            q_ids, q_hex = active[-1][3], active[-1][4]
            q = _unit(q_hex, len(q_ids))[[q_ids.index(j) for j in qids]]
            for k, sid in enumerate(d["ids"]):
                seen[sid] += 1
                expect_sums[sid] = expect_sums.get(sid, np.zeros(len(qids))) + d["lr"] * (g[k] @ q.T)
        replayed = sum(1 for r in range(2) for d in logs_before[r] if d["kind"] == "rows" and d["step"] >= resumed_at)
        assert replayed > 0  # the rows acknowledged after the checkpoint count, and the replay again
        for sid, n in seen.items():
            got = daemon.get(f"/v1/runs/ddp-lora/samples/{sid}")
            assert got["seen"] == n, (sid, got["seen"], n)
            np.testing.assert_allclose(np.array(got["querySums"]), expect_sums[sid], rtol=1e-4, atol=1e-7)
        assert sum(seen.values()) == len(rows) * ddp_worker.MICRO
    finally:
        daemon.stop()
        shutil.rmtree(tmp, ignore_errors=True)
