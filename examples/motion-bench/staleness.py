"""Side-car staleness on the motion benchmark: does sketching each step at a parameter snapshot up
to N steps old change what the daemon's default signal detects? Development split only.

    /usr/bin/python3 examples/motion-bench/staleness.py run 0 1 2          # emulated, N = 1, 4, 8
    /usr/bin/python3 examples/motion-bench/staleness.py real 0 --every 8   # the real side-car path
    /usr/bin/python3 examples/motion-bench/staleness.py real 0 --every 8 --backlog   # trainer runs ahead
    /usr/bin/python3 examples/motion-bench/staleness.py table out/staleness-dev-*.json

Per seed, as ``bench.py --split dev --methods uniform --epochs 1``: the development training set,
two clean queries per content family, the shipped pre-trained checkpoint, one epoch of AdamW
(lr 1e-3, batch 8, uniform order) and the product's defaults (``MotionAttributor(model)``: the
``accel-luma`` recipe, the default layers, the motion checks, the query refresh rule).

``run`` trains once and keeps the weights every step starts from, then attributes the same steps
three ways with the product's own code and no daemon round trips: **in-process** (the hook's
``MotionAttributor.step`` at each step's own weights) and **side-car, snapshot every N steps**
(N = 4, 8: ``SidecarReporter`` writes the snapshots, ``SidecarWorker.sketch_jobs`` sketches step
``s`` at snapshot ``⌊s/N⌋·N`` and publishes the queries at it with the worker's refresh rule). Each
step's rows are scored as the daemon scores them (cosine, the query set in force, ``η_t`` of the
step; docs/method.md) and fused with the motion checks as the daemon's default signal
(``checkWeight`` 4, ``checkFloorZ`` 0; ``study.fused``).

``real`` runs one seed through the whole side-car path instead: the trainer with a
``SidecarReporter`` against a real daemon, one worker process (``run_worker``) leasing the jobs,
the AUCs read from the daemon's sample views. The trainer waits after each step until the worker
has attributed it (workers keeping up: the backlog, newest first, is a separate matter).
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench  # noqa: E402  (puts the hook package on the path through study)
import data as bd  # noqa: E402
import study  # noqa: E402
from motive_hooks import MotionAttributor, MotiveClient  # noqa: E402
from motive_hooks.motion_check import clip_features  # noqa: E402
from motive_hooks.sidecar import SidecarReporter  # noqa: E402
from motive_hooks.toy import SmallVideoDenoiser  # noqa: E402
from motive_hooks.worker import Job, SidecarWorker, run_worker  # noqa: E402

OUT = os.path.join(HERE, "out")
EVERY = (4, 8)
STEPS = int(os.environ.get("MOTION_BENCH_STALE_STEPS", "1000000"))
"""Train at most this many steps (a shorter smoke run; the results need the whole epoch)."""


class Ragged:
    """Clips of one step that differ in length: the hook is called once per length group in
    ``bench.py``, so a worker's batch of one step is sketched the same way."""

    def __init__(self, lats: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]) -> None:
        self.lats, self.masks = list(lats), list(masks)


