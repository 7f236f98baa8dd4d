"""Motive on a real (tiny) video fine-tune, end to end: live detection, down-weighting, selection.

One command reproduces everything (daemon started and stopped here, tables printed; with
``--report`` the tables and plots under docs/ written):

    /usr/bin/python3 examples/synthetic-motion/experiment.py --report   # full: 3 seeds
    /usr/bin/python3 examples/synthetic-motion/experiment.py --quick    # 1 seed, fewer steps

Steps (see README.md next to this file): a flow-matching denoiser is pre-trained on clean motion,
then fine-tuned per seed on a mixed set (35 % harmful) in seven ways: uniform sampling (all
attribution recipes streamed live to the daemon, one run each), live Motive down-weighting (gated
per-sample loss weights, and in the sampler only), offline
Motive selection (final-checkpoint sketches, majority vote, top x %), random x %, motion-magnitude
top x %, and live Motive without the motion mask. Samples of every fine-tuned model are scored with
the flow-based motion metrics of ``metrics.py``. The daemon process and the recording client are
in ``daemon_io.py``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Dict, List, Optional, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "trainer-hooks", "python"))
sys.path.insert(0, HERE)

import torch  # noqa: E402

from daemon_io import Daemon, RecordingClient  # noqa: E402
from data import HARMFUL, KINDS, MOTIONS, Clip, from_latent, make_set, to_latent  # noqa: E402
from metrics import batch_metrics  # noqa: E402
from motive_hooks import MotionAttributor, MotiveClient, MotiveSampler, flow_matching_predict, motion_mask  # noqa: E402
from motive_hooks.loss import MotionObjective  # noqa: E402
from motive_hooks.mask import lucas_kanade_flow  # noqa: E402
from motive_hooks.toy import SmallVideoDenoiser  # noqa: E402


ACCEPTANCE: Dict[str, Tuple[float, float]] = {"jitter": (0.9, 1.0), "frozen": (0.9, 1.0), "appearance": (0.0, 0.6)}
"""The detection bar after one epoch (live score, AUC vs clean): harmful kinds found, appearance-only
clips ranked with the clean ones."""


@dataclass
class Config:
    """Every knob of the experiment (the defaults are the documented full run)."""

    seeds: Tuple[int, ...] = (0, 1, 2)
    train_counts: Dict[str, int] = field(
        default_factory=lambda: {"clean": 80, "appearance": 24, "jitter": 14, "frozen": 14, "shuffle": 14, "flicker": 14}
    )
    queries_per_motion: int = 4
    pretrain_clips: int = 192
    pretrain_steps: int = 500
    pretrain_lr: float = 2e-3
    batch: int = 8
    ft_epochs: int = 3
    ft_lr: float = 1e-3
    width: int = 24
    dim: int = 256
    sketch_layers: Tuple[str, ...] = ("mlp_in", "mlp_out", "conv_out")
    """The sketched layers: the token MLP and the 3D output conv; not the per-frame 2D conv
    ``frame_conv`` (a purely spatial, per-frame layer: its gradient is appearance, see
    docs/results-sprites.md)."""
    query_every: int = 5
    select_frac: float = 0.5
    eval_samples: int = 24
    eval_frames: int = 8
    sample_steps: int = 16
    best: str = "accel-luma"
    """The recipe of the live runs and of the detection bar (chosen on seeds 0–8, checked on 9–17:
    ``seed_study.py``, docs/results-sprites.md §1)."""
    live_sampler: bool = False
    """Live runs draw their batches by the daemon's weights (``MotiveSampler``); False: in the
    uniform run's order (the same clips, order and noise, only the weights differ)."""
    live_loss_weights: bool = True
    """Live runs weight each step's per-sample losses by the daemon's weights, gated: the step's
    sketches are sent first, and the step waits (at most ``gate_timeout_s``) for the daemon's
    weight update that follows their commit (see :func:`finetune`)."""
    gate_timeout_s: float = 0.5
    recipes: Tuple[str, ...] = ("masked", "temporal", "accel-multi-t")
    methods: Tuple[str, ...] = ("uniform", "live", "live-sampler", "offline", "random", "magnitude", "live-nomask")
    daemon_config: Dict[str, Any] = field(
        default_factory=lambda: {"logLevel": "warn", "weights": {"minSeen": 1, "intervalMs": 20, "beta": 2.0, "wMin": 0.02}}
    )


