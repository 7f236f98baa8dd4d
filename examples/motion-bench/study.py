"""Development study on the motion benchmark: does the model know the harmful families, how do
model-free statistics and attribution recipes rank them after one epoch (in-process, the daemon's
estimator), on the development split only.

    /usr/bin/python3 examples/motion-bench/study.py pretrain [--steps N] [--dolly N] [--width W] [--coords]
    /usr/bin/python3 examples/motion-bench/study.py run dev 0 1 2
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Dict, List, Sequence, Tuple

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "trainer-hooks", "python"))

import data as bd  # noqa: E402
import features as bf  # noqa: E402
from motive_hooks import MotionAttributor, flow_matching_predict, motion_mask, normalize_sketches  # noqa: E402
from motive_hooks.loss import MotionObjective  # noqa: E402
from motive_hooks.motion_check import FEATURE_NAMES, clip_features  # noqa: E402
from motive_hooks.toy import SmallVideoDenoiser  # noqa: E402

OUT = os.path.join(HERE, "out")
torch.set_num_threads(1)
WIDTH = 24
BATCH = 8
LAYERS = ["mlp_in", "mlp_out", "conv_out"]
DIM = 256


def prepare(clips: Sequence[bd.Clip]) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
    lats = [bd.to_latent(c.frames) for c in clips]
    masks = [motion_mask(c.frames, (c.frames.shape[0], bd.SIZE // 2, bd.SIZE // 2)) for c in clips]
    return lats, masks


def by_length(idx: Sequence[int], lats: Sequence[torch.Tensor]) -> List[List[int]]:
    groups: Dict[int, List[int]] = {}
    for i in idx:
        groups.setdefault(int(lats[i].shape[1]), []).append(i)
    return [groups[k] for k in sorted(groups)]


def fm_loss(model: torch.nn.Module, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    s = torch.rand(x.shape[0], generator=gen)
    noise = torch.randn(x.shape, generator=gen)
    sv = s.view(-1, 1, 1, 1, 1)
    pred = model((1 - sv) * x + sv * noise, s)
    return ((pred - (noise - x)) ** 2).flatten(1).mean(dim=1)


PRETRAIN_STEPS = int(os.environ.get("MOTION_BENCH_PRETRAIN_STEPS", "500"))


def pretrain_name(steps: int, clips: int, width: int = WIDTH, dolly: int = 0, coords: bool = False) -> str:
    """The checkpoint's file name; the default configuration keeps the shipped name."""
    extra = (f"-d{dolly}" if dolly else "") + ("-xy" if coords else "")
    return f"pretrained-w{width}-n{clips}-s{steps}{extra}.pt"


def dolly_clips(n: int, seed: int, prefix: str, split: bd.Split) -> List[bd.Clip]:
    """``n`` clean dollies (the camera moving forward) of ``split``'s textures."""
    gen = torch.Generator()
    gen.manual_seed(seed)
    texs = bd.textures(split.texture_prefix)
    out = []
    for i in range(n):
        frames = bd.LENGTHS[int(torch.randint(len(bd.LENGTHS), (1,), generator=gen))]
        clip = bd.render("dolly", frames, texs, bd.pick_textures(texs, gen), gen)
        out.append(bd.Clip(f"{prefix}-dolly-{i:03d}", clip, "dolly", "clean"))
    return out


