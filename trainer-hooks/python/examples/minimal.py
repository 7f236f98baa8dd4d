"""Minimal training loop with Motive attached: sketches streamed, weights applied by the sampler.

Start the daemon first (``npm start`` in the repository root, gRPC on 127.0.0.1:50051), then:

    python3 trainer-hooks/python/examples/minimal.py [--address 127.0.0.1:50051] [--steps 20]

Without a reachable daemon the loop still runs: the client queues, then drops and counts (policy
``drop``), and the sampler draws uniformly.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from motive_hooks import MotionAttributor, MotiveClient, MotiveSampler, motion_mask  # noqa: E402
from motive_hooks.toy import SmallVideoDenoiser, moving_square_clip, synthetic_latents  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description="Motive minimal example")
    p.add_argument("--address", default="127.0.0.1:50051", help="daemon gRPC address")
    p.add_argument("--run", default="minimal-example", help="run id")
    p.add_argument("--steps", type=int, default=20, help="optimizer steps")
    args = p.parse_args()
    torch.manual_seed(0)

    # a toy dataset: latents [N, C, F, h, w] and their motion masks [N, F, h, w]
    ids = [f"clip-{i:03d}" for i in range(32)]
    latents = synthetic_latents(len(ids), frames=8, size=8)
    masks = torch.rand(len(ids), 8, 8, 8)
    # a query: the motion we want more of (a square gliding right), as latents + mask
    clip, _ = moving_square_clip(frames=8, size=32)
    q_lat = torch.nn.functional.interpolate(clip.permute(1, 0, 2, 3)[None], size=(8, 8, 8))[:, :3]
    q_lat = torch.cat([q_lat, q_lat[:, :1]], dim=1)  # 4 latent channels
    q_mask = motion_mask(clip, (8, 8, 8))[None]

    model = SmallVideoDenoiser(channels=4, width=16)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    # --- Motive: the lines a training loop adds -------------------------------------------------
    attr = MotionAttributor(model)
    attr.client = client = MotiveClient(args.address, args.run, attr.dim, sketcher=attr, policy="drop")
    attr.add_queries(["glide-right"], q_lat, q_mask)
    sampler = MotiveSampler(ids, client, num_samples=4 * args.steps)
    # --------------------------------------------------------------------------------------------

    draws = iter(sampler)
    for step in range(args.steps):
        idx = [next(draws) for _ in range(4)]
        x, m = latents[idx], masks[idx]
        opt.zero_grad()
        t = torch.rand(len(idx))
        noise = torch.randn_like(x)
        s = t.view(-1, 1, 1, 1, 1)
        loss = ((model((1 - s) * x + s * noise, t) - (noise - x)) ** 2).mean()
        loss.backward()
        attr.step(step, opt.param_groups[0]["lr"], [ids[i] for i in idx], x, m)  # Motive
        opt.step()
        print(f"step {step:3d} loss {loss.item():.4f}")

    client.close(timeout_s=5.0)
    st = client.stats()
    print(f"sent {st.sent_batches} batches, acked {st.acked_batches}, dropped {st.dropped_rows} rows, state {st.state}")
    print(f"weights from the daemon: version {client.weights_version}, {len(client.weights())} samples down-weighted")


if __name__ == "__main__":
    main()