class RaggedAttributor(MotionAttributor):
    """``MotionAttributor`` whose ``sketch`` and ``features`` also take a :class:`Ragged` batch,
    sketching each length group as the in-process hook does and putting the rows back in order."""

    def sketch(self, batch: Any, masks: Optional[torch.Tensor], noise: Optional[torch.Tensor] = None, query: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(batch, Ragged):
            return super().sketch(batch, masks, noise, query)
        out, losses = torch.zeros(len(batch.lats), self.dim), torch.zeros(len(batch.lats))
        for grp in study.by_length(range(len(batch.lats)), batch.lats):
            s, l = super().sketch(torch.stack([batch.lats[i] for i in grp]), torch.stack([batch.masks[i] for i in grp]), noise, query)
            out[grp], losses[grp] = s, l
        return out, losses

    def features(self, batch: Any) -> Optional[torch.Tensor]:
        if not isinstance(batch, Ragged):
            return super().features(batch)
        rows: Dict[int, torch.Tensor] = {}
        for grp in study.by_length(range(len(batch.lats)), batch.lats):
            f = super().features(torch.stack([batch.lats[i] for i in grp]))
            if f is None:
                return None
            rows.update({i: f[k] for k, i in enumerate(grp)})
        return torch.stack([rows[i] for i in range(len(batch.lats))])


def _robust(v: torch.Tensor) -> Optional[Tuple[float, float]]:
    """The daemon's robust statistics (daemon/weighting/policy.ts): the median with linear
    interpolation, σ = 1.4826 · MAD, else √(π/2) · mean absolute deviation; None when σ is 0."""
    med = float(torch.quantile(v, 0.5))
    dev = (v - med).abs()
    sigma = 1.4826 * float(torch.quantile(dev, 0.5))
    if not sigma > 0:
        sigma = math.sqrt(math.pi / 2) * float(dev.mean())
    return (med, sigma) if sigma > 0 else None


CHECK_SHARES = {"reversal_gap": 0.25}
"""The daemon's default ``weights.checkShares``."""


def daemon_fused(
    score: torch.Tensor, feats: torch.Tensor, names: Sequence[str] = (), weight: float = 4.0, floor: float = 0.0
) -> torch.Tensor:
    """The daemon's default signal (docs/method.md, "The fused signal"; daemon/weighting/fused.ts)
    with its defaults ``checkWeight`` 4, ``checkFloorZ`` 0 and ``checkShares`` (features ``names``,
    in their order), every sample eligible; the features as the daemon holds them (float32)."""
    score = score.double()
    st = _robust(score)
    za = torch.zeros_like(score) if st is None else (score - st[0]) / st[1]
    f = feats.float().double()
    zs = []
    added = torch.zeros_like(score)
    for j in range(f.shape[1]):
        fj = _robust(f[:, j])
        z = torch.zeros_like(score) if fj is None else (f[:, j] - fj[0]) / fj[1]
        name = names[j] if j < len(names) else None
        if name in CHECK_SHARES:
            added = added + CHECK_SHARES[name] * (z - floor).clamp_min(0.0)
        else:
            zs.append(z)
    largest = torch.stack(zs, dim=1).max(dim=1).values if zs else torch.zeros_like(score)
    check = (largest - floor).clamp_min(0.0) + added
    return za - weight * check


def clip_checks(seed: int) -> Dict[str, List[float]]:
    """The motion checks of one seed's training clips, per clip id (what the hook sends)."""
    clips = bd.make_set(bd.training_counts(bd.DEV), 100 + seed, f"dev{seed}", bd.DEV)
    return {c.id: clip_features(bd.to_latent(c.frames).unsqueeze(0))[0].tolist() for c in clips}


def signals_of(score: Dict[str, float], checks: Dict[str, List[float]], names: Sequence[str] = ()) -> Dict[str, Dict[str, float]]:
    """Attribution alone and the fused default signal per clip (low = harmful)."""
    ids = [i for i in score if i in checks]
    s = torch.tensor([score[i] for i in ids], dtype=torch.float64)
    fused = daemon_fused(s, torch.tensor([checks[i] for i in ids], dtype=torch.float64), names)
    return {"attribution": dict(zip(ids, s.tolist())), "default": dict(zip(ids, fused.tolist()))}


class Scorer:
    """What the daemon does with a run's rows (docs/method.md): cosine-normalised sketches scored
    ``η_t · mean_j <ĝ, q̂_j>`` against the query set in force (here the newest published, as
    every step arrives after the sets published before it), the newest feature row per sample.
    Handed to the hook and the worker as their ``client``."""

    def __init__(self, feature_names: Sequence[str]) -> None:
        self.feature_names = list(feature_names)
        self.queries: Optional[torch.Tensor] = None
        self.score: Dict[str, float] = {}
        self.features: Dict[str, List[float]] = {}
        self.staleness: List[int] = []
        self.refreshes: List[int] = []

    def set_queries(self, ids: Sequence[str], sketches: torch.Tensor, step: Optional[int] = None, groups: Any = None) -> int:
        self.queries = torch.nn.functional.normalize(sketches.double(), dim=1)
        self.refreshes.append(int(step or 0))
        return len(self.refreshes)

    def send(self, step: int, lr: float, ids: Sequence[str], sketches: torch.Tensor, losses: Any = None, features: Any = None, **kw: Any) -> bool:
        g = torch.nn.functional.normalize(sketches.double(), dim=1)
        c = torch.zeros(len(ids), dtype=torch.float64) if self.queries is None else lr * (g @ self.queries.T).mean(dim=1)
        for i, sid in enumerate(ids):
            self.score[sid] = self.score.get(sid, 0.0) + float(c[i])
            if features is not None:
                self.features[sid] = [float(v) for v in features[i]]
        self.staleness.append(int(step) - int(kw.get("snapshot_step", step)))
        return True

    def signals(self) -> Dict[str, Dict[str, float]]:
        """Attribution alone and the fused default signal per clip (low = harmful)."""
        return signals_of(self.score, self.features, self.feature_names)


class Seed:
    """One seed's clips, queries and model inputs, as ``bench.py`` makes them."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.clips = bd.make_set(bd.training_counts(bd.DEV), 100 + seed, f"dev{seed}", bd.DEV)
        self.queries = bd.make_set({"clean": 2 * len(bd.CONTENT)}, 500 + seed, f"q{seed}", bd.DEV)
        self.lats, self.masks = study.prepare(self.clips)
        self.qlats, self.qmasks = study.prepare(self.queries)
        self.ids = [c.id for c in self.clips]
        self.index = {c.id: i for i, c in enumerate(self.clips)}

    def dataset(self, ids: Sequence[str]) -> Tuple[Ragged, None]:
        rows = [self.index[i] for i in ids]
        return Ragged([self.lats[i] for i in rows], [self.masks[i] for i in rows]), None

    def attributor(self, model: torch.nn.Module) -> RaggedAttributor:
        attr = RaggedAttributor(model)  # the product's defaults
        for grp in study.by_length(range(len(self.queries)), self.qlats):
            attr.add_queries([self.queries[i].id for i in grp], torch.stack([self.qlats[i] for i in grp]), torch.stack([self.qmasks[i] for i in grp]))
        return attr


def new_model(state: Dict[str, torch.Tensor]) -> SmallVideoDenoiser:
    model = SmallVideoDenoiser(channels=3, width=study.WIDTH)
    model.load_state_dict(state)
    return model


def train(d: Seed, on_step: Callable[[int, float, List[int], torch.nn.Module], None]) -> None:
    """One epoch as ``bench.finetune`` (uniform); ``on_step(step, lr, idx, model)`` after the
    backward, before ``optimizer.step()``, where the hook and the reporter go."""
    torch.manual_seed(d.seed)
    model = new_model(study.pretrain())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    gen = torch.Generator()
    gen.manual_seed(10_000 + d.seed)
    n = len(d.clips)
    order = torch.randperm(n, generator=gen).tolist()
    for s in range(min((n + study.BATCH - 1) // study.BATCH, STEPS)):
        idx = order[s * study.BATCH : (s + 1) * study.BATCH]
        lr = opt.param_groups[0]["lr"]
        opt.zero_grad()
        loss = torch.zeros(())
        for grp in study.by_length(idx, d.lats):
            loss = loss + study.fm_loss(model, torch.stack([d.lats[i] for i in grp]), gen).sum()
        (loss / len(idx)).backward()
        on_step(s, lr, idx, model)
        opt.step()


def emulate(seed: int) -> Dict[str, Any]:
    """In-process and side-car (snapshots every 4 and 8 steps) attribution of one training run."""
    d = Seed(seed)
    t0 = time.time()
    tmp = tempfile.mkdtemp(prefix="motive-stale-")
    weights: List[Dict[str, torch.Tensor]] = []
    steps: List[Tuple[int, float, List[int]]] = []
    reporters: Dict[int, SidecarReporter] = {}

    def record(step: int, lr: float, idx: List[int], model: torch.nn.Module) -> None:
        weights.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        steps.append((step, lr, idx))
        for n in EVERY:
            if n not in reporters:
                reporters[n] = SidecarReporter(model, None, os.path.join(tmp, f"every{n}"), snapshot_every=n, keep=1000, background=False)
            reporters[n].step(step, lr, [d.ids[i] for i in idx])

    train(d, record)
    res: Dict[str, Any] = {"seed": seed, "split": "dev", "train_seconds": time.time() - t0, "modes": {}}
    # in-process: the hook at each step's own weights, once per length group as bench.py calls it
    model = new_model(weights[0])
    hook = d.attributor(model)
    sink = Scorer(hook.feature_names)
    hook.client = sink  # type: ignore[assignment]
    t1 = time.time()
    for (step, lr, idx), w in zip(steps, weights):
        model.load_state_dict(w)
        for grp in study.by_length(idx, d.lats):
            hook.step(step, lr, [d.ids[i] for i in grp], torch.stack([d.lats[i] for i in grp]), torch.stack([d.masks[i] for i in grp]))
    res["checks"] = sink.features
    res["feature_names"] = list(sink.feature_names)
    res["modes"]["in-process"] = {"signals": sink.signals(), "staleness_max": 0, "refreshes": sink.refreshes, "seconds": time.time() - t1}
    # side-car: a worker's sketches at the nearest snapshot, queries published at the snapshot
    for n in EVERY:
        worker = SidecarWorker(d.attributor(new_model(weights[0])), d.dataset, os.path.join(tmp, f"every{n}"))
        sink = Scorer(worker.attr.feature_names)
        t1 = time.time()
        for step, lr, idx in steps:
            for g in worker.sketch_jobs([Job(step * 100 + k, step, lr, d.ids[i]) for k, i in enumerate(idx)]):
                worker.refresh_queries(sink, g.snapshot_step, len(g.ids))  # type: ignore[arg-type]
                sink.send(g.step, g.lr, g.ids, g.sketches, g.losses, features=g.features, snapshot_step=g.snapshot_step)
        res["modes"][f"side-car, every {n}"] = {"signals": sink.signals(), "staleness_max": max(sink.staleness), "refreshes": sink.refreshes, "seconds": time.time() - t1}
    shutil.rmtree(tmp, ignore_errors=True)
    for m in res["modes"].values():
        m["detection"] = {k: bench.detection(v, d.clips) for k, v in m["signals"].items()}
    res["kinds"] = {c.id: c.kind for c in d.clips}
    return res


def _worker(address: str, run: str, snapdir: str, seed: int) -> None:
    torch.set_num_threads(1)
    d = Seed(seed)
    run_worker(lambda: new_model(study.pretrain()), d.dataset, address, run, snapdir, attributor=d.attributor, worker_name="w0", idle_exit_s=300.0, threads=1)


def real(seed: int, every: int, wait: bool = True) -> Dict[str, Any]:
    """The side-car path end to end: reporter, real daemon, one worker process. ``wait``: the
    trainer waits after each step until the worker has attributed it; else it runs ahead and the
    worker drains the backlog (newest first)."""
    d = Seed(seed)
    daemon = bench.Daemon()
    tmp = tempfile.mkdtemp(prefix="motive-stale-real-")
    run = f"dev-s{seed}-sidecar{every}{'' if wait else '-backlog'}"
    proc = multiprocessing.get_context("spawn").Process(target=_worker, args=(daemon.grpc, run, os.path.join(tmp, "snap"), seed))
    t0 = time.time()
    try:
        proc.start()
        client: List[MotiveClient] = []
        reporter: List[SidecarReporter] = []

        def on_step(step: int, lr: float, idx: List[int], model: torch.nn.Module) -> None:
            if not client:
                attr = MotionAttributor(model)  # the projection identity and check names of the Hello
                client.append(MotiveClient(daemon.grpc, run, attr.dim, sketcher=attr, apply_weights=False))
                # written before the report, so the worker never finds the step's snapshot missing
                reporter.append(SidecarReporter(model, client[0], os.path.join(tmp, "snap"), snapshot_every=every, keep=1000, background=False))
            reporter[0].step(step, lr, [d.ids[i] for i in idx])
            assert client[0].flush(60)
            while wait and daemon.get(f"/v1/runs/{run}")["sidecar"]["backlog"] > 0:  # the worker keeps up
                if not proc.is_alive():
                    raise RuntimeError("the worker exited")
                time.sleep(0.1)

        train(d, on_step)
        while daemon.get(f"/v1/runs/{run}")["sidecar"]["backlog"] > 0:
            if not proc.is_alive():
                raise RuntimeError("the worker exited")
            time.sleep(0.5)
        side = daemon.get(f"/v1/runs/{run}")["sidecar"]
        views = daemon.samples(run)
        client[0].close(30)
    finally:
        proc.terminate()
        proc.join(30)
        daemon.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    sigs = {"attribution": {i: float(v["score"]) for i, v in views.items()}, "default": {i: float(v["fused"] if v.get("fused") is not None else v["score"]) for i, v in views.items()}}
    return {
        "seed": seed,
        "every": every,
        "wait": wait,
        "sidecar": side,
        "seconds": time.time() - t0,
        "signals": sigs,
        "detection": {k: bench.detection(v, d.clips) for k, v in sigs.items()},
    }


COLUMNS = ("shake", "frozen", "flicker", "rev-fall", "rev-fall/same", "speed", "tremor", "harmful", "decoys")


def _ms(xs: Sequence[float]) -> str:
    return f"{statistics.mean(xs):.3f} ± {statistics.stdev(xs) if len(xs) > 1 else 0.0:.3f}"


def table(runs: Sequence[Dict[str, Any]]) -> str:
    """AUC per family, pooled harmful and pooled decoys (↓), mean ± std over seeds; then each mode's
    pooled AUC minus the in-process one, paired by seed."""
    modes = list(runs[0]["modes"])
    lines = ["| attribution | signal | " + " | ".join(COLUMNS) + " |", "| --- | --- |" + " --- |" * len(COLUMNS)]
    for sig, name in (("attribution", "attribution alone"), ("default", "fused (default)")):
        for m in modes:
            cells = [_ms([r["modes"][m]["detection"][sig][c] for r in runs]) for c in COLUMNS]
            lines.append(f"| {m} | {name} | " + " | ".join(cells) + " |")
    lines += ["", "| attribution | signal | pooled harmful − in-process, per seed | mean | in-process seed std |", "| --- | --- | --- | --- | --- |"]
    for sig, name in (("attribution", "attribution alone"), ("default", "fused (default)")):
        base = [r["modes"]["in-process"]["detection"][sig]["harmful"] for r in runs]
        spread = statistics.stdev(base) if len(base) > 1 else 0.0
        for m in modes[1:]:
            diff = [r["modes"][m]["detection"][sig]["harmful"] - b for r, b in zip(runs, base)]
            lines.append(f"| {m} | {name} | " + " / ".join(f"{x:+.3f}" for x in diff) + f" | {statistics.mean(diff):+.3f} | {spread:.3f} |")
    return "\n".join(lines)


def compare(real_run: Dict[str, Any], emulated: Dict[str, Any]) -> str:
    """The real side-car path against its emulation on the same seed: AUCs side by side, and the
    largest per-clip difference of each signal relative to that signal's spread (robust σ)."""
    mode = emulated["modes"]["in-process" if real_run["every"] == 1 else f"side-car, every {real_run['every']}"]
    how = "the trainer waits for the worker" if real_run.get("wait", True) else "backlog, drained newest first"
    lines = [f"seed {real_run['seed']}, snapshot every {real_run['every']}, {how}: daemon {json.dumps(real_run['sidecar'])}"]
    for sig in ("attribution", "default"):
        a, b = real_run["signals"][sig], mode["signals"][sig]
        common = sorted(set(a) & set(b))
        diff = max(abs(a[i] - b[i]) for i in common)
        sigma = float(1.4826 * (torch.tensor([b[i] for i in common]) - torch.tensor([b[i] for i in common]).median()).abs().median())
        lines.append(f"  {sig}: {len(common)} clips, max |real − emulated| = {diff:.3g} ({diff / sigma:.2g} robust σ)")
        for src, det in (("real", real_run["detection"][sig]), ("emulated", mode["detection"][sig])):
            lines.append(f"    {src:9s}" + " ".join(f"{c}={det[c]:.3f}" for c in COLUMNS))
    return "\n".join(lines)


def main(argv: Sequence[str]) -> None:
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    if argv[0] == "table":
        runs = [json.load(open(p)) for p in argv[1:]]
        for r in runs:  # scored again from the raw scores and the checks (files of older versions)
            clips = bd.make_set(bd.training_counts(bd.DEV), 100 + r["seed"], f"dev{r['seed']}", bd.DEV)
            checks = r.get("checks") or clip_checks(r["seed"])
            for m in r["modes"].values() if "modes" in r else [r]:
                if "modes" not in r:  # the daemon's own fused signal against this formula
                    mine = signals_of(m["signals"]["attribution"], checks, r.get("feature_names", ()))["default"]
                    print(f"real seed {r['seed']}: max |daemon fused − daemon_fused()| = {max(abs(mine[i] - v) for i, v in m['signals']['default'].items()):.2g}")
                    continue
                m["signals"] = signals_of(m["signals"]["attribution"], checks, r.get("feature_names", ()))
                m["detection"] = {k: bench.detection(v, clips) for k, v in m["signals"].items()}
        print(table([r for r in runs if "modes" in r]))
        by_seed = {r["seed"]: r for r in runs if "modes" in r}
        for r in runs:
            if "every" in r and r["seed"] in by_seed:
                print()
                print(compare(r, by_seed[r["seed"]]))
        return
    if argv[0] == "real":
        every = int(argv[argv.index("--every") + 1]) if "--every" in argv else 8
        wait = "--backlog" not in argv
        seeds = [a for k, a in enumerate(argv[1:], 1) if not a.startswith("--") and argv[k - 1] != "--every"]
        for s in seeds:
            r = real(int(s), every, wait)
            with open(os.path.join(OUT, f"staleness-real-dev-{s}-every{every}{'' if wait else '-backlog'}.json"), "w") as f:
                json.dump(r, f)
            print(f"real seed {s} every {every} ({r['seconds']:.0f}s, load {os.getloadavg()[0]:.1f}): sidecar {json.dumps(r['sidecar'])}")
            for k, v in r["detection"].items():
                print(f"  {k:12s}", " ".join(f"{c}={v[c]:.3f}" for c in COLUMNS))
        return
    for s in argv[1:]:
        r = emulate(int(s))
        with open(os.path.join(OUT, f"staleness-dev-{s}.json"), "w") as f:
            json.dump(r, f)
        print(f"seed {s} (load {os.getloadavg()[0]:.1f})")
        for m, v in r["modes"].items():
            for k, det in v["detection"].items():
                print(f"  {m:18s} {k:12s} {v['seconds']:5.0f}s", " ".join(f"{c}={det[c]:.3f}" for c in COLUMNS))


if __name__ == "__main__":
    main(sys.argv[1:])