def pretrain(
    steps: int = PRETRAIN_STEPS, clips: int = 320, fresh: bool = False, width: int = WIDTH, dolly: int = 0, coords: bool = False
) -> Dict[str, torch.Tensor]:
    """The pre-trained weights: the checkpoint shipped beside this file (unless ``fresh``), else a
    cached or freshly trained one (AdamW, lr 2e-3 cosine, batch 8, on clean clips of every
    content family and of both splits' textures, plus ``dolly`` extra clean dollies; a
    ``SmallVideoDenoiser(channels=3, width=width, coords=coords)``)."""
    name = pretrain_name(steps, clips, width, dolly, coords)
    shipped = os.path.join(HERE, name)
    if not fresh and os.path.exists(shipped):
        return torch.load(shipped)
    path = os.path.join(OUT, name)
    if not fresh and os.path.exists(path):
        return torch.load(path)
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(1000)
    half = clips // 2
    pool = bd.make_set({"clean": half}, 1000, "pre-d", bd.DEV) + bd.make_set({"clean": half}, 1001, "pre-h", bd.HELD_OUT)
    if dolly:
        pool += dolly_clips(dolly // 2, 1002, "pre-dd", bd.DEV) + dolly_clips(dolly - dolly // 2, 1003, "pre-hd", bd.HELD_OUT)
    lats, _ = prepare(pool)
    model = SmallVideoDenoiser(channels=3, width=width, coords=coords)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    gen = torch.Generator()
    gen.manual_seed(1000)
    t0 = time.time()
    for step in range(steps):
        idx = torch.randint(0, len(pool), (BATCH,), generator=gen).tolist()
        opt.zero_grad()
        loss = torch.zeros(())
        for grp in by_length(idx, lats):
            loss = loss + fm_loss(model, torch.stack([lats[i] for i in grp]), gen).sum()
        (loss / BATCH).backward()
        opt.step()
        sched.step()
        if step % 50 == 0:
            print(f"pretrain step {step} loss {float(loss) / BATCH:.4f} {time.time() - t0:.0f}s", flush=True)
    print(f"pretrained {path} in {time.time() - t0:.0f}s (load average {os.getloadavg()[0]:.1f})", flush=True)
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save(sd, path)
    return sd


@torch.no_grad()
def clip_losses(model: torch.nn.Module, lats: Sequence[torch.Tensor], draws: int = 8) -> List[float]:
    """Mean flow-matching loss per clip over a fixed grid of timesteps and noise draws."""
    out = []
    for x in lats:
        tot = 0.0
        for d in range(draws):
            g = torch.Generator()
            g.manual_seed(d)
            noise = torch.randn((1,) + tuple(x.shape), generator=g)
            s = torch.tensor([(d + 0.5) / draws])
            pred = model((1 - s) * x.unsqueeze(0) + s * noise, s)
            tot += float(((pred - (noise - x.unsqueeze(0))) ** 2).mean())
        out.append(tot / draws)
    return out


@torch.no_grad()
def direction_knowledge(model: torch.nn.Module, clips: int = 30, draws: int = 4, seed: int = 777) -> Dict[str, Dict[str, float]]:
    """Does the model know which way the data's falls go? Per noise level ``s``, the flow-matching
    loss (mean over ``draws`` seeded draws) of reversed falls against the same falls played
    forwards (development textures): ``paired`` = the share of clips whose reversal has the higher
    loss, ``unpaired`` = AUC of a reversed fall's loss above another clip's forward one."""
    rev = [bd.to_latent(c.frames) for c in bd.make_set({"rev-fall": clips}, seed, "knows", bd.DEV)]
    fwd = [x.flip(1).contiguous() for x in rev]

    def loss(x: torch.Tensor, s: float) -> float:
        tot = 0.0
        for d in range(draws):
            g = torch.Generator()
            g.manual_seed(d)
            noise = torch.randn((1,) + tuple(x.shape), generator=g)
            sv = torch.tensor([s])
            pred = model((1 - sv) * x.unsqueeze(0) + sv * noise, sv)
            tot += float(((pred - (noise - x.unsqueeze(0))) ** 2).mean())
        return tot / draws

    out = {}
    for s in (0.1, 0.3, 0.5, 0.7, 0.9):
        lf = [loss(x, s) for x in fwd]
        lr = [loss(x, s) for x in rev]
        out[f"{s:g}"] = {"paired": sum(a > b for a, b in zip(lr, lf)) / len(lf), "unpaired": 1 - auc(lr, lf)}
    return out


def robust_z(v: torch.Tensor) -> torch.Tensor:
    """(v − median) / σ, σ = 1.4826·MAD or √(π/2)·mean absolute deviation when MAD is 0 (the
    daemon's weight policy); zeros when every value is equal."""
    v = v.double()
    med = v.median()
    dev = (v - med).abs()
    sigma = 1.4826 * float(dev.median())
    if not sigma > 0:
        sigma = (3.141592653589793 / 2) ** 0.5 * float(dev.mean())
    return (v - med) / sigma if sigma > 0 else torch.zeros_like(v)


def fused(score: torch.Tensor, feats: torch.Tensor, floor: float = 0.0, weight: float = 1.0) -> torch.Tensor:
    """The daemon's fused signal: robust z of the score minus the largest robust z of the motion
    checks above ``floor`` (docs/method.md)."""
    za = robust_z(score)
    zs = torch.stack([robust_z(feats[:, j]) for j in range(feats.shape[1])], dim=1)
    check = (zs.max(dim=1).values - floor).clamp_min(0.0)
    return za - weight * check


def auc(neg: Sequence[float], pos: Sequence[float]) -> float:
    """P(neg < pos) + ties/2: AUC of flagging ``neg`` (low = harmful)."""
    if not neg or not pos:
        return float("nan")
    n = torch.tensor(neg, dtype=torch.float64).view(-1, 1)
    p = torch.tensor(pos, dtype=torch.float64).view(1, -1)
    return float(((n < p).double() + 0.5 * (n == p).double()).mean())


COMPONENTS = {
    "masked@751": dict(kind="masked", t_fix=751, noise_seed=0),
    "a500": dict(kind="temporal2", t_fix=500, noise_seed=0),
    "a751": dict(kind="temporal2", t_fix=751, noise_seed=1),
    "a500c": dict(kind="temporal2", t_fix=500, noise_seed=0, channel_pool=True),
    "a751c": dict(kind="temporal2", t_fix=751, noise_seed=1, channel_pool=True),
    "a250cp2": dict(kind="temporal2", t_fix=250, noise_seed=2, channel_pool=True, spatial_pool=2),
    "t751": dict(kind="temporal", t_fix=751, noise_seed=1),
    "r100": dict(kind="masked", t_fix=100, noise_seed=3, reverse=True),
    "r250": dict(kind="masked", t_fix=250, noise_seed=3, reverse=True),
    "r500": dict(kind="masked", t_fix=500, noise_seed=3, reverse=True),
    "r250c": dict(kind="masked", t_fix=250, noise_seed=3, reverse=True, channel_pool=True),
    "r250t": dict(kind="temporal", t_fix=250, noise_seed=3, reverse=True),
    "rm": dict(kind="masked", timesteps=(100, 500), noise_seed=3, reverse=True),
}
RECIPES = {
    "masked": ["masked@751"],
    "accel-multi-t": ["a500", "a751"],
    "accel-luma": ["a500c", "a751c", "a250cp2"],
    "accel-luma-nolow": ["a500c", "a751c"],
    "temporal": ["t751"],
    "rev100": ["r100"],
    "rev250": ["r250"],
    "rev500": ["r500"],
    "rev250c": ["r250c"],
    "rev250t": ["r250t"],
    "rev100+500": ["rm"],
}
ONLY = [r for r in os.environ.get("MOTION_BENCH_RECIPES", "").split(",") if r]
"""``MOTION_BENCH_RECIPES=accel-luma,masked``: sketch only these recipes' components (faster)."""
if ONLY:
    RECIPES = {r: RECIPES[r] for r in ONLY}
    COMPONENTS = {c: COMPONENTS[c] for r in ONLY for c in RECIPES[r]}


def run(split: str, seed: int, counts: Dict[str, int]) -> Dict[str, object]:
    # Longer than 80 lines on purpose: one study run reads top to bottom (pre-train, fine-tune with
    # every recipe sketched, score, fuse), each step feeding the next.
    sp = bd.SPLITS[split]
    init = pretrain()
    clips = bd.make_set(counts, 100 + seed, f"{split}{seed}", sp)
    queries = bd.make_set({"clean": 2 * len(bd.CONTENT)}, 500 + seed, f"q{seed}", sp)
    lats, masks = prepare(clips)
    qlats, qmasks = prepare(queries)
    kinds = sorted({c.kind for c in clips})
    res: Dict[str, object] = {"split": split, "seed": seed}
    # does the pre-trained model know each family? its loss relative to clean clips of the same content
    model = SmallVideoDenoiser(channels=3, width=WIDTH)
    model.load_state_dict(init)
    losses = clip_losses(model, lats)
    know = {}
    for k in kinds:
        if k == "clean":
            continue
        mine = [l for c, l in zip(clips, losses) if c.kind == k]
        contents = {c.content for c in clips if c.kind == k}
        ref = [l for c, l in zip(clips, losses) if c.kind == "clean" and c.content in contents]
        know[k] = {"loss": sum(mine) / len(mine), "clean": sum(ref) / len(ref), "auc_high": 1 - auc(mine, ref)}
    res["knows"] = know
    # model-free statistics (higher = more suspicious → rank by minus)
    feats = [bf.baseline_features(x) for x in lats]
    res["features"] = {
        name: {k: auc([-f[name] for c, f in zip(clips, feats) if c.kind == k], [-f[name] for c, f in zip(clips, feats) if c.kind == "clean"]) for k in kinds if k != "clean"}
        for name in feats[0]
    }
    # one epoch, uniform order, every component sketched at every step
    torch.manual_seed(seed)
    model = SmallVideoDenoiser(channels=3, width=WIDTH)
    model.load_state_dict(init)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    gen = torch.Generator()
    gen.manual_seed(10_000 + seed)
    n = len(clips)
    order = torch.randperm(n, generator=gen).tolist()
    p = flow_matching_predict()
    attrs = {name: MotionAttributor(model, LAYERS, p, dim=DIM, objectives=[MotionObjective(p, **kw)]) for name, kw in COMPONENTS.items()}
    raw = {name: torch.zeros(n, DIM) for name in COMPONENTS}
    qcur: Dict[str, torch.Tensor] = {}
    scores = {r: torch.zeros(n, dtype=torch.float64) for r in RECIPES}
    # the reversal check as the hook sends it: at each clip's attributed step, on the model the step
    # starts from (MotionAttributor.features); and on the pre-trained model, for comparison
    hook = next(iter(attrs.values()))
    gap = torch.zeros(n, dtype=torch.float64)
    gap_level = torch.zeros(n, dtype=torch.float64)
    gap0 = torch.zeros(n, dtype=torch.float64)
    gap0_level = torch.zeros(n, dtype=torch.float64)
    for grp in by_length(range(n), lats):
        g_, l_ = hook.reversal_terms(torch.stack([lats[i] for i in grp]))
        gap0[grp], gap0_level[grp] = g_.double(), l_.double()
    t0 = time.time()
    for step in range((n + BATCH - 1) // BATCH):
        idx = order[step * BATCH : (step + 1) * BATCH]
        lr = opt.param_groups[0]["lr"]
        if step % 5 == 0:
            for name, attr in attrs.items():
                rows = torch.zeros(len(queries), DIM)
                for grp in by_length(range(len(queries)), qlats):
                    r, _ = attr.raw_sketch(torch.stack([qlats[i] for i in grp]), torch.stack([qmasks[i] for i in grp]), query=True)
                    rows[grp] = r
                qcur[name] = rows
        for name, attr in attrs.items():
            for grp in by_length(idx, lats):
                r, _ = attr.raw_sketch(torch.stack([lats[i] for i in grp]), torch.stack([masks[i] for i in grp]))
                raw[name][grp] = r
        for grp in by_length(idx, lats):
            g_, l_ = hook.reversal_terms(torch.stack([lats[i] for i in grp]))
            gap[grp], gap_level[grp] = g_.double(), l_.double()
        for rname, comps in RECIPES.items():
            g = normalize_sketches(sum(raw[c][idx] for c in comps))
            q = normalize_sketches(sum(qcur[c] for c in comps))
            scores[rname][idx] = lr * (g.double() @ q.double().T).mean(dim=1)
        opt.zero_grad()
        loss = torch.zeros(())
        for grp in by_length(idx, lats):
            loss = loss + fm_loss(model, torch.stack([lats[i] for i in grp]), gen).sum()
        (loss / len(idx)).backward()
        opt.step()
    res["seconds"] = time.time() - t0
    res["attribution"] = {
        r: {k: auc([float(s[i]) for i, c in enumerate(clips) if c.kind == k], [float(s[i]) for i, c in enumerate(clips) if c.kind == "clean"]) for k in kinds if k != "clean"}
        for r, s in scores.items()
    }
    res["scores"] = {r: s.tolist() for r, s in scores.items()}
    checks = torch.cat([clip_features(x.unsqueeze(0)) for x in lats])
    res["checks"] = checks.tolist()
    res["reversal_gap"] = gap.tolist()
    res["reversal_level"] = gap_level.tolist()
    res["reversal_gap_pretrained"] = gap0.tolist()
    res["reversal_level_pretrained"] = gap0_level.tolist()
    res["check_auc"] = {
        name: {k: auc([-float(checks[i, j]) for i, c in enumerate(clips) if c.kind == k], [-float(checks[i, j]) for i, c in enumerate(clips) if c.kind == "clean"]) for k in kinds if k != "clean"}
        for j, name in enumerate(FEATURE_NAMES)
    }
    res["fused"] = {}
    for r, s in scores.items():
        for floor in (0.0, 1.0, 2.0, 3.0):
            f = fused(s, checks, floor)
            res["fused"][f"{r}|floor{floor:g}"] = {k: auc([float(f[i]) for i, c in enumerate(clips) if c.kind == k], [float(f[i]) for i, c in enumerate(clips) if c.kind == "clean"]) for k in kinds if k != "clean"}
    res["feats"] = feats
    res["kinds"] = [c.kind for c in clips]
    res["contents"] = [c.content for c in clips]
    return res


def main(argv: Sequence[str]) -> None:
    if argv[0] == "pretrain":
        import argparse

        ap = argparse.ArgumentParser(prog="study.py pretrain", description="pre-train the benchmark model (defaults: the shipped one)")
        ap.add_argument("--steps", type=int, default=PRETRAIN_STEPS)
        ap.add_argument("--clips", type=int, default=320, help="clean clips, every content family")
        ap.add_argument("--width", type=int, default=WIDTH)
        ap.add_argument("--dolly", type=int, default=0, help="extra clean dollies in the pool")
        ap.add_argument("--coords", action="store_true", help="SmallVideoDenoiser(coords=True)")
        a = ap.parse_args(argv[1:])
        pretrain(a.steps, a.clips, width=a.width, dolly=a.dolly, coords=a.coords)
        return
    if argv[0] == "knows":
        model = SmallVideoDenoiser(channels=3, width=WIDTH)
        model.load_state_dict(torch.load(argv[1]) if len(argv) > 1 else pretrain())
        model.eval()
        for s, v in direction_knowledge(model).items():
            print(f"s={s}: reversed fall's loss above its forward version's {v['paired']:.2f}; above another forward fall's (AUC) {v['unpaired']:.2f}")
        return
    split = argv[1]
    counts = bd.training_counts(bd.SPLITS[split])
    for s in argv[2:]:
        r = run(split, int(s), counts)
        os.makedirs(OUT, exist_ok=True)
        with open(os.path.join(OUT, f"study-{split}-{s}.json"), "w") as f:
            json.dump(r, f)
        print(f"== {split} seed {s} ({r['seconds']:.0f}s)")
        print("knows:", {k: (round(v["loss"], 4), round(v["clean"], 4), round(v["auc_high"], 2)) for k, v in r["knows"].items()})
        for name, row in r["attribution"].items():
            print(f"  {name:18s}", " ".join(f"{k}={v:.2f}" for k, v in row.items()))
        for name, row in r["check_auc"].items():
            print(f"  [{name:14s}]", " ".join(f"{k}={v:.2f}" for k, v in row.items()))
        for name, row in r["fused"].items():
            print(f"  fused {name:26s}", " ".join(f"{k}={v:.2f}" for k, v in row.items()))


if __name__ == "__main__":
    main(sys.argv[1:])