def quick_config() -> Config:
    return Config(seeds=(0,), ft_epochs=2, eval_samples=12, recipes=("masked", "accel-multi-t"))


# -- attribution recipes --------------------------------------------------------------------------


def recipe_objectives(name: str, use_mask: bool = True) -> List[MotionObjective]:
    """The objective list of a named recipe (the hook's ``objectives=``)."""
    p = flow_matching_predict()
    masked = MotionObjective(p, t_fix=751, kind="masked", use_mask=use_mask)
    temporal = MotionObjective(p, t_fix=751, kind="temporal", use_mask=use_mask)
    contrast = MotionObjective(p, timesteps=(500, 751), kind="masked", contrast=True, use_mask=use_mask)
    table = {
        "masked": [masked],
        "temporal": [temporal],
        "accel": [MotionObjective(p, t_fix=751, kind="temporal2", use_mask=use_mask)],
        "accel-multi-t": [MotionObjective(p, timesteps=(500, 751), kind="temporal2", use_mask=use_mask)],
        # accel-multi-t plus t = 250 at the coarse scale (the error 2x2-pooled): low noise finds
        # jitter, and pooling keeps the fine texture that dominates its error out (docs/results-sprites.md)
        "accel-coarse250": [MotionObjective(p, timesteps=(500, 751, 250), spatial_pool=(1, 1, 2), kind="temporal2", use_mask=use_mask)],
        # accel-coarse250 on the channel mean of the error: the loss sees where the error is, not
        # which colour it has, so odd colours stop steering the gradient (docs/results-sprites.md)
        "accel-luma": [
            MotionObjective(p, timesteps=(500, 751, 250), spatial_pool=(1, 1, 2), channel_pool=True, kind="temporal2", use_mask=use_mask)
        ],
        "masked-qcontrast": [MotionObjective(p, t_fix=751, kind="masked", contrast="query", use_mask=use_mask)],
        "masked-multi-t": [MotionObjective(p, timesteps=(250, 500, 751), kind="masked", use_mask=use_mask)],
        "contrast": [contrast],
        "masked.temporal": [masked, temporal],
        "masked.temporal.contrast": [masked, temporal, contrast],
    }
    return table[name]


# -- data -----------------------------------------------------------------------------------------


@dataclass
class Prepared:
    clips: List[Clip]
    latents: List[torch.Tensor]  # [3, F, 16, 16]
    masks: List[torch.Tensor]  # [F, 16, 16]

    @property
    def ids(self) -> List[str]:
        return [c.id for c in self.clips]


def prepare(clips: List[Clip]) -> Prepared:
    lats = [to_latent(c.frames) for c in clips]
    masks = [motion_mask(c.frames, (c.frames.shape[0], 16, 16)) for c in clips]
    return Prepared(clips, lats, masks)


def by_length(idx: Sequence[int], data: Prepared) -> List[List[int]]:
    groups: Dict[int, List[int]] = {}
    for i in idx:
        groups.setdefault(int(data.latents[i].shape[1]), []).append(i)
    return [groups[k] for k in sorted(groups)]


# -- model and training ---------------------------------------------------------------------------


