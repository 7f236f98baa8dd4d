"""The motion benchmark with the product's defaults: a real daemon, the hook as a new user sets it up,
one fine-tune per seed with its first epoch attributed, and the live-weighting downstream comparison.

    /usr/bin/python3 examples/motion-bench/bench.py --split held --seeds 0 1 2
    /usr/bin/python3 examples/motion-bench/bench.py --split dev --seeds 0 --methods uniform --epochs 1

Per seed: the training set of the split (100 clean clips, 16 of each harmful family, 16 of each
decoy), two clean query clips per content family (the motion a user wants), the model pre-trained
on clean clips (``study.py pretrain``). ``uniform`` fine-tunes with uniform sampling (a permutation
per epoch) and the hook attributing every step; after the first epoch it reads the daemon's
per-clip views and weights. ``live`` fine-tunes the same clips in the same order with each step's
per-sample losses weighted by the daemon's weights for those clips (the step waits for the weight
update that follows its batch's commit). ``oracle`` weights harmful clips' losses 0 and the rest 1,
without a daemon: the most any weighting could gain, so that a downstream gap too small to measure
is told apart from a weighting that does nothing. Steps of the first ``--attributed-epochs``
(default 1) are attributed; later epochs train on the weights pushed by then, which keeps four
epochs affordable. From the second epoch on a moving average of the weights is kept (``--ema``);
64 clips are sampled from it with the same noise for every method and measured (``downstream.py``). Nothing is configured beyond what the README's example sets:
``MotionAttributor(model)``, ``MotiveClient(address, run, attr.dim, sketcher=attr)``, a daemon
with its default configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.append(os.path.join(ROOT, "examples", "synthetic-motion"))

import data as bd  # noqa: E402
import features as bf  # noqa: E402
import study  # noqa: E402
import downstream  # noqa: E402  (after study, which puts the hook package on the path)
from motive_hooks import MotionAttributor, MotiveClient  # noqa: E402
from motive_hooks.toy import SmallVideoDenoiser  # noqa: E402


class Daemon:
    """``node bin/motived.js`` on free ports with a temporary store and its default configuration."""

    def __init__(self, config: Optional[Dict[str, Any]] = None) -> None:
        self.dir = tempfile.mkdtemp(prefix="motive-bench-")
        cfg_path = os.path.join(self.dir, "config.json")
        with open(cfg_path, "w") as f:
            json.dump(config or {"logLevel": "warn"}, f)
        env = dict(os.environ, MOTIVE_DATA_DIR=os.path.join(self.dir, "data"), MOTIVE_GRPC_PORT="0", MOTIVE_HTTP_PORT="0", MOTIVE_CONFIG=cfg_path)
        self.proc = subprocess.Popen(["node", os.path.join(ROOT, "bin", "motived.js")], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        deadline = time.time() + 60
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("the daemon exited before it was ready")
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if msg.get("msg") == "ready":
                self.grpc = f"127.0.0.1:{msg['grpcPort']}"
                self.http = f"http://127.0.0.1:{msg['httpPort']}"
                break
            if time.time() > deadline:
                raise RuntimeError("the daemon did not get ready in 60 s")

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.http + path, timeout=30) as r:
            return json.loads(r.read())

    def samples(self, run: str) -> Dict[str, Dict[str, Any]]:
        rows = self.get(f"/v1/runs/{run}/samples?order=harmful&limit=10000")["samples"]
        return {r["id"]: r for r in rows}

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def from_latent(x: torch.Tensor) -> torch.Tensor:
    """``[3, F, 16, 16]`` in [-1, 1] → frames ``[F, 3, 32, 32]`` in [0, 1]."""
    frames = ((x.clamp(-1, 1) + 1) / 2).permute(1, 0, 2, 3)
    return F.interpolate(frames, scale_factor=2, mode="bilinear", align_corners=False)


@torch.no_grad()
def generate(model: torch.nn.Module, n: int, frames: int, steps: int, seed: int) -> torch.Tensor:
    model.eval()
    gen = torch.Generator()
    gen.manual_seed(seed)
    x = torch.randn(n, 3, frames, bd.SIZE // 2, bd.SIZE // 2, generator=gen)
    ts = torch.linspace(1.0, 0.0, steps + 1)
    for i in range(steps):
        x = x - (ts[i] - ts[i + 1]) * model(x, ts[i].expand(n))
    model.train()
    return torch.stack([from_latent(c) for c in x])


def detection(values: Dict[str, float], clips: Sequence[bd.Clip]) -> Dict[str, float]:
    """AUC of each family (low value = harmful) against the clean clips; the order-only families
    also against the clean clips of their own content; pooled harmful and pooled decoys."""
    by = lambda pred: [values[c.id] for c in clips if c.id in values and pred(c)]  # noqa: E731
    clean = by(lambda c: c.kind == "clean")
    out: Dict[str, float] = {}
    for k in sorted({c.kind for c in clips} - {"clean"}):
        out[k] = study.auc(by(lambda c: c.kind == k), clean)
        if k in bd.INVISIBLE:
            out[k + "/same"] = study.auc(by(lambda c: c.kind == k), by(lambda c: c.kind == "clean" and c.content == bd.SOURCE[k]))
    out["harmful"] = study.auc(by(lambda c: c.harmful), clean)
    out["decoys"] = study.auc(by(lambda c: c.kind in bd.DECOYS), clean)
    ranked = sorted(values, key=lambda i: values[i])
    top = ranked[: max(1, len(ranked) // 10)]
    kind = {c.id: c.kind for c in clips}
    out["p@10%"] = sum(1 for i in top if kind[i] in bd.HARMFUL) / len(top)
    return out


SAMPLES = 64
"""Clips sampled from each fine-tuned model for the downstream metrics (the same noise for every method)."""

EMA_DECAY = 0.98
"""Per-step decay of the exponential moving average of the weights kept from the second epoch on;
samples are drawn from the average, as diffusion models are sampled (0: from the last weights).
With a constant learning rate the last weights land anywhere in a band whose width moves the
samples' smoothness by more than the harmful clips do (docs/results.md, "Downstream,
redesigned")."""

