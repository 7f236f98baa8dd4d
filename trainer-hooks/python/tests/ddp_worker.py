"""One rank of the 2-rank DDP fine-tune used by test_ddp_fault.py (started by torch.multiprocessing).

The Wan-style DiT with PEFT-layout LoRA, wrapped in DistributedDataParallel over gloo; the data
comes from a :class:`MotiveDistributedSampler`; two micro-batches per optimizer step (the first
under ``no_sync``), each attributed with ``step`` = the optimizer step and streamed to the daemon
by the rank's own client. After every micro-batch the rank flushes and appends what the daemon
acknowledged (row bytes, step, lr, ids; query sets) to its log, so the test can rebuild the
daemon's sums in float64. A checkpoint (LoRA weights, optimizer, sampler state, next step) is
written every ``ckpt_every`` steps; ``kill`` = ``(rank, step)`` makes that rank SIGKILL itself
after that step's first micro-batch.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
from typing import Any, Dict, List, Optional

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from motive_hooks import MotionAttributor, MotiveClient, MotiveDistributedSampler, flow_matching_predict
from motive_hooks.dit import WanMiniDiT, wan_mini_latents
from motive_hooks.lora import inject_peft_lora

N_CLIPS = 24
MICRO = 2  # clips per micro-batch
ACCUM = 2  # micro-batches per optimizer step
DIM = 80


def clip_ids() -> List[str]:
    return [f"clip-{i:02d}" for i in range(N_CLIPS)]


def _lr(step: int) -> float:
    return 0.02 * (1.0 + 0.1 * step)


def main(rank: int, cfg: Dict[str, Any]) -> None:
    # a rank stops when a collective fails, never half-way through a flush and its log line
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{cfg['port']}", rank=rank, world_size=2, timeout=datetime.timedelta(seconds=60)
    )
    model = WanMiniDiT.tiny(seed=1)
    inject_peft_lora(model, model.lora_targets(), r=4, init_up_std=0.02, seed=2)
    ddp = DistributedDataParallel(model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(trainable, lr=_lr(0))
    ids = clip_ids()
    data = wan_mini_latents(N_CLIPS, seed=3)
    queries = wan_mini_latents(2, seed=9)

    attr = MotionAttributor(ddp, "lora", flow_matching_predict(), dim=DIM, seed=1, query_every=3)
    assert attr.model is model  # the pass runs the bare module, not DDP
    client = MotiveClient(cfg["address"], cfg["run_id"], DIM, rank=rank, world_size=2, sketcher=attr.sketcher, block_timeout_s=60.0)
    attr.client = client
    assert client.wait_attached(30.0)
    dist.barrier()  # both ranks attached before either numbers a query set
    attr.add_queries(["q-a", "q-b"], queries, None)
    sampler = MotiveDistributedSampler(ids, client, seed=7, refresh_every=4)

    ckpt_path = os.path.join(cfg["dir"], f"ckpt-rank{rank}.pt")
    step = 0
    if cfg["resume"]:
        ck = torch.load(ckpt_path)
        model.load_state_dict(ck["model"], strict=False)
        opt.load_state_dict(ck["opt"])
        sampler.load_state_dict(ck["sampler"])
        step = int(ck["step"])

    pending: List[Dict[str, Any]] = []
    real_send, real_set = client.send, client.set_queries

    def send(s: int, lr: float, sids: Any, sk: Any, losses: Any = None) -> bool:
        ok = real_send(s, lr, sids, sk, losses)
        pending.append({"kind": "rows", "step": s, "lr": lr, "ids": list(sids), "hex": sk.to(torch.float16).numpy().tobytes().hex()})
        return ok

    def set_queries(qids: Any, sk: Any, step: Optional[int] = None, groups: Any = None) -> int:
        v = real_set(qids, sk, step=step, groups=groups)
        pending.append({"kind": "queries", "version": v, "step": int(step or 0), "ids": list(qids), "hex": sk.to(torch.float16).numpy().tobytes().hex()})
        return v

    client.send = send  # type: ignore[method-assign]
    client.set_queries = set_queries  # type: ignore[method-assign]
    log = open(os.path.join(cfg["dir"], f"log-rank{rank}.jsonl"), "a")
    draws = iter(sampler)
    while step < cfg["steps"]:
        for g in opt.param_groups:
            g["lr"] = _lr(step)
        opt.zero_grad(set_to_none=True)
        for micro in range(ACCUM):
            idx: List[int] = []
            while len(idx) < MICRO:
                try:
                    idx.append(next(draws))
                except StopIteration:
                    draws = iter(sampler)  # the next epoch
            x = data[idx]
            gen = torch.Generator().manual_seed(1000 * step + 10 * micro + rank)
            s = torch.rand(MICRO, generator=gen)
            noise = torch.randn(x.shape, generator=gen)
            sv = s.view(-1, 1, 1, 1, 1)
            ctx = ddp.no_sync() if micro < ACCUM - 1 else _null()
            with ctx:
                loss = ((ddp((1 - sv) * x + sv * noise, s) - (noise - x)) ** 2).mean() / ACCUM
                loss.backward()
            attr.step(step, _lr(step), [ids[i] for i in idx], x, None)
            assert client.flush(60.0), client.stats()
            for rec in pending:
                log.write(json.dumps(rec) + "\n")
            log.write(json.dumps({"kind": "draw", "step": step, "micro": micro, "idx": idx}) + "\n")
            log.flush()
            pending.clear()
            if cfg.get("kill") == [rank, step] and micro == 0:
                os.kill(os.getpid(), signal.SIGKILL)
        opt.step()
        step += 1
        if step % cfg["ckpt_every"] == 0:
            state = {
                "model": {k: v for k, v in model.state_dict().items() if "lora_" in k},
                "opt": opt.state_dict(),
                "sampler": sampler.state_dict(),
                "step": step,
            }
            torch.save(state, ckpt_path + ".tmp")
            os.replace(ckpt_path + ".tmp", ckpt_path)
    torch.save({k: v for k, v in model.state_dict().items() if "lora_" in k}, os.path.join(cfg["dir"], f"final-rank{rank}.pt"))
    st = client.stats()
    client.close(10.0)
    assert st.dropped_rows == 0 and st.rejected_batches == 0, st
    dist.destroy_process_group()


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: Any) -> None:
        return None
