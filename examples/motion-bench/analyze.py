"""Markdown tables from the development study's JSON files (``study.py run``): AUC after one epoch
per family for each signal, mean ± std over seeds.

    /usr/bin/python3 examples/motion-bench/analyze.py out/study-dev-0.json out/study-dev-1.json ...
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


if __name__ == "__main__":
    runs = [json.load(open(p)) for p in sys.argv[1:]]
    print(table(runs))
    print()
    print(knows(runs))
