"""Does a benchmark checkpoint know which way the data's motion runs? For the two content families
with a direction (``fall``: objects accelerate downwards; ``dolly``: the camera moves forward),
30 clips of the development textures are scored played forwards and backwards with the same
noise draws (the flow-matching loss, mean over seeded draws, per noise level s):

- ``paired``: the share of clips whose reversed version has the higher loss (1.0 = the model
  always prefers the data's direction, 0.5 = it does not know it);
- ``unpaired``: the AUC of a reversed clip's loss above another clip's forward one;
- ``mirrored``: as ``paired``, but the reversed clip meets the noise draws played backwards too.

It also times a forward+backward of a batch of 8 twelve-frame latents (the unit of the attribution
benchmark's runtime), interleaved with the shipped configuration's (width 24, no position input,
random weights: the time does not depend on them), and prints the ratio with the load average.

    /usr/bin/python3 examples/motion-bench/direction_probe.py out/pretrained-w24-n320-s1500-d320.pt
    /usr/bin/python3 examples/motion-bench/direction_probe.py          # the shipped checkpoint

The checkpoint's width and position input are read from its weights. Only the development
textures are used (docs/results.md, "The protocol").
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Dict, List, Sequence

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import data as bd  # noqa: E402
import study  # noqa: E402  (puts trainer-hooks/python on the path)
from motive_hooks.toy import SmallVideoDenoiser  # noqa: E402

LEVELS = (0.1, 0.3, 0.5)


def load(path: str) -> SmallVideoDenoiser:
    """A ``SmallVideoDenoiser`` with the checkpoint's width and position input."""
    sd = torch.load(path)
    width, c_in = sd["conv_in.weight"].shape[:2]
    model = SmallVideoDenoiser(channels=3, width=int(width), coords=int(c_in) == 5)
    model.load_state_dict(sd)
    return model.eval()


@torch.no_grad()
def loss(model: torch.nn.Module, x: torch.Tensor, s: float, draws: int, mirror: bool = False) -> float:
    """Flow-matching loss of one latent ``[C, F, h, w]`` at noise level ``s``, mean over draws
    0..draws-1 (``mirror``: each draw played backwards too)."""
    tot = 0.0
    for d in range(draws):
        g = torch.Generator()
        g.manual_seed(d)
        noise = torch.randn((1,) + tuple(x.shape), generator=g)
        if mirror:
            noise = noise.flip(2)
        sv = torch.tensor([s])
        pred = model((1 - sv) * x.unsqueeze(0) + sv * noise, sv)
        tot += float(((pred - (noise - x.unsqueeze(0))) ** 2).mean())
    return tot / draws


def knowledge(model: torch.nn.Module, family: str, clips: int = 30, draws: int = 4, seed: int = 777, levels: Sequence[float] = LEVELS) -> Dict[str, Dict[str, float]]:
    """Paired and unpaired direction knowledge of ``family`` ("rev-fall" or "rev-dolly") per noise
    level; ``mirrored``: paired, the reversed clip scored against the draws played backwards too,
    so that the two losses differ only by the model's own preference of a direction (a model
    blind to the direction of time would tie on every clip), not by how the draw meets the clip."""
    rev = [bd.to_latent(c.frames) for c in bd.make_set({family: clips}, seed, "knows", bd.DEV)]
    fwd = [x.flip(1).contiguous() for x in rev]
    out = {}
    for s in levels:
        lf = [loss(model, x, s, draws) for x in fwd]
        lr = [loss(model, x, s, draws) for x in rev]
        lm = [loss(model, x, s, draws, mirror=True) for x in rev]
        out[f"{s:g}"] = {
            "paired": sum(a > b for a, b in zip(lr, lf)) / len(lf),
            "unpaired": 1 - study.auc(lr, lf),
            "mirrored": sum(a > b for a, b in zip(lm, lf)) / len(lf),
        }
    return out


def step_seconds(models: List[torch.nn.Module], reps: int = 10) -> List[float]:
    """Median seconds of a forward+backward (flow-matching loss) of a batch of 8 twelve-frame
    latents, per model, the models' repetitions interleaved so that load changes hit all alike."""
    x = torch.randn(8, 3, 12, bd.SIZE // 2, bd.SIZE // 2)
    times: List[List[float]] = [[] for _ in models]
    for r in range(reps + 1):
        for i in range(len(models))[:: 1 if r % 2 else -1]:  # alternate the order: no model always runs first
            m = models[i]
            g = torch.Generator()
            g.manual_seed(r)
            m.zero_grad()
            t0 = time.perf_counter()
            study.fm_loss(m, x, g).sum().backward()
            if r:  # the first round warms up
                times[i].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def main(argv: Sequence[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", nargs="?", default=os.path.join(HERE, study.pretrain_name(500, 320)))
    ap.add_argument("--clips", type=int, default=30)
    ap.add_argument("--draws", type=int, default=4)
    ap.add_argument("--json", help="also write the figures here")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    model = load(a.checkpoint)
    res: Dict[str, object] = {"checkpoint": os.path.basename(a.checkpoint), "width": model.conv_in.out_channels, "coords": model.coords}
    for fam in ("rev-dolly", "rev-fall"):
        k = knowledge(model, fam, a.clips, a.draws)
        res[fam] = k
        print(f"{fam[4:]:6s}", "  ".join(f"s={s}: paired {v['paired']:.2f} unpaired {v['unpaired']:.2f} mirrored {v['mirrored']:.2f}" for s, v in k.items()), flush=True)
    base = SmallVideoDenoiser(channels=3, width=study.WIDTH)
    t_model, t_base = step_seconds([model, base])
    res.update(step_s=t_model, base_step_s=t_base, ratio=t_model / t_base, load=os.getloadavg()[0])
    print(f"forward+backward, batch 8x12 frames: {t_model * 1e3:.1f} ms vs the shipped configuration's {t_base * 1e3:.1f} ms (x{t_model / t_base:.2f}; load average {os.getloadavg()[0]:.1f}, 1 thread)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1:])
