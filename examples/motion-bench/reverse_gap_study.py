"""A model-based per-clip check for the order-only families, on the development split: the
reversal loss gap ``½ [L(z, n) − L(z̄, n̄) + L(z, n̄) − L(z̄, n)]`` (``z̄`` the clip reversed, ``n̄``
the draw reversed) of the pre-trained model at s = 0.3, two draws; AUC per family against clean
clips, and the fused signal with the gap as a third check beside the hook's two (the study's
``accel-luma`` scores of the same seed, from ``study.py run dev SEED``).

    /usr/bin/python3 examples/motion-bench/reverse_gap_study.py 0
"""

from __future__ import annotations

import json
import os
import sys
from typing import List, Sequence

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "trainer-hooks", "python"))

import data as bd  # noqa: E402
import study  # noqa: E402
from motive_hooks.toy import SmallVideoDenoiser  # noqa: E402


@torch.no_grad()
def reversal_gap(model: torch.nn.Module, lats: Sequence[torch.Tensor], s: float = 0.3, draws: int = 2) -> List[float]:
    """Per clip: how much higher the model's loss is on the clip than on the clip reversed."""
    gap = [0.0] * len(lats)
    for grp in study.by_length(range(len(lats)), lats):
        x = torch.stack([lats[i] for i in grp])
        xr = x.flip(2)
        tot = torch.zeros(len(grp))
        sv = torch.full((len(grp),), s)

        def loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return ((model((1 - s) * a + s * b, sv) - (b - a)) ** 2).flatten(1).mean(1)

        for d in range(draws):
            g = torch.Generator()
            g.manual_seed(d)
            n = torch.randn((1,) + tuple(x.shape[1:]), generator=g).expand_as(x)
            nr = n.flip(2)
            tot += 0.5 * (loss(x, n) - loss(xr, nr) + loss(x, nr) - loss(xr, n)) / draws
        for j, i in enumerate(grp):
            gap[i] = float(tot[j])
    return gap


def main(seed: int) -> None:
    clips = bd.make_set(bd.training_counts(bd.DEV), 100 + seed, f"dev{seed}", bd.DEV)
    model = SmallVideoDenoiser(channels=3, width=study.WIDTH)
    model.load_state_dict(study.pretrain())
    model.eval()
    gap = torch.tensor(reversal_gap(model, [bd.to_latent(c.frames) for c in clips]))
    r = json.load(open(os.path.join(study.OUT, f"study-dev-{seed}.json")))
    kinds, contents = r["kinds"], r["contents"]
    assert kinds == [c.kind for c in clips], "the study's clips differ"
    checks = torch.tensor(r["checks"])
    score = torch.tensor(r["scores"]["accel-luma"])

    def row(name: str, v: List[float]) -> None:
        clean = [v[i] for i, k in enumerate(kinds) if k == "clean"]
        out = {k: study.auc([v[i] for i, kk in enumerate(kinds) if kk == k], clean) for k in sorted(set(kinds) - {"clean"})}
        out["rev-fall vs clean fall"] = study.auc([v[i] for i, k in enumerate(kinds) if k == "rev-fall"], [v[i] for i, k in enumerate(kinds) if k == "clean" and contents[i] == "fall"])
        out["harmful"] = study.auc([v[i] for i, k in enumerate(kinds) if k in bd.HARMFUL], clean)
        out["decoys"] = study.auc([v[i] for i, k in enumerate(kinds) if k in bd.DECOYS], clean)
        print(f"{name:36s}", " ".join(f"{a}={b:.2f}" for a, b in out.items()))

    row("reversal gap (check alone)", (-gap).tolist())
    for w in (2, 4, 6):
        row(f"fused, accel-luma, 2 checks, w{w}", study.fused(score, checks, 0, w).tolist())
        row(f"fused, accel-luma, 2 checks + gap, w{w}", study.fused(score, torch.cat([checks, gap.view(-1, 1)], 1), 0, w).tolist())


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
