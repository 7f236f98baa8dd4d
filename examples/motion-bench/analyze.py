"""Markdown tables from the development study's JSON files (``study.py run``): AUC after one epoch
per family for each signal, mean ± std over seeds; with ``--bench``, the tables of a ``bench.py``
run (detection after the first epoch, weights, the downstream metrics).

    /usr/bin/python3 examples/motion-bench/analyze.py out/study-dev-0.json out/study-dev-1.json ...
    /usr/bin/python3 examples/motion-bench/analyze.py --bench out/bench-held.json
"""

from __future__ import annotations

import json
import statistics
import sys
from typing import Callable, Dict, List, Sequence

import torch

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import data as bd  # noqa: E402
from study import auc, fused, robust_z  # noqa: E402


FUSIONS = ((1, 0), (2, 0), (3, 0), (4, 0), (6, 0), (8, 0), (2, 1), (4, 1))
"""The fusion weights and floors compared (the daemon's ``checkWeight``, ``checkFloorZ``)."""


def signals(r: dict) -> Dict[str, List[float]]:
    """Every signal of one run, low = harmful."""
    checks = torch.tensor(r["checks"])
    z = torch.stack([robust_z(checks[:, j]) for j in range(checks.shape[1])], 1).max(1).values
    out: Dict[str, List[float]] = {}
    for name in ("masked", "temporal", "accel-multi-t", "accel-luma"):
        if name in r["scores"]:
            out[f"attribution, `{'paper' if name == 'masked' else name}`"] = r["scores"][name]
    for name in [n for n in r["scores"] if n.startswith("rev")]:
        out[f"attribution, `reverse` ({name[3:]})"] = r["scores"][name]
        if "accel-luma" in r["scores"]:
            # two blocks of one sketch: the daemon's score is the sum of the blocks' mean cosines
            both = [a + b for a, b in zip(r["scores"]["accel-luma"], r["scores"][name])]
            out[f"attribution, `accel-luma` + `reverse` ({name[3:]})"] = both
            for w, floor in FUSIONS:
                if floor == 0 and w in (2, 4, 6):
                    out[f"fused, `accel-luma` + `reverse` ({name[3:]}), weight {w}, floor 0"] = fused(torch.tensor(both), checks, floor, w).tolist()
    out["motion check `flow_accel`"] = [-float(v) for v in checks[:, 0]]
    out["motion check `still_fraction`"] = [-float(v) for v in checks[:, 1]]
    out["motion checks, largest robust z"] = (-z).tolist()
    for w, floor in FUSIONS:
        out[f"fused, `accel-luma`, weight {w}, floor {floor}"] = fused(torch.tensor(r["scores"]["accel-luma"]), checks, floor, w).tolist()
    if "masked" in r["scores"]:
        out["fused, `paper`, weight 2, floor 0"] = fused(torch.tensor(r["scores"]["masked"]), checks, 0, 2).tolist()
    out["frame-difference ratio \\|Δ²\\|/\\|Δ\\| (model-free)"] = [-f["absratio"] for f in r["feats"]]
    out["frame-difference energy ratio, 2×2-pooled (model-free)"] = [-f["ratio2"] for f in r["feats"]]
    g = torch.Generator()
    g.manual_seed(int(r["seed"]))
    out["random"] = torch.rand(len(checks), generator=g).tolist()
    return out


def columns(r: dict) -> Dict[str, Callable[[List[float]], float]]:
    kinds, contents = r["kinds"], r["contents"]
    n = len(kinds)

    def pick(v: List[float], pred: Callable[[int], bool]) -> List[float]:
        return [v[i] for i in range(n) if pred(i)]

    cols: Dict[str, Callable[[List[float]], float]] = {}
    for k in [k for k in sorted(set(kinds)) if k in bd.HARMFUL]:
        cols[k] = lambda v, k=k: auc(pick(v, lambda i: kinds[i] == k), pick(v, lambda i: kinds[i] == "clean"))
        if k in bd.INVISIBLE:
            src = bd.SOURCE[k]
            cols[f"{k} vs clean {src}"] = lambda v, k=k, src=src: auc(pick(v, lambda i: kinds[i] == k), pick(v, lambda i: kinds[i] == "clean" and contents[i] == src))
    cols["harmful, pooled"] = lambda v: auc(pick(v, lambda i: kinds[i] in bd.HARMFUL), pick(v, lambda i: kinds[i] == "clean"))
    cols["decoys ↓"] = lambda v: auc(pick(v, lambda i: kinds[i] in bd.DECOYS), pick(v, lambda i: kinds[i] == "clean"))
    for k in [k for k in sorted(set(kinds)) if k in bd.DECOYS]:
        cols[f"{k} ↓"] = lambda v, k=k: auc(pick(v, lambda i: kinds[i] == k), pick(v, lambda i: kinds[i] == "clean"))
    return cols


