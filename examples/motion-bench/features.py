"""Model-free per-clip temporal statistics, for baselines and research (the hook's own lives in
motive_hooks.motion_check)."""

from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F


def frame_energies(x: torch.Tensor, pool: int = 1) -> tuple:
    """x: [C, F, h, w] → (e [F-1], a [F-2]) mean squared first and second frame differences."""
    if pool > 1:
        c, f, h, w = x.shape
        x = F.avg_pool2d(x.reshape(c * f, 1, h, w), pool).reshape(c, f, h // pool, w // pool)
    d1 = x[:, 1:] - x[:, :-1]
    d2 = d1[:, 1:] - d1[:, :-1]
    return d1.pow(2).mean(dim=(0, 2, 3)), d2.pow(2).mean(dim=(0, 2, 3))


def baseline_features(x: torch.Tensor) -> Dict[str, float]:
    """Higher = more suspicious."""
    out: Dict[str, float] = {}
    eps = 1e-8
    for p in (1, 2, 4):
        e, a = frame_energies(x, p)
        out[f"ratio{p}"] = float((a.sum() + eps) / (e.sum() + eps))
        out[f"still{p}"] = float(-torch.log(e.mean() + eps))
        out[f"jump{p}"] = float(torch.log((e.max() + eps) / (e.median() + eps)))
        out[f"lowfrac{p}"] = float((e < 0.05 * e.max()).float().mean()) if float(e.max()) > eps else 1.0
    # the independent reviewers' check: ratio of mean |second| to mean |first| differences (pixels)
    d1 = x[:, 1:] - x[:, :-1]
    d2 = d1[:, 1:] - d1[:, :-1]
    out["absratio"] = float((d2.abs().mean() + eps) / (d1.abs().mean() + eps))
    return out
