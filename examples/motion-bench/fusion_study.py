"""How the per-clip checks combine with attribution, evaluated offline on the development split:
every candidate rule in plain numpy from the per-clip JSON of ``study.py run dev 0 1 2`` (the
``accel-luma`` and paper scores, the two model-free checks and the reversal gap as the hook sends
them), AUC per family against the clean clips, mean ± std over the seeds, and the choice by the
rule written in docs/results.md ("Development, fourth round") before the candidates ran.

    MOTION_BENCH_RECIPES=accel-luma,masked /usr/bin/python3 examples/motion-bench/study.py run dev 0 1 2
    /usr/bin/python3 examples/motion-bench/fusion_study.py examples/motion-bench/out/study-dev-{0,1,2}.json
"""

from __future__ import annotations

import json
import os
import sys
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data as bd  # noqa: E402

Signal = Callable[[dict], np.ndarray]


def robust_z(v: np.ndarray) -> np.ndarray:
    """The daemon's robust z: (v − median) / σ, σ = 1.4826·MAD, else √(π/2)·mean absolute deviation;
    zeros when nothing spreads (daemon/weighting/policy.ts)."""
    v = np.asarray(v, dtype=np.float64)
    med = np.median(v)
    dev = np.abs(v - med)
    sigma = 1.4826 * np.median(dev)
    if not sigma > 0:
        sigma = np.sqrt(np.pi / 2) * dev.mean()
    return (v - med) / sigma if sigma > 0 else np.zeros_like(v)


def pos(v: np.ndarray) -> np.ndarray:
    return np.maximum(v, 0.0)