ATTR_OPTIONS: Dict[str, Any] = {}
"""Hook options other than the defaults (``--attr '{"query_every": 5}'``), for studies only."""


def finetune(
    split: bd.Split,
    seed: int,
    method: str,
    clips: List[bd.Clip],
    queries: List[bd.Clip],
    init: Dict[str, torch.Tensor],
    daemon: Daemon,
    epochs: int,
    log: Any,
    attributed_epochs: Optional[int] = None,
    ref: Optional[downstream.Reference] = None,
    ema_decay: float = EMA_DECAY,
) -> Dict[str, Any]:
    """One fine-tune of ``method`` (``uniform``, ``live`` or ``oracle``: harmful clips' losses
    weighted 0, no daemon). Steps of the first ``attributed_epochs`` (default: all) are attributed;
    later ones train on the weights pushed by then. ``ref``: the downstream metrics' thresholds
    (default: from ``clips``' clean clips). The samples come from the moving average of the
    weights (``ema_decay``) kept from the second epoch on, or from the last weights when there is
    one epoch or ``ema_decay`` is 0."""
    # Longer than 80 lines on purpose: the loop is the README's training loop written out once, and
    # its steps share the model, optimizer, client and generators that a split would pass around.
    if attributed_epochs is None:
        attributed_epochs = epochs
    if ref is None:
        ref = downstream.reference([bd.to_latent(c.frames) for c in clips if c.kind == "clean"])
    lats, masks = study.prepare(clips)
    qlats, qmasks = study.prepare(queries)
    ids = [c.id for c in clips]
    torch.manual_seed(seed)
    model = SmallVideoDenoiser(channels=3, width=study.WIDTH)
    model.load_state_dict(init)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    gen = torch.Generator()
    gen.manual_seed(10_000 + seed)
    run = f"{split.name}-s{seed}-{method}"
    # the README's lines, nothing more (the oracle needs no daemon: it knows which clips are harmful)
    attr = MotionAttributor(model, **ATTR_OPTIONS) if method != "oracle" else None
    client = None
    if attr is not None:
        client = attr.client = MotiveClient(daemon.grpc, run, attr.dim, sketcher=attr, apply_weights=method == "live")
        for grp in study.by_length(range(len(queries)), qlats):
            attr.add_queries([queries[i].id for i in grp], torch.stack([qlats[i] for i in grp]), torch.stack([qmasks[i] for i in grp]))
    n = len(clips)
    steps = (n + study.BATCH - 1) // study.BATCH
    res: Dict[str, Any] = {"method": method, "seed": seed}
    t0 = time.time()
    timeouts = 0
    # per epoch, the share of the loss weight that harmful clips carry (uniform: their share of the set)
    harmful_mass: List[float] = []
    ema: Optional[Dict[str, torch.Tensor]] = None  # from the end of the first epoch on
    for epoch in range(epochs):
        order = torch.randperm(n, generator=gen).tolist()
        mass = [0.0, 0.0]
        for s in range(steps):
            step = epoch * steps + s
            idx = order[s * study.BATCH : (s + 1) * study.BATCH]
            lr = opt.param_groups[0]["lr"]
            attributing = attr is not None and epoch < attributed_epochs
            if attributing:
                for grp in study.by_length(idx, lats):
                    attr.step(step, lr, [ids[i] for i in grp], torch.stack([lats[i] for i in grp]), torch.stack([masks[i] for i in grp]))
            weights = None
            if method == "live":
                assert client is not None
                if attributing:
                    client.flush(timeout_s=10)
                    if not client.wait_weights(client.acked_weights_version, 0.5):
                        timeouts += 1
                weights = client.loss_weights([ids[i] for i in idx])
            elif method == "oracle":
                weights = torch.tensor([0.0 if clips[i].harmful else 1.0 for i in idx])
            opt.zero_grad()
            loss = torch.zeros(())
            total = 0.0
            for grp in study.by_length(idx, lats):
                per = study.fm_loss(model, torch.stack([lats[i] for i in grp]), gen)
                if weights is None:
                    loss = loss + per.sum()
                    mass[0] += sum(1.0 for i in grp if clips[i].harmful)
                    mass[1] += len(grp)
                else:
                    w = torch.tensor([float(weights[idx.index(i)]) for i in grp])
                    loss = loss + (w * per).sum()
                    total += float(w.sum())
                    mass[0] += sum(float(w[k]) for k, i in enumerate(grp) if clips[i].harmful)
                    mass[1] += float(w.sum())
            (loss / (len(idx) if weights is None else max(total, 1e-6))).backward()
            opt.step()
            if ema is not None:
                with torch.no_grad():
                    for k, v in model.state_dict().items():
                        ema[k].mul_(ema_decay).add_(v, alpha=1 - ema_decay)
        if epoch == 0 and ema_decay > 0:
            ema = {k: v.clone() for k, v in model.state_dict().items()}
        harmful_mass.append(mass[0] / max(mass[1], 1e-12))
        if epoch == 0 and method == "uniform" and client is not None:
            client.flush(timeout_s=60)
            views = daemon.samples(run)
            sigs: Dict[str, Dict[str, float]] = {"default": {}, "attribution": {}, "check": {}}
            for i, v in views.items():
                sigs["attribution"][i] = float(v["score"])
                default = v.get("fused")
                sigs["default"][i] = float(default if default is not None else v["score"])
                if v.get("check") is not None:
                    sigs["check"][i] = -float(v["check"])
            res["after_epoch1"] = {k: detection(v, clips) for k, v in sigs.items() if v}
            wts = daemon.get(f"/v1/runs/{run}/weights")
            res["weights_version"] = wts["version"]
            w = wts["weights"]
            res["mean_weight"] = {
                group: sum(float(w.get(c.id, 1.0)) for c in clips if pred(c)) / max(1, sum(1 for c in clips if pred(c)))
                for group, pred in (("clean", lambda c: c.kind == "clean"), ("harmful", lambda c: c.harmful), ("decoys", lambda c: c.kind in bd.DECOYS))
            }
            log(f"  {run} epoch 1: " + json.dumps({k: {m: round(x, 3) for m, x in v.items()} for k, v in res["after_epoch1"].items()}))
            log(f"  {run} weights v{res['weights_version']}: " + json.dumps({k: round(v, 3) for k, v in res["mean_weight"].items()}))
    if client is not None:
        client.close(timeout_s=30)
    res["gate_timeouts"] = timeouts
    res["harmful_loss_share"] = harmful_mass
    res["seconds"] = time.time() - t0
    if ema is not None and epochs > 1:
        model.load_state_dict(ema)
    res["metrics"] = downstream.sample_metrics(generate(model, SAMPLES, 8, 16, seed=20_000 + seed), ref)
    return res