def fm_loss(model: torch.nn.Module, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """The flow-matching training loss per sample (velocity ε − x₀ at s ~ U(0, 1))."""
    s = torch.rand(x.shape[0], generator=gen)
    noise = torch.randn(x.shape, generator=gen)
    sv = s.view(-1, 1, 1, 1, 1)
    pred = model((1 - sv) * x + sv * noise, s)
    return ((pred - (noise - x)) ** 2).flatten(1).mean(dim=1)


def pretrain(cfg: Config, cache: str, fresh: bool = False) -> Dict[str, torch.Tensor]:
    """The pre-trained weights: the checkpoint shipped next to this file when it matches the
    configuration (unless ``fresh``), else a cached or freshly trained one."""
    key = f"pretrained-w{cfg.width}-n{cfg.pretrain_clips}-s{cfg.pretrain_steps}.pt"
    shipped = os.path.join(HERE, key)
    if not fresh and os.path.exists(shipped):
        return torch.load(shipped)
    path = os.path.join(cache, key)
    if not fresh and os.path.exists(path):
        return torch.load(path)
    torch.manual_seed(1000)
    per = cfg.pretrain_clips // len(MOTIONS)
    data = prepare(make_set({"clean": per * len(MOTIONS)}, 1000, "pre"))
    model = SmallVideoDenoiser(channels=3, width=cfg.width)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.pretrain_lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.pretrain_steps)
    gen = torch.Generator()
    gen.manual_seed(1000)
    for step in range(cfg.pretrain_steps):
        idx = torch.randint(0, len(data.clips), (cfg.batch,), generator=gen).tolist()
        opt.zero_grad()
        loss = torch.zeros(())
        for grp in by_length(idx, data):
            loss = loss + fm_loss(model, torch.stack([data.latents[i] for i in grp]), gen).sum()
        (loss / cfg.batch).backward()
        opt.step()
        sched.step()
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save(sd, path)
    return sd


@torch.no_grad()
def sample(model: torch.nn.Module, n: int, frames: int, steps: int, seed: int) -> torch.Tensor:
    """Euler samples of the flow ODE from s = 1 to 0: ``[n, F, 3, 16, 16]`` in [0, 1]."""
    model.eval()
    gen = torch.Generator()
    gen.manual_seed(seed)
    x = torch.randn(n, 3, frames, 16, 16, generator=gen)
    ts = torch.linspace(1.0, 0.0, steps + 1)
    for i in range(steps):
        v = model(x, ts[i].expand(n))
        x = x - (ts[i] - ts[i + 1]) * v
    model.train()
    return torch.stack([from_latent(c) for c in x])


# -- evaluation helpers ---------------------------------------------------------------------------


def auc(neg_scores: Sequence[float], pos_scores: Sequence[float]) -> float:
    """P(score of a ``neg`` clip < score of a ``pos`` clip), ties half: the AUC of flagging ``neg``
    (low score = harmful) against ``pos``."""
    if not neg_scores or not pos_scores:
        return float("nan")
    wins = 0.0
    for a in neg_scores:
        for b in pos_scores:
            wins += 1.0 if a < b else 0.5 if a == b else 0.0
    return wins / (len(neg_scores) * len(pos_scores))


def detection(scores: Dict[str, float], clips: List[Clip]) -> Dict[str, float]:
    """AUC of each kind vs clean, and of all harmful vs clean (+ appearance), from ``scores``."""
    by_kind: Dict[str, List[float]] = {k: [] for k in KINDS}
    for c in clips:
        if c.id in scores:
            by_kind[c.kind].append(scores[c.id])
    out = {k: auc(by_kind[k], by_kind["clean"]) for k in KINDS if k != "clean"}
    harmful = [s for k in HARMFUL for s in by_kind[k]]
    out["harmful"] = auc(harmful, by_kind["clean"] + by_kind["appearance"])
    return out


def pearson(a: Sequence[float], b: Sequence[float]) -> float:
    n = len(a)
    ma, mb = sum(a) / n, sum(b) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    va = math.sqrt(sum((x - ma) ** 2 for x in a))
    vb = math.sqrt(sum((y - mb) ** 2 for y in b))
    return cov / (va * vb) if va > 0 and vb > 0 else float("nan")