def parts(r: dict, gap: str = "raw") -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(za, z of the two model-free checks [n, 2], z of the gap [n]) of one run."""
    za = robust_z(np.array(r["scores"]["accel-luma"]))
    checks = np.array(r["checks"], dtype=np.float64)
    zc = np.stack([robust_z(checks[:, j]) for j in range(checks.shape[1])], axis=1)
    g = np.array(r["reversal_gap"], dtype=np.float64)
    if gap == "relative":
        lvl = np.array(r["reversal_level"], dtype=np.float64)
        g = np.where(lvl > 0, g / np.where(lvl > 0, lvl, 1.0), 0.0)
    return za, zc, robust_z(g)


def candidates() -> Dict[str, Tuple[Signal, int]]:
    """Every fused candidate, low = harmful, with its count of settings beyond the current default."""
    out: Dict[str, Tuple[Signal, int]] = {}

    def add(name: str, extra: int, f: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray], gap: str = "raw") -> None:
        out[name] = (lambda r, f=f, gap=gap: f(*parts(r, gap)), extra)

    add("fused, 2 checks, largest z, weight 4 (current default)", 0, lambda za, zc, zg: za - 4 * pos(zc.max(1)))
    for gap in ("raw", "relative"):
        g = "" if gap == "raw" else ", gap ÷ loss"
        e = 0 if gap == "raw" else 1
        for w in (4, 6):
            add(f"fused, 3 checks, largest z, weight {w}{g}", e + (w != 4), lambda za, zc, zg, w=w: za - w * pos(np.maximum(zc.max(1), zg)), gap)
        for w in (2, 3, 4):
            add(f"fused, 3 checks, sum of positive z, weight {w}{g}", e + 1 + (w != 4), lambda za, zc, zg, w=w: za - w * (pos(zc).sum(1) + pos(zg)), gap)
        for wg in (1, 2, 3, 4, 6, 8):
            add(f"fused, 2 checks largest z (4) + gap weight {wg}{g}", e + 1, lambda za, zc, zg, wg=wg: za - 4 * pos(zc.max(1)) - wg * pos(zg), gap)
        for fl in (1, 2, 3):
            add(f"fused, 3 checks, largest z (4), gap floor {fl}{g}", e + 1, lambda za, zc, zg, fl=fl: za - 4 * pos(np.maximum(zc.max(1), zg - fl)), gap)
            for wg in (2, 4, 8):
                add(f"fused, 2 checks (4) + gap weight {wg} above floor {fl}{g}", e + 2, lambda za, zc, zg, wg=wg, fl=fl: za - 4 * pos(zc.max(1)) - wg * pos(zg - fl), gap)
    return out


def baselines() -> Dict[str, Signal]:
    """Parts alone and the model-free baselines, low = harmful."""

    def rnd(r: dict) -> np.ndarray:
        return np.random.default_rng(int(r["seed"])).random(len(r["kinds"]))

    return {
        "attribution alone, `accel-luma`": lambda r: np.array(r["scores"]["accel-luma"]),
        "attribution alone, `paper`": lambda r: np.array(r["scores"]["masked"]),
        "checks alone, 2, largest z": lambda r: -pos(parts(r)[1].max(1)),
        "checks alone, 3, largest z": lambda r: -pos(np.maximum(parts(r)[1].max(1), parts(r)[2])),
        "checks alone, 3, sum of positive z": lambda r: -(pos(parts(r)[1]).sum(1) + pos(parts(r)[2])),
        "reversal gap alone": lambda r: -np.array(r["reversal_gap"]),
        "reversal gap ÷ loss alone": lambda r: -parts(r, "relative")[2],
        "reversal gap alone, pre-trained model": lambda r: -np.array(r["reversal_gap_pretrained"]),
        "frame-difference ratio \\|Δ²\\|/\\|Δ\\| (model-free)": lambda r: -np.array([f["absratio"] for f in r["feats"]]),
        "frame-difference energy ratio, 2×2 (model-free)": lambda r: -np.array([f["ratio2"] for f in r["feats"]]),
        "random": rnd,
    }


def auc(neg: np.ndarray, pos_: np.ndarray) -> float:
    """P(neg < pos) + ties/2: AUC of flagging ``neg`` (low = harmful)."""
    n = np.asarray(neg, dtype=np.float64).reshape(-1, 1)
    p = np.asarray(pos_, dtype=np.float64).reshape(1, -1)
    return float(((n < p) + 0.5 * (n == p)).mean())


def columns(r: dict, v: np.ndarray) -> Dict[str, float]:
    kinds = np.array(r["kinds"])
    contents = np.array(r["contents"])
    clean = v[kinds == "clean"]
    out: Dict[str, float] = {}
    for k in sorted(set(kinds) & set(bd.HARMFUL)):
        out[k] = auc(v[kinds == k], clean)
        if k in bd.INVISIBLE:
            out[f"{k} vs clean {bd.SOURCE[k]}"] = auc(v[kinds == k], v[(kinds == "clean") & (contents == bd.SOURCE[k])])
    out["harmful, pooled"] = auc(v[np.isin(kinds, list(bd.HARMFUL))], clean)
    out["decoys ↓"] = auc(v[np.isin(kinds, list(bd.DECOYS))], clean)
    for k in sorted(set(kinds) & set(bd.DECOYS)):
        out[f"{k} ↓"] = auc(v[kinds == k], clean)
    return out


def evaluate(runs: Sequence[dict], sig: Signal) -> Dict[str, Tuple[float, float]]:
    per = [columns(r, np.asarray(sig(r), dtype=np.float64)) for r in runs]
    return {c: (float(np.mean([p[c] for p in per])), float(np.std([p[c] for p in per], ddof=1)) if len(per) > 1 else 0.0) for c in per[0]}


def choose(table: Dict[str, Dict[str, Tuple[float, float]]], extra: Dict[str, int]) -> Tuple[str, List[str]]:
    """The rule (docs/results.md, "Development, fourth round"): eligible = every decoy family and
    the pooled decoys ≤ 0.6; the highest pooled harmful AUC; within 0.005 of it, rev-fall ≥ 0.8
    first, then fewer settings; the current default stays unless beaten by more than 0.005."""
    decoy_cols = [c for c in next(iter(table.values())) if c.endswith("↓")]
    ok = [n for n in extra if all(table[n][c][0] <= 0.6 for c in decoy_cols)]
    best = max(table[n]["harmful, pooled"][0] for n in ok)
    ties = [n for n in ok if table[n]["harmful, pooled"][0] >= best - 0.005]
    default = next(n for n in extra if extra[n] == 0 and "current default" in n)
    if default in ties:
        return default, ok
    ties.sort(key=lambda n: (table[n]["rev-fall"][0] < 0.8, extra[n], -table[n]["harmful, pooled"][0]))
    return ties[0], ok


def main(paths: Sequence[str]) -> None:
    runs = [json.load(open(p)) for p in paths]
    cands = candidates()
    table = {n: evaluate(runs, f) for n, (f, _) in cands.items()}
    base = {n: evaluate(runs, f) for n, f in baselines().items()}
    chosen, eligible = choose(table, {n: e for n, (_, e) in cands.items()})
    heads = list(next(iter(table.values())).keys())
    print("| signal | " + " | ".join(heads) + " | eligible |")
    print("| --- |" + " --- |" * (len(heads) + 1))
    for n, row in list(table.items()) + list(base.items()):
        mark = "" if n not in table else ("**chosen**" if n == chosen else ("yes" if n in eligible else "no"))
        print(f"| {n} | " + " | ".join(f"{row[c][0]:.2f} ± {row[c][1]:.2f}" for c in heads) + f" | {mark} |")
    print()
    print("chosen:", chosen, "pooled %.3f" % table[chosen]["harmful, pooled"][0])
    print("seeds:", [r["seed"] for r in runs])


if __name__ == "__main__":
    main(sys.argv[1:])