def model_free(clips: Sequence[bd.Clip]) -> Dict[str, Dict[str, float]]:
    """The model-free baselines, low = harmful."""
    lats = [bd.to_latent(c.frames) for c in clips]
    feats = [bf.baseline_features(x) for x in lats]
    g = torch.Generator()
    g.manual_seed(7)
    rnd = torch.rand(len(clips), generator=g).tolist()
    out = {
        "frame-diff ratio (|Δ²|/|Δ|)": {c.id: -f["absratio"] for c, f in zip(clips, feats)},
        "frame-diff energy ratio, 2×2": {c.id: -f["ratio2"] for c, f in zip(clips, feats)},
        "random": {c.id: r for c, r in zip(clips, rnd)},
    }
    return {k: detection(v, clips) for k, v in out.items()}


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", default="held", choices=sorted(bd.SPLITS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--ema", type=float, default=EMA_DECAY, help="decay of the weights' moving average the samples come from (0: the last weights)")
    ap.add_argument("--attributed-epochs", type=int, default=1, help="epochs with every step attributed; later epochs train on the weights pushed by then")
    ap.add_argument("--methods", default="uniform,live,oracle")
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    ap.add_argument("--attr", default="{}", help="MotionAttributor options besides the defaults (JSON), for studies")
    args = ap.parse_args(argv)
    ATTR_OPTIONS.update(json.loads(args.attr))
    os.makedirs(args.out, exist_ok=True)
    split = bd.SPLITS[args.split]
    init = study.pretrain()

    def log(s: str) -> None:
        print(s, flush=True)

    results: Dict[str, Any] = {"split": split.name, "seeds": args.seeds, "runs": []}
    t0 = time.time()
    for seed in args.seeds:
        clips = bd.make_set(bd.training_counts(split), 100 + seed, f"{split.name}{seed}", split)
        queries = bd.make_set({"clean": 2 * len(bd.CONTENT)}, 500 + seed, f"q{seed}", split)
        base = model_free(clips)
        ref = downstream.reference([bd.to_latent(c.frames) for c in clips if c.kind == "clean"])
        log(f"seed {seed} model-free: " + json.dumps({k: {m: round(x, 3) for m, x in v.items()} for k, v in base.items()}))
        daemon = Daemon()
        try:
            for method in args.methods.split(","):
                r = finetune(split, seed, method, clips, queries, init, daemon, args.epochs, log, args.attributed_epochs, ref, args.ema)
                r["model_free"] = base
                results["runs"].append(r)
                mt = r["metrics"]
                log(f"  {method} seed {seed}: {r['seconds']:.0f}s smoothness {mt['smoothness']:.4f} jerk {mt['jerk']:.4f} dynamic {mt['dynamic']:.3f} rel {mt['dynamic_rel']:.3f} moving {mt['moving_pairs']:.3f} flicker {mt['flicker']:.3f} harmful loss share {[round(x, 3) for x in r['harmful_loss_share']]} (load {os.getloadavg()[0]:.1f})")
        finally:
            daemon.stop()
    results["seconds"] = time.time() - t0
    results["downstream"] = downstream.compare(results["runs"])
    log(downstream.table(results["downstream"]))
    path = os.path.join(args.out, f"bench-{split.name}.json")
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
    log(f"wrote {path} ({results['seconds']:.0f}s)")
    return results


if __name__ == "__main__":
    main()
