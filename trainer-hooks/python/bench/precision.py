"""bf16 vs fp32 attribution scores on the Wan-style DiT: Spearman correlation and cosine.

Scores are what the daemon ranks by: the dot product of each training clip's normalised sketch
with each query's. The same model, clips and queries are sketched in fp32, under
``torch.autocast("cpu", bfloat16)`` (the usual mixed-precision fine-tune) and with the whole
model cast to bfloat16 (``--full_bf16``-style training); the script prints the Spearman rank
correlation of each against fp32, over all (clip, query) pairs, and the mean cosine of the
sketches themselves. Both LoRA (PEFT layout, ``layers="lora"``) and full linears are measured.

    python3 trainer-hooks/python/bench/precision.py [--clips 48] [--queries 4] [--dim 512] [--threads 2]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import time
from typing import Any, Tuple

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from motive_hooks import MotionAttributor, flow_matching_predict  # noqa: E402
from motive_hooks.dit import WanMiniDiT, wan_mini_latents  # noqa: E402
from motive_hooks.lora import inject_peft_lora  # noqa: E402


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    def rank(x: torch.Tensor) -> torch.Tensor:
        r = torch.empty_like(x, dtype=torch.float64)
        r[x.argsort()] = torch.arange(len(x), dtype=torch.float64)
        return r - r.mean()

    ra, rb = rank(a), rank(b)
    return float(ra @ rb / (ra.norm() * rb.norm()))


def sketches(attr: MotionAttributor, train: torch.Tensor, queries: torch.Tensor, ctx: Any) -> Tuple[torch.Tensor, torch.Tensor]:
    with ctx:
        s = torch.cat([attr.sketch(train[i : i + 8], None)[0] for i in range(0, len(train), 8)])
        q, _ = attr.sketch(queries, None, query=True)
    return s.double(), q.double()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=48)
    ap.add_argument("--queries", type=int, default=4)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--frames", type=int, default=5)
    ap.add_argument("--size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, load {os.getloadavg()[0]:.1f}")
    train = wan_mini_latents(args.clips, frames=args.frames, size=args.size, seed=3)
    queries = wan_mini_latents(args.queries, frames=args.frames, size=args.size, seed=9)
    print("| layers | params | Spearman autocast bf16 | Spearman bf16 weights | sketch cosine autocast / bf16 weights |")
    print("|---|---|---|---|---|")
    for setup in ("LoRA r=16 (PEFT), all attention+FFN", "full linears: self_attn.o, ffn.2"):
        model = WanMiniDiT(seed=1)
        if setup.startswith("LoRA"):
            inject_peft_lora(model, model.lora_targets(), r=16, alpha=16.0, init_up_std=0.01, seed=2)
            layers: Any = "lora"
        else:
            layers = ["blocks.*.self_attn.o", "blocks.*.ffn.2"]
        t0 = time.perf_counter()
        attr = MotionAttributor(model, layers, flow_matching_predict(), dim=args.dim)
        s32, q32 = sketches(attr, train, queries, contextlib.nullcontext())
        s_ac, q_ac = sketches(attr, train, queries, torch.autocast("cpu", dtype=torch.bfloat16))
        model.to(torch.bfloat16)
        attr16 = MotionAttributor(model, layers, flow_matching_predict(), dim=args.dim)
        s16, q16 = sketches(attr16, train.bfloat16(), queries.bfloat16(), contextlib.nullcontext())
        base = (s32 @ q32.t()).flatten()
        rho_ac = spearman(base, (s_ac @ q_ac.t()).flatten())
        rho_16 = spearman(base, (s16 @ q16.t()).flatten())
        cos_ac = float((s32 * s_ac).sum(1).mean())
        cos_16 = float((s32 * s16).sum(1).mean())
        n = sum(p.numel() for p in model.parameters())
        print(f"| {setup} | {n / 1e6:.2f} M | {rho_ac:.4f} | {rho_16:.4f} | {cos_ac:.4f} / {cos_16:.4f} |  ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
