"""The seed study: one-epoch live-score AUC of many recipes on many seeds, from one pass per seed.

    /usr/bin/python3 examples/synthetic-motion/seed_study.py sketch SEED [SEED ...]
    /usr/bin/python3 examples/synthetic-motion/seed_study.py score SEED [SEED ...] [--recipes a,b]

``sketch`` runs the first epoch of the full experiment's uniform-sampling fine-tune of a seed
exactly as :func:`experiment.finetune` does (the same clips, order, training noise and query
refreshes: the daemon's live score after one epoch is what this reproduces) and stores, for every
*component* (one objective kind at one timestep, one noise seed and one spatial pooling), the raw
(unnormalised) sketch of every training clip at the step it was drawn and of every query at every
refresh, under ``out/study/``.

``score`` combines components into recipes without running the model again. The sketch is linear
in the per-sample gradient, so the sketch of a loss averaged over several timesteps is the mean of
the components' raw sketches (a recipe ``objective``), and the hook's several-objective sketch
(``objectives=[...]``) scores a clip by the sum over objectives of its cosine with that objective's
mean query (a recipe with several objectives). Each clip's score is the daemon's:
``Σ_t lr · <ĝ_t(z), mean_j q̂_{t,j}>`` with the queries in force at its step.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import experiment as ex  # noqa: E402
from motive_hooks import MotionAttributor, flow_matching_predict, normalize_sketches  # noqa: E402
from motive_hooks.loss import MotionObjective  # noqa: E402

Component = Tuple[str, int, int, Union[int, str]]
"""(kind, timestep, noise seed, spatial pool); a pool ``"b3"`` is a 3×3 box blur (stride 1), a pool
``"cP"`` is the channel mean of the error then ``P × P`` pooling (the hook's ``channel_pool``)."""


class BlurObjective(MotionObjective):
    """The objective with the prediction error and mask box-blurred (``width × width``, stride 1,
    edges averaged over the inside of the window) instead of block-pooled."""

    def __init__(self, *args: object, blur: int = 3, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.blur = blur

    def _loss(self, pred: torch.Tensor, target: torch.Tensor, masks: Optional[torch.Tensor], pool: int = 1) -> torch.Tensor:
        def box(x: torch.Tensor) -> torch.Tensor:
            lead, (h, w) = x.shape[:-2], x.shape[-2:]
            y = torch.nn.functional.avg_pool2d(x.reshape(-1, 1, h, w), self.blur, stride=1, padding=self.blur // 2, count_include_pad=False)
            return y.reshape(*lead, h, w)

        err = box(pred.float() - target.float())
        return super()._loss(err, torch.zeros_like(err), None if masks is None else box(masks.float()))


def objective(c: "Component") -> MotionObjective:
    p = flow_matching_predict()
    if isinstance(c[3], str) and c[3].startswith("c"):
        return MotionObjective(p, kind=c[0], t_fix=c[1], noise_seed=c[2], spatial_pool=int(c[3][1:]), channel_pool=True)
    if isinstance(c[3], str):
        return BlurObjective(p, kind=c[0], t_fix=c[1], noise_seed=c[2], blur=int(c[3][1:]))
    return MotionObjective(p, kind=c[0], t_fix=c[1], noise_seed=c[2], spatial_pool=c[3])


COMPONENTS: List[Component] = [
    (kind, t, s, p)
    for p in (1, 2, 4, "b3")
    for kind, t, s in (
        ("temporal2", 500, 0),
        ("temporal2", 751, 1),
        ("temporal2", 250, 2),
        ("temporal2", 375, 2),
        ("temporal2", 250, 0),
        ("temporal2", 500, 1),
        ("temporal2", 751, 2),
    )
] + [("temporal2", 250, s, p) for p in (2, 4) for s in (1, 3)] + [("temporal2", 500, 0, "c1"), ("temporal2", 751, 1, "c1"), ("temporal2", 250, 2, "c2")]


def comp_name(c: Component) -> str:
    return f"{c[0]}@{c[1]}n{c[2]}" + (c[3] if isinstance(c[3], str) else f"p{c[3]}")


def study_dir(out: str, seed: int) -> str:
    return os.path.join(out, "study", f"s{seed}")


def sketch_seed(seed: int, out: str, comps: Sequence[Component]) -> None:
    """The first epoch of seed ``seed``'s uniform run; raw sketches of every component."""
    cfg = ex.Config(seeds=(seed,))
    d = study_dir(out, seed)
    os.makedirs(d, exist_ok=True)
    todo = [c for c in comps if not os.path.exists(os.path.join(d, comp_name(c) + ".pt"))]
    if not todo:
        return
    init = ex.pretrain(cfg, out)
    train = ex.prepare(ex.make_set(cfg.train_counts, seed, f"s{seed}"))
    queries = ex.prepare(ex.make_set({"clean": cfg.queries_per_motion * len(ex.MOTIONS)}, 500 + seed, f"q{seed}"))
    # as experiment.finetune: the same model, optimizer, generator and order
    torch.manual_seed(seed)
    model = ex.SmallVideoDenoiser(channels=3, width=cfg.width)
    model.load_state_dict(init)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.ft_lr)
    gen = torch.Generator()
    gen.manual_seed(10_000 + seed)
    n = len(train.clips)
    steps = n // cfg.batch
    order: List[int] = []
    while len(order) < cfg.ft_epochs * steps * cfg.batch:
        order.extend(torch.randperm(n, generator=gen).tolist())
    p = flow_matching_predict()
    attrs = {
        c: MotionAttributor(model, list(cfg.sketch_layers), p, dim=cfg.dim, objectives=[objective(c)])
        for c in todo
    }
    train_raw = {c: torch.zeros(n, cfg.dim) for c in todo}
    query_raw: Dict[Component, List[torch.Tensor]] = {c: [] for c in todo}
    clip_step = torch.zeros(n, dtype=torch.long)
    refresh_steps: List[int] = []
    lrs: List[float] = []
    for step in range(steps):
        idx = order[step * cfg.batch : (step + 1) * cfg.batch]
        lr = opt.param_groups[0]["lr"]
        lrs.append(lr)
        opt.zero_grad()
        loss = torch.zeros(())
        for grp in ex.by_length(idx, train):
            loss = loss + ex.fm_loss(model, torch.stack([train.latents[i] for i in grp]), gen).sum()
        (loss / cfg.batch).backward()
        if step % cfg.query_every == 0:
            refresh_steps.append(step)
            for c, attr in attrs.items():
                rows = torch.zeros(len(queries.clips), cfg.dim)
                for grp in ex.by_length(range(len(queries.clips)), queries):
                    raw, _ = attr.raw_sketch(torch.stack([queries.latents[i] for i in grp]), torch.stack([queries.masks[i] for i in grp]), query=True)
                    rows[grp] = raw
                query_raw[c].append(rows)
        for grp in ex.by_length(idx, train):
            clip_step[grp] = step
            for c, attr in attrs.items():
                raw, _ = attr.raw_sketch(torch.stack([train.latents[i] for i in grp]), torch.stack([train.masks[i] for i in grp]))
                train_raw[c][grp] = raw
        opt.step()
    kinds = [cl.kind for cl in train.clips]
    for c in todo:
        torch.save(
            {"train": train_raw[c], "queries": torch.stack(query_raw[c]), "clip_step": clip_step, "refresh_steps": refresh_steps, "lr": lrs, "kinds": kinds},
            os.path.join(d, comp_name(c) + ".pt"),
        )


Recipe = List[List[Tuple[Component, float]]]
"""Objectives, each a weighted sum of components' raw sketches."""


def recipe(*objectives: Sequence[Component]) -> Recipe:
    """Objectives whose loss is the mean over their components (the hook's ``timesteps=``)."""
    return [[(c, 1.0 / len(o)) for c in o] for o in objectives]


def multi_t(ts: Sequence[int], pool: Union[int, str] = 1, kind: str = "temporal2") -> Sequence[Component]:
    """The components of ``MotionObjective(kind, timesteps=ts, spatial_pool=pool)`` (noise seed i)."""
    return [(kind, t, i, pool) for i, t in enumerate(ts)]


DRAWS = {250: (0, 2), 500: (0, 1), 751: (1, 2)}
"""The two noise seeds of each timestep in the component list."""


def two_draws(ts: Sequence[int], pool: int = 1, kind: str = "temporal2") -> Sequence[Component]:
    return [(kind, t, s, pool) for t in ts for s in DRAWS[t]]


RECIPES: Dict[str, Recipe] = {
    "accel-multi-t": recipe(multi_t((500, 751))),
    "accel@250+500+751": recipe(multi_t((250, 500, 751))),
    "accel@500+751+250": recipe(multi_t((500, 751, 250))),
    "accel@500+751+375": recipe(multi_t((500, 751, 375))),
    "pool2 @500+751": recipe(multi_t((500, 751), 2)),
    "pool2 @250+500+751": recipe(multi_t((250, 500, 751), 2)),
    "pool2 @500+751+250": recipe(multi_t((500, 751, 250), 2)),
    "pool2 @500+751+375": recipe(multi_t((500, 751, 375), 2)),
    "pool4 @500+751": recipe(multi_t((500, 751), 4)),
    "pool4 @250+500+751": recipe(multi_t((250, 500, 751), 4)),
    "pool4 @500+751+250": recipe(multi_t((500, 751, 250), 4)),
    "pool4 @500+751+375": recipe(multi_t((500, 751, 375), 4)),
    "blur3 @250+500+751": recipe(multi_t((250, 500, 751), "b3")),
    # the low timestep added at the coarse scale only (the hook's spatial_pool=(1, 1, p)); the
    # first is the default
    "accel-coarse250": recipe([("temporal2", 500, 0, 1), ("temporal2", 751, 1, 1), ("temporal2", 250, 2, 2)]),
    # accel-coarse250 on the channel mean of the error (the hook's channel_pool): the default
    "accel-luma": recipe([("temporal2", 500, 0, "c1"), ("temporal2", 751, 1, "c1"), ("temporal2", 250, 2, "c2")]),
    "accel-coarse250 luma@250 only": recipe([("temporal2", 500, 0, 1), ("temporal2", 751, 1, 1), ("temporal2", 250, 2, "c2")]),
    "accel-luma colour@250": recipe([("temporal2", 500, 0, "c1"), ("temporal2", 751, 1, "c1"), ("temporal2", 250, 2, 2)]),
    "accel-coarse375": recipe([("temporal2", 500, 0, 1), ("temporal2", 751, 1, 1), ("temporal2", 375, 2, 2)]),
    "accel-coarse250-pool4": recipe([("temporal2", 500, 0, 1), ("temporal2", 751, 1, 1), ("temporal2", 250, 2, 4)]),
    # accel-multi-t and a coarse t = 250 term with 4 noise draws as two objectives
    "accel-multi-t + pool2 @250x4": recipe(multi_t((500, 751)), [("temporal2", 250, n, 2) for n in range(4)]),
    "accel-multi-t + pool4 @250x4": recipe(multi_t((500, 751)), [("temporal2", 250, n, 4) for n in range(4)]),
    # per-timestep normalisation: each timestep its own objective (sum of cosines)
    "per-t @500,751": recipe(*[[c] for c in multi_t((500, 751))]),
    "per-t @250,500,751": recipe(*[[c] for c in multi_t((250, 500, 751))]),
    "per-t pool2 @500,751": recipe(*[[c] for c in multi_t((500, 751), 2)]),
    "per-t pool2 @250,500,751": recipe(*[[c] for c in multi_t((250, 500, 751), 2)]),
    "per-t pool4 @250,500,751": recipe(*[[c] for c in multi_t((250, 500, 751), 4)]),
    # fine and coarse scale as two objectives
    "accel-multi-t + pool2": recipe(multi_t((500, 751)), multi_t((500, 751), 2)),
    "accel-multi-t + pool4": recipe(multi_t((500, 751)), multi_t((500, 751), 4)),
    # two noise draws per timestep (common randomness, averaged)
    "2 draws @500+751": recipe(two_draws((500, 751))),
    "2 draws @250+500+751": recipe(two_draws((250, 500, 751))),
    "pool2 2 draws @500+751": recipe(two_draws((500, 751), 2)),
    "pool2 2 draws @250+500+751": recipe(two_draws((250, 500, 751), 2)),
    "pool4 2 draws @250+500+751": recipe(two_draws((250, 500, 751), 4)),
    "per-t pool2 2 draws @250,500,751": recipe(*[two_draws((t,), 2) for t in (250, 500, 751)]),
}


def load(out: str, seed: int, c: Component) -> Dict[str, object]:
    return torch.load(os.path.join(study_dir(out, seed), comp_name(c) + ".pt"))


def layer_blocks(cfg: "ex.Config") -> List[Tuple[int, int]]:
    """The columns of each sketched layer in a sketch (the sketcher's layout)."""
    attr = MotionAttributor(ex.SmallVideoDenoiser(channels=3, width=cfg.width), list(cfg.sketch_layers), flow_matching_predict(), dim=cfg.dim)
    return [(lp.offset, lp.offset + lp.k) for lp in attr.sketcher.layers]


def score(out: str, seed: int, rec: Recipe, combine: str = "mean") -> Tuple[torch.Tensor, List[str]]:
    """The daemon's cosine score of every training clip after one epoch under ``rec``.

    ``combine``: ``mean`` (the daemon's score: mean over queries), ``vote`` (majority vote: how
    many queries' per-query sums are above that query's median over clips, the cut interpolated
    as the daemon's ``votePercentile`` is; ties count half in the AUC) or ``perlayer`` (each
    sketched layer's block L2-normalised before the whole sketch)."""
    total = None
    kinds: List[str] = []
    for obj in rec:
        g = None
        q = None
        for c, w in obj:
            d = load(out, seed, c)
            g = w * d["train"] if g is None else g + w * d["train"]  # type: ignore[operator]
            q = w * d["queries"] if q is None else q + w * d["queries"]  # type: ignore[operator]
            kinds = d["kinds"]  # type: ignore[assignment]
            clip_step = d["clip_step"]
            refresh = d["refresh_steps"]
            lrs = d["lr"]
        assert g is not None and q is not None
        if combine == "perlayer":
            blocks = layer_blocks(ex.Config())

            def norm(x: torch.Tensor) -> torch.Tensor:
                return normalize_sketches(torch.cat([normalize_sketches(x[:, a:b]) for a, b in blocks], dim=1))

        else:
            norm = normalize_sketches
        gn = norm(g)
        qn = torch.stack([norm(qr) for qr in q])  # [refreshes, m, k]
        which = torch.tensor([max(i for i, s in enumerate(refresh) if s <= int(st)) for st in clip_step])  # type: ignore[union-attr]
        lr = torch.tensor([lrs[int(st)] for st in clip_step])  # type: ignore[index,union-attr]
        per_query = lr.unsqueeze(1) * torch.einsum("nk,nmk->nm", gn, qn[which])  # S_j(z)
        s = per_query.mean(dim=1)
        if combine == "vote":
            # the daemon's votes at votePercentile 50 (linear interpolation); ties count half
            tau = torch.quantile(per_query, 0.5, dim=0)
            s = (per_query > tau).sum(dim=1).float()
        total = s if total is None else total + s
    assert total is not None
    return total, kinds


def aucs(scores: torch.Tensor, kinds: List[str]) -> Dict[str, float]:
    clips = [ex.Clip(str(i), torch.zeros(0), "", k) for i, k in enumerate(kinds)]
    return ex.detection({str(i): float(v) for i, v in enumerate(scores)}, clips)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("sketch", "score"))
    ap.add_argument("seeds", type=int, nargs="+")
    ap.add_argument("--recipes", default=None, help="comma-separated names (default all)")
    ap.add_argument("--out", default=os.path.join(ex.HERE, "out"))
    ap.add_argument("--combine", choices=("mean", "vote", "perlayer"), default="mean", help="how a clip's score is formed (see score())")
    a = ap.parse_args()
    torch.set_num_threads(2)
    if a.what == "sketch":
        comps = COMPONENTS
        if a.recipes:  # only what these recipes need
            comps = list(dict.fromkeys(c for n in a.recipes.split(",") for obj in RECIPES[n] for c, _ in obj))
        for seed in a.seeds:
            sketch_seed(seed, a.out, comps)
            print(f"seed {seed}: sketched", flush=True)
        return
    names = a.recipes.split(",") if a.recipes else list(RECIPES)
    for name in names:
        res = [aucs(*score(a.out, seed, RECIPES[name], a.combine)) for seed in a.seeds]
        cols = []
        for k in ("jitter", "frozen", "shuffle", "flicker", "appearance"):
            cols.append(f"{k[:4]} " + "/".join(f"{r[k]:.3f}" for r in res))
        ok = all(r["jitter"] >= 0.9 and r["frozen"] >= 0.9 and r["appearance"] <= 0.6 for r in res)
        print(f"{name:28s} {'PASS' if ok else '    '} " + "  ".join(cols), flush=True)


if __name__ == "__main__":
    main()
