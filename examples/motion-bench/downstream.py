"""Downstream metrics of the models a fine-tune produces, and their comparison across seeds.

The sprite benchmark's flow metrics (``examples/synthetic-motion/metrics.py``: VBench-like motion
smoothness, dynamic degree, temporal flicker) are kept, and three are added that follow what the
harmful families teach and do not saturate on this benchmark:

- ``jerk``: the mean over samples of ``mean |Δ²x| / mean |Δx|`` (second against first frame
  differences of the 16 px sample): shake, tremor, speed jumps and flicker raise it, smooth motion
  keeps it low. A frame statistic, not the hook's flow-based check, so the weights (which the check
  helps set) are not graded by their own yardstick.
- ``dynamic_rel``: the share of samples whose motion (mean top-5 % flow magnitude) reaches the
  10th percentile of the clean training clips' own: frozen content lowers it; unlike dynamic degree
  at a fixed threshold, it does not sit at 1.
- ``moving_pairs``: the share of the samples' frame pairs whose top-5 % flow reaches the 5th
  percentile of the clean training clips' pairs: held and frozen frames lower it.
"""

from __future__ import annotations

import statistics
from typing import Any, Dict, List, Sequence

import torch
import torch.nn.functional as F

from metrics import batch_metrics  # examples/synthetic-motion
from motive_hooks.mask import lucas_kanade_flow

Reference = Dict[str, float]


def _to_frames(latent: torch.Tensor) -> torch.Tensor:
    """``[3, F, 16, 16]`` in [-1, 1] → ``[F, 3, 32, 32]`` in [0, 1], as samples are measured."""
    frames = ((latent.clamp(-1, 1) + 1) / 2).permute(1, 0, 2, 3)
    return F.interpolate(frames, scale_factor=2, mode="bilinear", align_corners=False)


def _pair_motion(frames: torch.Tensor) -> torch.Tensor:
    """Per frame pair, the mean flow magnitude of the top 5 % of pixels (metrics.py's motion)."""
    mag = torch.linalg.vector_norm(lucas_kanade_flow(frames.float()), dim=1).flatten(1)
    k = max(1, int(round(0.05 * mag.shape[1])))
    return mag.topk(k, dim=1).values.mean(dim=1)


def reference(clean_latents: Sequence[torch.Tensor]) -> Reference:
    """Thresholds from the clean training clips (their latents, seen as samples are)."""
    per_clip, per_pair = [], []
    for x in clean_latents:
        m = _pair_motion(_to_frames(x))
        per_clip.append(float(m.mean()))
        per_pair += m.tolist()
    return {
        "clip_motion_p10": float(torch.tensor(per_clip).quantile(0.10)),
        "pair_motion_p05": float(torch.tensor(per_pair).quantile(0.05)),
    }


def _jerk(frames: torch.Tensor) -> float:
    x = F.avg_pool2d(frames.float(), 2)  # back to the 16 px grid the model works on
    d1 = x[1:] - x[:-1]
    d2 = d1[1:] - d1[:-1]
    return float((d2.abs().mean() + 1e-8) / (d1.abs().mean() + 1e-8))


def sample_metrics(samples: torch.Tensor, ref: Reference) -> Dict[str, float]:
    """The metrics of ``[N, F, 3, H, W]`` samples in [0, 1]."""
    out = batch_metrics(samples)
    clip_motion, moving, jerk = [], [], []
    for s in samples:
        m = _pair_motion(s)
        clip_motion.append(float(m.mean()))
        moving += (m >= ref["pair_motion_p05"]).float().tolist()
        jerk.append(_jerk(s))
    out["dynamic_rel"] = sum(1.0 for v in clip_motion if v >= ref["clip_motion_p10"]) / len(clip_motion)
    out["moving_pairs"] = sum(moving) / len(moving)
    out["jerk"] = sum(jerk) / len(jerk)
    return out


HIGHER_IS_BETTER = {"smoothness": True, "dynamic": True, "dynamic_2px": True, "dynamic_rel": True, "moving_pairs": True, "jerk": False, "flicker": False}


def compare(runs: List[Dict[str, Any]], base: str = "uniform") -> Dict[str, Dict[str, Dict[str, float]]]:
    """Per method other than ``base`` and per metric: the mean Δ against ``base`` over the seeds
    both ran, ``two_sigma`` (twice the larger of the two methods' seed standard deviations, the
    issue's bar) and ``two_sigma_paired`` (twice the standard deviation of the per-seed Δ)."""
    by: Dict[str, Dict[int, Dict[str, float]]] = {}
    for r in runs:
        by.setdefault(r["method"], {})[r["seed"]] = r["metrics"]
    out: Dict[str, Dict[str, Dict[str, float]]] = {}
    for method, seeds in by.items():
        if method == base or base not in by:
            continue
        common = sorted(set(seeds) & set(by[base]))
        if len(common) < 2:
            continue
        out[method] = {}
        for m in seeds[common[0]]:
            a = [by[base][s][m] for s in common]
            b = [seeds[s][m] for s in common]
            d = [y - x for x, y in zip(a, b)]
            out[method][m] = {
                "base": statistics.mean(a),
                "base_std": statistics.stdev(a),
                "value": statistics.mean(b),
                "std": statistics.stdev(b),
                "delta": statistics.mean(d),
                "two_sigma": 2 * max(statistics.stdev(a), statistics.stdev(b)),
                "two_sigma_paired": 2 * statistics.stdev(d),
            }
    return out


def table(cmp: Dict[str, Dict[str, Dict[str, float]]], base: str = "uniform") -> str:
    """A markdown table of :func:`compare`'s result."""
    lines = [f"| method | metric | {base} | method | Δ | 2σ | 2σ paired |", "|---|---|---|---|---|---|---|"]
    for method, rows in cmp.items():
        for m, r in rows.items():
            arrow = {True: " ↑", False: " ↓", None: ""}[HIGHER_IS_BETTER.get(m)]
            lines.append(
                f"| {method} | {m}{arrow} | {r['base']:.4f} ± {r['base_std']:.4f} | {r['value']:.4f} ± {r['std']:.4f} | {r['delta']:+.4f} | {r['two_sigma']:.4f} | {r['two_sigma_paired']:.4f} |"
            )
    return "\n".join(lines)
