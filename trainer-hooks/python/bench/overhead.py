"""Training step time with and without the attribution hook on the small video denoiser.

Prints the median step time (ms) of: the plain training step; with the hook attributing every
step; with the hook attributing every 4th step; and the overhead of each in percent. Motion masks
are precomputed (as a data pipeline would); sketches go to a MotiveClient when ``--address`` names
a running daemon, else they are computed and discarded.

    python3 trainer-hooks/python/bench/overhead.py [--steps 48] [--threads 1] [--address 127.0.0.1:50051]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import List, Optional

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from motive_hooks import MotionAttributor, MotiveClient, epsilon_predict  # noqa: E402
from motive_hooks.toy import SmallVideoDenoiser, linear_alphas_cumprod, synthetic_latents  # noqa: E402


def run(steps: int, every: Optional[int], args: argparse.Namespace) -> List[float]:
    torch.manual_seed(0)
    model = SmallVideoDenoiser(channels=4, width=args.width)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    alphas = linear_alphas_cumprod()
    predict = epsilon_predict(alphas)
    data = synthetic_latents(args.batch * 4, frames=args.frames, size=args.size, seed=1)
    masks = torch.rand(data.shape[0], args.frames, args.size, args.size)
    ids = [f"clip-{i}" for i in range(data.shape[0])]
    attr: Optional[MotionAttributor] = None
    client: Optional[MotiveClient] = None
    if every is not None:
        layers = args.layers.split(",") if args.layers else model.sketch_layers()
        attr = MotionAttributor(model, layers, predict, dim=args.dim, every=every, query_every=10**9)
        if args.address:
            client = MotiveClient(args.address, f"bench-{every}-{time.time_ns()}", args.dim, sketcher=attr.sketcher, policy="drop")
            attr.client = client
    times: List[float] = []
    for step in range(steps + args.warmup):
        lo = (step * args.batch) % data.shape[0]
        x, m = data[lo : lo + args.batch], masks[lo : lo + args.batch]
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        t = torch.randint(0, 1000, (x.shape[0],))
        noise = torch.randn_like(x)
        a = alphas[t].view(-1, 1, 1, 1, 1)
        loss = ((model(a.sqrt() * x + (1 - a).sqrt() * noise, t) - noise) ** 2).mean()
        loss.backward()
        if attr is not None:
            attr.step(step, 1e-4, ids[lo : lo + args.batch], x, m)
        opt.step()
        if step >= args.warmup:
            times.append(time.perf_counter() - t0)
    if client is not None:
        client.close(5.0)
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=48, help="timed steps per configuration (a multiple of 16 keeps every 4th step at 25%%)")
    p.add_argument("--warmup", type=int, default=4, help="untimed steps first")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--batch", type=int, default=4, help="clips per step")
    p.add_argument("--frames", type=int, default=8, help="latent frames")
    p.add_argument("--size", type=int, default=16, help="latent height = width")
    p.add_argument("--width", type=int, default=32, help="denoiser hidden channels")
    p.add_argument("--dim", type=int, default=512, help="sketch length k")
    p.add_argument("--layers", default="", help="comma-separated layers to sketch (default: the toy model's sketch_layers())")
    p.add_argument("--address", default="", help="daemon gRPC address (optional)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    # interleave configurations in rounds so machine noise hits all of them alike
    results = {"baseline": [], "every step": [], "every 4th step": []}  # type: ignore[var-annotated]
    rounds = 4
    for _ in range(rounds):
        results["baseline"] += run(args.steps // rounds, None, args)
        results["every step"] += run(args.steps // rounds, 1, args)
        results["every 4th step"] += run(args.steps // rounds, 4, args)
    base = statistics.median(results["baseline"])
    mean_base = statistics.mean(results["baseline"])
    print(f"device=cpu threads={args.threads} batch={args.batch} latents=[{args.batch},4,{args.frames},{args.size},{args.size}] "
          f"width={args.width} k={args.dim} layers={args.layers or ','.join(SmallVideoDenoiser().sketch_layers())}")
    for name, ts in results.items():
        med, mean = statistics.median(ts), statistics.mean(ts)
        print(f"{name:>15}: median {1e3 * med:7.2f} ms/step, mean {1e3 * mean:7.2f} ms/step, "
              f"overhead {100 * (mean / mean_base - 1):+6.1f}% (mean), {100 * (med / base - 1):+6.1f}% (median)")


if __name__ == "__main__":
    main()
