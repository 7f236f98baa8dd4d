"""Flow-based motion metrics of generated clips (proxies of VBench's), on ``[F, 3, H, W]`` in [0, 1].

All flows are the hook's pyramidal Lucas–Kanade estimate (:func:`motive_hooks.lucas_kanade_flow`),
in pixels of the clip's own resolution.

- **dynamic degree** — per frame pair, the mean flow magnitude of the top 5 % of pixels; a clip is
  *dynamic* when the mean over its pairs exceeds ``DYNAMIC_THRESHOLD_PX``; the metric is the
  fraction of dynamic clips (VBench: RAFT, top-5 %, a resolution-scaled threshold: 6 px at
  256 px, so 0.375 px at 16×16). Every sample of every model here moves more than that, so the
  metric saturates at 1; ``dynamic_2px`` is the same fraction at ``DYNAMIC_STRICT_PX`` = 2 px, a
  little above the fastest clean training clip (1.86 px/frame at 16×16), which does not
  saturate. The mean top-5 % magnitude itself is reported too (``motion_px``).
- **motion smoothness** — ``1 − mean |x_f − x̃_f|`` over the middle frames, ``x̃_f`` the frame
  interpolated from its neighbours along the flow ``u`` from ``x_{f−1}`` to ``x_{f+1}``:
  ``x̃_f = ½ (warp(x_{f−1}, −u/2) + warp(x_{f+1}, +u/2))`` (VBench: a learned frame interpolator).
  1 is perfectly smooth; jitter, shuffled frames and flicker lower it.
- **temporal flicker** — ``100 · mean_f |mean(x_{f+1}) − mean(x_f)|``, the change of global
  brightness between consecutive frames (lower is better).
"""

from __future__ import annotations

from typing import Dict

import torch

from motive_hooks.mask import _warp, lucas_kanade_flow

DYNAMIC_THRESHOLD_PX = 0.35
"""Mean top-5 % flow magnitude (pixels/frame at 16×16) above which a clip counts as dynamic."""

DYNAMIC_STRICT_PX = 2.0
"""The stricter threshold of ``dynamic_2px``: above the fastest clean training clip's 1.86 px/frame."""


def clip_metrics(frames: torch.Tensor) -> Dict[str, float]:
    """The metrics of one clip ``[F, 3, H, W]`` (F ≥ 3)."""
    x = frames.float()
    flow = lucas_kanade_flow(x)  # [F-1, 2, H, W]
    mag = torch.linalg.vector_norm(flow, dim=1).flatten(1)
    k = max(1, int(round(0.05 * mag.shape[1])))
    top = mag.topk(k, dim=1).values.mean(dim=1)
    motion_px = float(top.mean())
    u = lucas_kanade_flow(torch.stack([x[:-2], x[2:]], dim=1).flatten(0, 1))[0::2] if x.shape[0] >= 3 else None
    if u is not None:
        mid = 0.5 * (_warp(x[:-2], -0.5 * u) + _warp(x[2:], 0.5 * u))
        smooth = 1.0 - float((mid - x[1:-1]).abs().mean())
    else:
        smooth = 1.0
    means = x.mean(dim=(1, 2, 3))
    flicker = 100.0 * float((means[1:] - means[:-1]).abs().mean())
    return {
        "dynamic": float(motion_px > DYNAMIC_THRESHOLD_PX),
        "dynamic_2px": float(motion_px > DYNAMIC_STRICT_PX),
        "motion_px": motion_px,
        "smoothness": smooth,
        "flicker": flicker,
    }


def batch_metrics(clips: torch.Tensor) -> Dict[str, float]:
    """Mean metrics over ``[N, F, 3, H, W]`` clips, and ``motion_min_px``: the smallest
    per-clip ``motion_px`` (how close the least dynamic sample comes to standing still)."""
    rows = [clip_metrics(c) for c in clips]
    out = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}
    out["motion_min_px"] = min(r["motion_px"] for r in rows)
    return out