# -- one fine-tune --------------------------------------------------------------------------------


@dataclass
class RunResult:
    method: str
    seed: int
    metrics: Dict[str, float]
    auc_curves: Dict[str, List[Tuple[int, Dict[str, float]]]] = field(default_factory=dict)
    final_scores: Dict[str, Dict[str, float]] = field(default_factory=dict)
    seconds: float = 0.0
    selected: Optional[Dict[str, int]] = None
    gate: Dict[str, int] = field(default_factory=dict)


def finetune(
    cfg: Config,
    method: str,
    seed: int,
    init: Dict[str, torch.Tensor],
    train: Prepared,
    queries: Prepared,
    daemon: Optional[Daemon],
    recipes: Sequence[str] = (),
    weighted: Optional[str] = None,
    use_mask: bool = True,
    subset: Optional[List[int]] = None,
    record: Optional[str] = None,
    max_steps: Optional[int] = None,
) -> Tuple[SmallVideoDenoiser, RunResult]:
    """Fine-tunes from ``init``; streams ``recipes`` (uniform sampling) or the ``weighted`` recipe
    (sampling by the daemon's live weights) to the daemon; returns the model and its results.

    ``max_steps`` stops early with the random streams of the full run (the test's reduced run is
    the first steps of the full one, bit for bit)."""
    # Longer than 80 lines on purpose: one training loop for all seven methods, whose steps share the
    # model, optimizer, client and generators that a split would pass around.
    t0 = time.time()
    torch.manual_seed(seed)
    model = SmallVideoDenoiser(channels=3, width=cfg.width)
    model.load_state_dict(init)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.ft_lr)
    gen = torch.Generator()
    gen.manual_seed(10_000 + seed)
    pool = list(range(len(train.clips))) if subset is None else list(subset)
    steps_per_epoch = len(train.clips) // cfg.batch
    total_steps = cfg.ft_epochs * steps_per_epoch
    gated = weighted is not None and cfg.live_loss_weights
    streams: List[Tuple[str, MotionAttributor, Any]] = []
    names = list(recipes) if weighted is None else [weighted]
    for name in names:
        attr = MotionAttributor(
            model, list(cfg.sketch_layers), flow_matching_predict(), dim=cfg.dim, query_every=cfg.query_every, objectives=recipe_objectives(name, use_mask)
        )
        run_id = f"s{seed}-{method}-{name}"
        client: Any = None
        if daemon is not None:
            client = MotiveClient(daemon.grpc, run_id, attr.dim, sketcher=attr.identity, dtype="float32", apply_weights=weighted is not None)
            if record is not None:
                client = RecordingClient(client, record, attr.identity, run_id)
        attr.client = client
        for grp in by_length(range(len(queries.clips)), queries):
            attr.add_queries(
                [queries.clips[i].id for i in grp],
                torch.stack([queries.latents[i] for i in grp]),
                torch.stack([queries.masks[i] for i in grp]),
                groups=[queries.clips[i].motion for i in grp],
            )
        streams.append((run_id, attr, client))
    if weighted is not None and cfg.live_sampler:
        assert streams and streams[0][2] is not None
        sampler = MotiveSampler(train.ids, streams[0][2], num_samples=total_steps * cfg.batch, replacement=True, seed=seed, refresh_every=cfg.batch)
        draws = iter(sampler)
        order = [next(draws) for _ in range(cfg.batch)]  # first batch; the rest is drawn live
    else:
        order = []
        while len(order) < total_steps * cfg.batch:
            perm = torch.randperm(len(pool), generator=gen).tolist()
            order.extend(pool[i] for i in perm)
    result = RunResult(method, seed, {})
    checkpoints = {max(1, steps_per_epoch // 2), steps_per_epoch, 2 * steps_per_epoch, total_steps}
    for step in range(total_steps if max_steps is None else min(total_steps, max_steps)):
        if weighted is not None and cfg.live_sampler:
            idx = order if step == 0 else [next(draws) for _ in range(cfg.batch)]
        else:
            idx = order[step * cfg.batch : (step + 1) * cfg.batch]
        lr = opt.param_groups[0]["lr"]
        loss_w: Optional[Dict[int, float]] = None
        if gated:
            # the attribution pass first (it leaves the model, its gradients and the RNG as they
            # were), then the daemon's verdict on these very clips weights this step's loss
            _, attr, client = streams[0]
            for grp in by_length(idx, train):
                attr.step(step, lr, [train.ids[i] for i in grp], torch.stack([train.latents[i] for i in grp]), torch.stack([train.masks[i] for i in grp]))
            client.flush(timeout_s=cfg.gate_timeout_s)
            waited = client.wait_weights(client.acked_weights_version, cfg.gate_timeout_s)
            result.gate["steps"] = result.gate.get("steps", 0) + 1
            result.gate["timeouts"] = result.gate.get("timeouts", 0) + (0 if waited else 1)
            w = client.loss_weights([train.ids[i] for i in idx]).tolist()
            loss_w = {i: float(v) for i, v in zip(idx, w)}
        opt.zero_grad()
        loss = torch.zeros(())
        total_w = 0.0
        for grp in by_length(idx, train):
            x = torch.stack([train.latents[i] for i in grp])
            per = fm_loss(model, x, gen)
            if loss_w is None:
                loss = loss + per.sum()
            else:
                wg = torch.tensor([loss_w[i] for i in grp])
                loss = loss + (wg * per).sum()
                total_w += float(wg.sum())
        if loss_w is None:
            (loss / cfg.batch).backward()
        else:  # a weighted mean: the step keeps its size, the weights say whose gradient it is
            (loss / max(total_w, 1e-6)).backward()
        if not gated:
            for _, attr, _ in streams:
                for grp in by_length(idx, train):
                    x = torch.stack([train.latents[i] for i in grp])
                    m = torch.stack([train.masks[i] for i in grp])
                    attr.step(step, lr, [train.ids[i] for i in grp], x, m)
        opt.step()
        if daemon is not None and (step + 1) in checkpoints:
            for run_id, _, client in streams:
                client.flush(timeout_s=60)
                sc = daemon.scores(run_id)
                seen = {k: v[0] for k, v in sc.items() if v[1] > 0}
                result.auc_curves.setdefault(run_id[len(f"s{seed}-{method}-") :], []).append((step + 1, detection(seen, train.clips)))
                if step + 1 == total_steps:
                    result.final_scores[run_id[len(f"s{seed}-{method}-") :]] = seen
    for _, _, client in streams:
        if client is not None:
            client.close(timeout_s=30)
    samples = sample(model, cfg.eval_samples, cfg.eval_frames, cfg.sample_steps, seed=20_000 + seed)
    result.metrics = batch_metrics(samples)
    result.seconds = time.time() - t0
    return model, result


def offline_scores(cfg: Config, model: SmallVideoDenoiser, train: Prepared, queries: Prepared, recipe: str) -> Tuple[List[float], List[int]]:
    """Final-checkpoint sketches: per clip the mean cosine with the queries and the majority-vote
    count (per query, a clip votes when its cosine is above that query's median over clips)."""
    attr = MotionAttributor(model, list(cfg.sketch_layers), flow_matching_predict(), dim=cfg.dim, objectives=recipe_objectives(recipe))
    for grp in by_length(range(len(queries.clips)), queries):
        attr.add_queries([queries.clips[i].id for i in grp], torch.stack([queries.latents[i] for i in grp]), torch.stack([queries.masks[i] for i in grp]))
    _, q, _ = attr.query_sketches()
    g = torch.zeros(len(train.clips), attr.dim)
    for grp in by_length(range(len(train.clips)), train):
        s, _ = attr.sketch(torch.stack([train.latents[i] for i in grp]), torch.stack([train.masks[i] for i in grp]))
        g[grp] = s
    attr.sketcher.remove()
    cos = g @ q.t()  # [N, m]
    tau = cos.median(dim=0).values
    votes = (cos > tau).sum(dim=1)
    return cos.mean(dim=1).tolist(), votes.tolist()


def length_bias(cfg: Config, model: SmallVideoDenoiser, train: Prepared, queries: Prepared, recipe: str) -> Dict[str, float]:
    """Pearson correlation of clip length with its final-checkpoint score, for the dot-product
    score with and without the 1/F frame-length fix, and for the cosine score."""
    out: Dict[str, float] = {}
    lengths = [float(l.shape[1]) for l in train.latents]
    for fix in (False, True):
        objs = recipe_objectives(recipe)
        attr = MotionAttributor(model, list(cfg.sketch_layers), flow_matching_predict(), dim=cfg.dim, objectives=objs)
        qs = []
        for grp in by_length(range(len(queries.clips)), queries):
            raw, _ = attr.raw_sketch(torch.stack([queries.latents[i] for i in grp]), torch.stack([queries.masks[i] for i in grp]))
            f = queries.latents[grp[0]].shape[1]
            qs.append(raw * (1.0 if fix else float(f)))
        q = torch.cat(qs)
        g = torch.zeros(len(train.clips), cfg.dim)
        for grp in by_length(range(len(train.clips)), train):
            raw, _ = attr.raw_sketch(torch.stack([train.latents[i] for i in grp]), torch.stack([train.masks[i] for i in grp]))
            f = train.latents[grp[0]].shape[1]
            g[grp] = raw * (1.0 if fix else float(f))
        attr.sketcher.remove()
        dot = (g @ q.t()).mean(dim=1).tolist()
        out["dot, with 1/F" if fix else "dot, without 1/F"] = pearson(lengths, dot)
        out["norm, with 1/F" if fix else "norm, without 1/F"] = pearson(lengths, g.norm(dim=1).tolist())
        if fix:
            gn = torch.nn.functional.normalize(g, dim=1)
            qn = torch.nn.functional.normalize(q, dim=1)
            out["cosine"] = pearson(lengths, (gn @ qn.t()).mean(dim=1).tolist())
    return out


def select_top(values: Sequence[float], frac: float, tie: Optional[Sequence[float]] = None) -> List[int]:
    n = max(1, int(round(frac * len(values))))
    key = [(float(v), float(tie[i]) if tie is not None else 0.0, -i) for i, v in enumerate(values)]
    order = sorted(range(len(values)), key=lambda i: key[i], reverse=True)
    return sorted(order[:n])


def clip_motion(c: Clip) -> float:
    flow = lucas_kanade_flow(c.frames)
    return float(torch.linalg.vector_norm(flow, dim=1).mean())


# -- the whole experiment -------------------------------------------------------------------------


def run_seed(cfg: Config, seed: int, init: Dict[str, torch.Tensor], daemon: Daemon, record: Optional[str], log: Any) -> Dict[str, Any]:
    counts = cfg.train_counts
    train = prepare(make_set(counts, seed, f"s{seed}"))
    queries = prepare(make_set({"clean": cfg.queries_per_motion * len(MOTIONS)}, 500 + seed, f"q{seed}"))
    out: Dict[str, Any] = {"runs": {}, "kinds": {c.id: c.kind for c in train.clips}}
    n = len(train.clips)
    best = cfg.best
    for method in cfg.methods:
        subset: Optional[List[int]] = None
        kw: Dict[str, Any] = {}
        if method == "uniform":
            kw["recipes"] = list(dict.fromkeys(list(cfg.recipes) + [best]))
        elif method == "live":
            kw["weighted"] = best
            kw["record"] = record
        elif method == "live-sampler":  # the sampler alone, no gate: weights act from the next draw on
            kw["weighted"] = best
            kw["run_cfg"] = replace(cfg, live_sampler=True, live_loss_weights=False)
        elif method == "live-nomask":
            kw["weighted"] = best
            kw["use_mask"] = False
        elif method == "offline":
            mean_cos, votes = offline_scores(cfg, uniform_model, train, queries, best)
            subset = select_top([float(v) for v in votes], cfg.select_frac, tie=mean_cos)
            out["offline_auc"] = detection({train.ids[i]: votes[i] + 1e-3 * mean_cos[i] for i in range(n)}, train.clips)
            out["length_bias"] = {r: length_bias(cfg, uniform_model, train, queries, r) for r in ("masked", best)}
        elif method == "random":
            g = torch.Generator()
            g.manual_seed(30_000 + seed)
            subset = sorted(torch.randperm(n, generator=g)[: int(round(cfg.select_frac * n))].tolist())
        elif method == "magnitude":
            subset = select_top([clip_motion(c) for c in train.clips], cfg.select_frac)
        run_cfg = kw.pop("run_cfg", cfg)
        model, res = finetune(run_cfg, method, seed, init, train, queries, daemon, subset=subset, **kw)
        if method == "uniform":
            uniform_model = model
        if subset is not None:
            res.selected = {k: sum(1 for i in subset if train.clips[i].kind == k) for k in KINDS}
        out["runs"][method] = asdict(res)
        log(f"  seed {seed} {method:12s} {res.seconds:6.1f}s  " + "  ".join(f"{k} {v:.4f}" for k, v in res.metrics.items()))
    return out


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="one seed, fewer steps (the test's version)")
    p.add_argument("--seeds", type=int, default=None, help="number of seeds (default 3; --quick: 1)")
    p.add_argument("--out", default=os.path.join(HERE, "out"), help="where results.json, the cache and the capture go")
    p.add_argument("--report", action="store_true", help="write docs/results-sprites.md and its plots")
    p.add_argument("--record", default=None, help="capture file of seed 0's live run (convert with: motive replay FILE --convert OUT.arrow)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--pretrain", action="store_true", help="pre-train afresh instead of loading the shipped checkpoint")
    p.add_argument("--methods", default=None, help="comma-separated subset of the runs (default all)")
    p.add_argument("--weights", default=None, help='JSON merged into the daemon\'s "weights" config, e.g. \'{"beta": 4}\'')
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = quick_config() if args.quick else Config()
    if args.seeds is not None:
        cfg.seeds = tuple(range(args.seeds))
    os.makedirs(args.out, exist_ok=True)
    t0 = time.time()

    def log(s: str) -> None:
        print(f"[{time.time() - t0:6.1f}s] {s}", flush=True)

    if args.methods:
        cfg.methods = tuple(args.methods.split(","))
    if args.weights:
        cfg.daemon_config["weights"] = {**cfg.daemon_config["weights"], **json.loads(args.weights)}
    init = pretrain(cfg, args.out, fresh=args.pretrain)
    base = SmallVideoDenoiser(channels=3, width=cfg.width)
    base.load_state_dict(init)
    log("pre-trained")
    daemon = Daemon(cfg.daemon_config)
    results: Dict[str, Any] = {"config": asdict(cfg), "seeds": {}}
    try:
        for seed in cfg.seeds:
            rec = args.record if (seed == cfg.seeds[0]) else None
            out = run_seed(cfg, seed, init, daemon, rec, log)
            t1 = time.time()
            m = batch_metrics(sample(base, cfg.eval_samples, cfg.eval_frames, cfg.sample_steps, seed=20_000 + seed))
            out["runs"]["pretrained"] = asdict(RunResult("pretrained", seed, m, seconds=time.time() - t1))
            results["seeds"][str(seed)] = out
    finally:
        daemon.stop()
    results["seconds"] = time.time() - t0
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f)
    import report  # noqa: E402  (matplotlib only when reporting)

    print(report.tables(results))
    if args.report:
        report.write(results, os.path.join(ROOT, "docs"))
    log("done")
    return results


if __name__ == "__main__":
    main()
