"""Tables (mean ± std over seeds) and plots of an experiment's ``results.json``.

    /usr/bin/python3 examples/synthetic-motion/report.py [RESULTS_JSON] [--docs DIR]
"""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Any, Dict, List, Sequence, Tuple

KIND_ORDER = ("jitter", "frozen", "shuffle", "flicker", "appearance", "harmful")
METRICS = (
    ("smoothness", "motion smoothness ↑"),
    ("dynamic", "dynamic degree ↑"),
    ("dynamic_2px", "dynamic degree @2 px ↑"),
    ("motion_px", "motion (px/frame)"),
    ("motion_min_px", "slowest sample (px/frame)"),
    ("flicker", "temporal flicker ↓"),
)
ACCEPT_AUC = {"jitter": (0.9, 1.0), "frozen": (0.9, 1.0), "appearance": (0.0, 0.6)}
"""The issue's detection bar (live score after one epoch, AUC vs clean), per seed."""


def _ms(xs: Sequence[float]) -> Tuple[float, float]:
    m = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return m, sd


def verdict(results: Dict[str, Any]) -> str:
    """The acceptance bars, per seed and on the mean, from the run itself."""
    cfg = results["config"]
    seeds = _seeds(results)
    names = list(results["seeds"].keys())
    lines: List[str] = []
    aucs = live_auc_at(results, "epoch").get(cfg["best"], {})
    rows = []
    for k in ("jitter", "frozen", "shuffle", "flicker", "appearance", "harmful"):
        xs = aucs.get(k, [])
        if not xs:
            continue
        m, sd = _ms(xs)
        lo, hi = ACCEPT_AUC.get(k, (float("nan"), float("nan")))
        if k in ACCEPT_AUC:
            ok = all(lo <= x <= hi for x in xs)
            bar = f"≥ {lo}" if lo > 0 else f"≤ {hi}"
            met = "yes, every seed" if ok else ("on the mean only" if lo <= m <= hi else "no")
        else:
            bar, met = "—", "—"
        rows.append([k, bar, f"{m:.3f} ± {sd:.3f}", " / ".join(f"{x:.3f}" for x in xs), met])
    if rows:
        lines.append(
            f"Live detection after one epoch (recipe {cfg['best']}, uniform-sampling run), seeds {', '.join(names)}:\n\n"
            + md_table(["kind", "bar", "mean ± std", "per seed", "met"], rows)
        )
    if all("uniform" in s["runs"] and "live" in s["runs"] for s in seeds):
        rows = []
        for key, title in METRICS:
            if not all(key in s["runs"][r]["metrics"] for s in seeds for r in ("uniform", "live")):
                continue
            u = [s["runs"]["uniform"]["metrics"][key] for s in seeds]
            lv = [s["runs"]["live"]["metrics"][key] for s in seeds]
            (mu, su), (ml, sl) = _ms(u), _ms(lv)
            d = [b - a for a, b in zip(u, lv)]
            rows.append(
                [
                    title,
                    f"{mu:.4f} ± {su:.4f}",
                    f"{ml:.4f} ± {sl:.4f}",
                    f"{ml - mu:+.4f}",
                    f"{2 * max(su, sl):.4f}",
                    " / ".join(f"{x:+.4f}" for x in d),
                ]
            )
        lines.append(
            "Live weighting vs uniform sampling (Δ = live − uniform; 2σ = twice the larger of the two seed standard deviations):\n\n"
            + md_table(["metric", "uniform", "live", "Δ", "2σ", "Δ per seed"], rows)
        )
        gates = [s["runs"]["live"].get("gate") or {} for s in seeds]
        if any(gates):
            steps = sum(g.get("steps", 0) for g in gates)
            touts = sum(g.get("timeouts", 0) for g in gates)
            lines.append(f"Gated steps of the live runs: {steps}, of which {touts} timed out waiting for the daemon's weight update.")
    return "\n\n".join(lines)


def mean_std(xs: Sequence[float]) -> str:
    xs = [x for x in xs if not (isinstance(x, float) and math.isnan(x))]
    if not xs:
        return "n/a"
    m = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return f"{m:.4f} ± {sd:.4f}" if abs(m) < 10 else f"{m:.2f} ± {sd:.2f}"


