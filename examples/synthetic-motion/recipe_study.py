"""The recipe study: detection AUC of many attribution objectives after one epoch, in one run.

    /usr/bin/python3 examples/synthetic-motion/recipe_study.py SEED [RECIPES]

One uniform-sampling epoch of the experiment's fine-tune (seed ``SEED``); every objective is
sketched at every step and scored in-process with the daemon's estimator (cosine,
``S(z) = Σ_t <ĝ_t(z), mean_j q̂_{t,j}>``, queries refreshed every 5 steps), so dozens of recipes
cost one run instead of one daemon run each. Prints the AUC per corruption type for each recipe,
then for each pair combined by the sum of scores and by the sum of ranks.
"""

from __future__ import annotations

import itertools
import os
import sys
from typing import Dict

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import experiment as ex  # noqa: E402
from motive_hooks import MotionAttributor, flow_matching_predict  # noqa: E402
from motive_hooks.loss import MotionObjective  # noqa: E402

P = flow_matching_predict()
OBJECTIVES: Dict[str, Dict[str, object]] = {
    "masked": dict(kind="masked"),
    "masked-multi-t": dict(kind="masked", timesteps=(250, 500, 751)),
    "masked-qcontrast": dict(kind="masked", contrast="query"),
    "contrast": dict(kind="masked", contrast=True, timesteps=(500, 751)),
    "temporal": dict(kind="temporal"),
    "temporal-t250": dict(kind="temporal", t_fix=250),
    "temporal-t500": dict(kind="temporal", t_fix=500),
    "temporal-multi-t": dict(kind="temporal", timesteps=(250, 500, 751)),
    "temporal-nomask": dict(kind="temporal", use_mask=False),
    "temporal-qcontrast": dict(kind="temporal", contrast="query"),
    "accel": dict(kind="temporal2"),
    "accel-t500": dict(kind="temporal2", t_fix=500),
    "accel-multi-t": dict(kind="temporal2", timesteps=(500, 751)),
}


def main() -> None:
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    names = sys.argv[2].split(",") if len(sys.argv) > 2 else list(OBJECTIVES)
    torch.set_num_threads(2)
    cfg = ex.Config(seeds=(seed,), ft_epochs=1)
    init = ex.pretrain(cfg, os.path.join(ex.HERE, "out"))
    train = ex.prepare(ex.make_set(cfg.train_counts, seed, f"s{seed}"))
    queries = ex.prepare(ex.make_set({"clean": cfg.queries_per_motion * len(ex.MOTIONS)}, 500 + seed, f"q{seed}"))
    model = ex.SmallVideoDenoiser(channels=3, width=cfg.width)
    model.load_state_dict(init)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.ft_lr)
    attrs = {n: MotionAttributor(model, list(cfg.sketch_layers), P, dim=cfg.dim, objectives=[MotionObjective(P, **OBJECTIVES[n])]) for n in names}  # type: ignore[arg-type]
    scores = {n: torch.zeros(len(train.clips)) for n in names}
    qbar: Dict[str, torch.Tensor] = {}
    gen = torch.Generator()
    gen.manual_seed(10_000 + seed)
    order = torch.randperm(len(train.clips), generator=gen).tolist()
    for step in range(len(train.clips) // cfg.batch):
        idx = order[step * cfg.batch : (step + 1) * cfg.batch]
        opt.zero_grad()
        loss = torch.zeros(())
        for grp in ex.by_length(idx, train):
            loss = loss + ex.fm_loss(model, torch.stack([train.latents[i] for i in grp]), gen).sum()
        (loss / cfg.batch).backward()
        lr = opt.param_groups[0]["lr"]
        for n, attr in attrs.items():
            if step % cfg.query_every == 0:
                rows = []
                for grp in ex.by_length(range(len(queries.clips)), queries):
                    s, _ = attr.sketch(torch.stack([queries.latents[i] for i in grp]), torch.stack([queries.masks[i] for i in grp]), query=True)
                    rows.append(s)
                qbar[n] = torch.cat(rows).mean(dim=0)
            for grp in ex.by_length(idx, train):
                s, _ = attr.sketch(torch.stack([train.latents[i] for i in grp]), torch.stack([train.masks[i] for i in grp]))
                scores[n][grp] += lr * (s @ qbar[n])
        opt.step()

    def show(label: str, v: torch.Tensor) -> None:
        d = ex.detection({c.id: float(v[i]) for i, c in enumerate(train.clips)}, train.clips)
        print(f"{label:45s} " + "  ".join(f"{k} {d[k]:.2f}" for k in ("jitter", "frozen", "shuffle", "flicker", "appearance", "harmful")), flush=True)

    for n in names:
        show(n, scores[n])
    rank = {n: torch.argsort(torch.argsort(v)).float() for n, v in scores.items()}
    for a, b in itertools.combinations(names, 2):
        show(f"sum {a} + {b}", scores[a] + scores[b])
        show(f"rank {a} + {b}", rank[a] + rank[b])


if __name__ == "__main__":
    main()