def table(runs: Sequence[dict]) -> str:
    per: Dict[str, Dict[str, List[float]]] = {}
    for r in runs:
        cols = columns(r)
        for sig, v in signals(r).items():
            for c, f in cols.items():
                per.setdefault(sig, {}).setdefault(c, []).append(f(v))
    heads = list(next(iter(per.values())).keys())
    lines = ["| signal | " + " | ".join(heads) + " |", "| --- |" + " --- |" * len(heads)]
    for sig, row in per.items():
        cells = [f"{statistics.mean(row[c]):.2f} ± {statistics.stdev(row[c]) if len(row[c]) > 1 else 0.0:.2f}" for c in heads]
        lines.append(f"| {sig} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def knows(runs: Sequence[dict]) -> str:
    """The pre-trained model's loss on each family against clean clips of the same content."""
    fams = sorted({k for r in runs for k in r["knows"]})
    lines = ["| family | loss (mean) | clean, same content | AUC loss above clean |", "| --- | --- | --- | --- |"]
    for k in fams:
        xs = [r["knows"][k] for r in runs if k in r["knows"]]
        lines.append(
            f"| {k} | {statistics.mean(x['loss'] for x in xs):.4f} | {statistics.mean(x['clean'] for x in xs):.4f} | "
            f"{statistics.mean(x['auc_high'] for x in xs):.2f} ± {statistics.stdev([x['auc_high'] for x in xs]) if len(xs) > 1 else 0.0:.2f} |"
        )
    return "\n".join(lines)


def _ms(xs: List[float], digits: int = 2) -> str:
    return f"{statistics.mean(xs):.{digits}f} ± {statistics.stdev(xs) if len(xs) > 1 else 0.0:.{digits}f}"


def bench_tables(res: dict) -> str:
    """Detection after the first epoch (the daemon's signals and the model-free baselines), mean
    pushed weights, and live against uniform on the downstream metrics, mean ± std over seeds."""
    uni = [r for r in res["runs"] if r["method"] == "uniform"]
    rows: Dict[str, List[Dict[str, float]]] = {}
    for r in uni:
        for sig, name in (("default", "fused (default signal)"), ("attribution", "attribution alone"), ("check", "motion checks alone")):
            if sig in r.get("after_epoch1", {}):
                rows.setdefault(name, []).append(r["after_epoch1"][sig])
        for name, d in r["model_free"].items():
            rows.setdefault(name, []).append(d)
    heads = list(next(iter(rows.values()))[0].keys())
    out = ["| signal | " + " | ".join(heads) + " |", "| --- |" + " --- |" * len(heads)]
    for name, ds in rows.items():
        out.append(f"| {name} | " + " | ".join(_ms([d[h] for d in ds]) for h in heads) + " |")
    out.append("")
    for r in uni:
        out.append(f"seed {r['seed']}: default pooled {r['after_epoch1']['default']['harmful']:.3f}, decoys {r['after_epoch1']['default']['decoys']:.3f}; weights v{r.get('weights_version')}: " + ", ".join(f"{k} {v:.3f}" for k, v in r.get("mean_weight", {}).items()))
    live = {r["seed"]: r for r in res["runs"] if r["method"] == "live"}
    if live:
        out += ["", "| metric | uniform | live | Δ | 2σ | Δ per seed |", "| --- | --- | --- | --- | --- | --- |"]
        for m in uni[0]["metrics"]:
            u = [r["metrics"][m] for r in uni if r["seed"] in live]
            l = [live[r["seed"]]["metrics"][m] for r in uni if r["seed"] in live]
            d = [b - a for a, b in zip(u, l)]
            two = 2 * max(statistics.stdev(u) if len(u) > 1 else 0.0, statistics.stdev(l) if len(l) > 1 else 0.0)
            out.append(f"| {m} | {_ms(u, 4)} | {_ms(l, 4)} | {statistics.mean(d):+.4f} | {two:.4f} | " + " / ".join(f"{x:+.4f}" for x in d) + " |")
        out.append("gate timeouts: " + ", ".join(str(live[s]["gate_timeouts"]) for s in sorted(live)))
    return "\n".join(out)


if __name__ == "__main__":
    if sys.argv[1] == "--bench":
        print(bench_tables(json.load(open(sys.argv[2]))))
        sys.exit(0)
    runs = [json.load(open(p)) for p in sys.argv[1:]]
    print(table(runs))
    print()
    print(knows(runs))