def md_table(headers: List[str], rows: List[List[str]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def _seeds(results: Dict[str, Any]) -> List[Dict[str, Any]]:
    return list(results["seeds"].values())


def live_auc_at(results: Dict[str, Any], step_of: str = "epoch") -> Dict[str, Dict[str, List[float]]]:
    """recipe → kind → [AUC per seed] after one epoch (``epoch``) or at the end (``final``)."""
    cfg = results["config"]
    n = sum(cfg["train_counts"].values())
    epoch = n // cfg["batch"]
    out: Dict[str, Dict[str, List[float]]] = {}
    for s in _seeds(results):
        if "uniform" not in s["runs"]:
            continue
        for recipe, curve in s["runs"]["uniform"]["auc_curves"].items():
            pick = [c for c in curve if c[0] == epoch] if step_of == "epoch" else [curve[-1]]
            if not pick:
                continue
            for k, v in pick[0][1].items():
                out.setdefault(recipe, {}).setdefault(k, []).append(v)
    return out


def tables(results: Dict[str, Any]) -> str:
    parts: List[str] = ["### Against the bar\n\n" + verdict(results)]
    cfg = results["config"]
    for when, title in (("epoch", "after one epoch"), ("final", f"after {cfg['ft_epochs']} epochs")):
        aucs = live_auc_at(results, when)
        rows = [[r] + [mean_std(aucs[r].get(k, [])) for k in KIND_ORDER] for r in aucs]
        parts.append(f"### Live detection AUC vs clean ({title}; uniform-sampling run, daemon's live score)\n\n" + md_table(["recipe"] + list(KIND_ORDER), rows))
    seeds = _seeds(results)
    n = sum(cfg["train_counts"].values())
    epoch = n // cfg["batch"]
    rows = []
    for m in ("live", "live-sampler", "live-nomask"):
        if not all(m in s["runs"] for s in seeds):
            continue
        for when in ("epoch", "final"):
            vals: Dict[str, List[float]] = {}
            for s in seeds:
                curve = next(iter(s["runs"][m]["auc_curves"].values()))
                pick = [c for c in curve if c[0] == epoch] if when == "epoch" else [curve[-1]]
                for k, v in pick[0][1].items():
                    vals.setdefault(k, []).append(v)
            rows.append([f"{m} ({'1 epoch' if when == 'epoch' else 'end'})"] + [mean_std(vals.get(k, [])) for k in KIND_ORDER])
    if rows:
        parts.append(
            f"### Live detection AUC in the weighted runs, with and without the motion mask (recipe {cfg['best']}; clips seen so far)\n\n"
            + md_table(["run"] + list(KIND_ORDER), rows)
        )
    if all("offline_auc" in s for s in seeds):
        rows = [["offline " + cfg["best"]] + [mean_std([s["offline_auc"][k] for s in seeds]) for k in KIND_ORDER]]
        parts.append("### Offline (final checkpoint, majority vote) detection AUC\n\n" + md_table(["recipe"] + list(KIND_ORDER), rows))
    methods = ["pretrained"] + [m for m in cfg["methods"] if all(m in s["runs"] for s in seeds)]
    rows = []
    for m in methods:
        rows.append([m] + [mean_std([s["runs"][m]["metrics"].get(k, float("nan")) for s in seeds]) for k, _ in METRICS] + [mean_std([s["runs"][m]["seconds"] for s in seeds])])
    parts.append("### Motion metrics of generated samples per run (mean ± std over seeds)\n\n" + md_table(["run"] + [t for _, t in METRICS] + ["seconds"], rows))
    sel = [m for m in methods if seeds[0]["runs"][m].get("selected")]
    if sel:
        kinds = ["clean", "appearance", "jitter", "frozen", "shuffle", "flicker"]
        rows = [[m] + [mean_std([float(s["runs"][m]["selected"][k]) for s in seeds]) for k in kinds] for m in sel]
        parts.append("### Clips kept by the selection runs (count per kind, mean ± std)\n\n" + md_table(["run"] + kinds, rows))
    if all("length_bias" in s for s in seeds):
        recipes = list(seeds[0]["length_bias"].keys())
        keys = list(seeds[0]["length_bias"][recipes[0]].keys())
        rows = [[r] + [mean_std([s["length_bias"][r][k] for s in seeds]) for k in keys] for r in recipes]
        parts.append("### Length bias: Pearson correlation of clip length with score / gradient norm\n\n" + md_table(["recipe"] + keys, rows))
    parts.append(f"Total runtime: {results.get('seconds', float('nan')):.0f} s")
    return "\n\n".join(parts) + "\n"


def plots(results: Dict[str, Any], docs: str) -> List[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: List[str] = []
    seeds = _seeds(results)
    cfg = results["config"]
    recipes = list(seeds[0]["runs"]["uniform"]["auc_curves"].keys())
    for recipe in dict.fromkeys(["masked", "accel-multi-t", cfg["best"]]):
        if recipe not in recipes:
            continue
        fig, ax = plt.subplots(figsize=(6, 3.6))
        for k in KIND_ORDER:
            steps = [c[0] for c in seeds[0]["runs"]["uniform"]["auc_curves"][recipe]]
            vals = [[s["runs"]["uniform"]["auc_curves"][recipe][i][1][k] for s in seeds] for i in range(len(steps))]
            mean = [sum(v) / len(v) for v in vals]
            ax.plot(steps, mean, marker="o", label=k)
        ax.axhline(0.9, color="grey", lw=0.8, ls="--")
        ax.axhline(0.6, color="grey", lw=0.8, ls=":")
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("fine-tuning step")
        ax.set_ylabel("AUC vs clean (live score)")
        ax.set_title(f"live detection, recipe {recipe}")
        ax.legend(fontsize=7, ncol=3)
        fig.tight_layout()
        path = os.path.join(docs, f"results-auc-{recipe.replace('.', '-')}.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    methods = ["pretrained"] + [m for m in cfg["methods"] if all(m in s["runs"] for s in seeds)]
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
    for ax, (key, title) in zip(axes, (METRICS[0], METRICS[3], METRICS[5])):
        for j, m in enumerate(methods):
            ys = [s["runs"][m]["metrics"][key] for s in seeds]
            ax.scatter([j] * len(ys), ys, s=14)
            ax.plot([j - 0.25, j + 0.25], [sum(ys) / len(ys)] * 2, color="black")
        ax.set_xticks(range(len(methods)))
        ax.set_xticklabels(methods, rotation=45, ha="right", fontsize=7)
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = os.path.join(docs, "results-metrics.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)
    return written


def write(results: Dict[str, Any], docs: str) -> None:
    """Writes the plots and ``results-tables.md`` (the tables ``docs/results-sprites.md`` quotes)."""
    plots(results, docs)
    with open(os.path.join(docs, "results-tables.md"), "w") as f:
        f.write("<!-- generated by examples/synthetic-motion/experiment.py --report -->\n\n" + tables(results))


if __name__ == "__main__":
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "out", "results.json")
    with open(path) as f:
        res = json.load(f)
    print(tables(res))
    if "--docs" in sys.argv:
        write(res, sys.argv[sys.argv.index("--docs") + 1])
