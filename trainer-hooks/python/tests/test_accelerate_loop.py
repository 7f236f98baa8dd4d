"""The accelerate-shaped example loop (examples/accelerate_loop.py, the lines docs/integrations.md
adds to DiffSynth-Studio and musubi-tuner) runs against the real daemon for both LoRA layouts:
one row per clip and micro-batch, stamped with its optimizer step, nothing dropped."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from typing import Iterator

import pytest
import torch

from test_interop import MOTIVED, Daemon

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))
import accelerate_loop  # noqa: E402

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not os.path.exists(MOTIVED),
    reason="needs node and bin/motived.js (the daemon) in this checkout",
)


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    tmp = tempfile.mkdtemp(prefix="motive-acc-")
    d = Daemon(os.path.join(tmp, "data"))
    try:
        yield d
    finally:
        d.stop()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.parametrize("lora", ["peft", "kohya"])
def test_accelerate_shaped_loop_streams_every_micro_batch(daemon: Daemon, lora: str) -> None:
    tmp = tempfile.mkdtemp(prefix="motive-acc-")
    try:
        run = f"acc-{lora}"
        ckpt = os.path.join(tmp, "ckpt.pt")
        out = accelerate_loop.main(
            ["--address", daemon.address, "--run", run, "--steps", "3", "--accum", "2", "--micro-batch", "2", "--tiny", "--lora", lora, "--checkpoint", ckpt]
        )
        assert out["steps"] == 3 and out["micro_batches"] == 6
        st = out["stats"]
        assert st.dropped_rows == 0 and st.rejected_batches == 0 and st.acked_batches >= 1
        info = daemon.get(f"/v1/runs/{run}")
        assert info["lastStep"] == 2  # the last optimizer step, not the micro-batch count
        samples = daemon.get(f"/v1/runs/{run}/samples?order=helpful&limit=100")["samples"]
        assert sum(s["seen"] for s in samples) == 12  # 6 micro-batches × 2 clips
        assert all(s["seen"] == 1 for s in samples)  # one epoch: no clip twice
        state = torch.load(ckpt)["sampler"]
        assert state["position"] == 12 and state["epoch"] == 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
