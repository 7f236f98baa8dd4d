"""Model-free motion checks per clip: temporal statistics of the latents the hook already holds.

Gradient attribution finds clips whose motion works against the queries, including clips that look
smooth on their own (motion played backwards where the data's motion has a direction). Some kinds
of bad motion are visible in the clip itself, without a model: shake, flicker, dropped or repeated
frames, cuts, frames out of order make a clip's frame-to-frame change irregular, and frozen content
makes it vanish. The hook measures both and sends these statistics beside each sketch; the daemon
turns each into a robust z-score over the run's clips and fuses them with the attribution score
(docs/method.md, "The fused signal"). Each statistic is oriented so that higher is more suspicious:

- ``flow_accel``: ``log((mean ‖u_{f+1} − u_f‖² + δ) / (mean ‖u_f‖² + δ))``, ``u_f`` the dense optical
  flow between latent frames f and f+1 (the hook's pyramidal Lucas–Kanade on the channel mean,
  :func:`~motive_hooks.mask.lucas_kanade_flow`), δ = 1e-4 px²: how much the motion changes from one
  frame pair to the next against how large it is. Smooth motion (pans, zooms, rolls, objects on
  smooth paths, gravity) keeps it low whatever the texture; shake, flicker (brightness changes read
  as spurious motion), stutter, cuts and swapped frames raise it. Frame differences alone mistake
  a fast pan over fine texture for shake; the flow does not.
- ``still_fraction``: the share of consecutive frame pairs that do not change (mean squared
  difference below ``1e-3`` of the clip's spatial variance): 1 for frozen content, the share of
  held frames for stutter, 0 for a clip that moves.

``still_fraction`` is scale-free. ``flow_accel`` reads the flow of the clip's min-max normalised
channel mean, so a clip's gain and offset enter only through the flow solver's iterations, yet
they move it: a synthetic pan reads 0.27 as is and 0.42 at 3× + 0.5, where a smooth and a shaky
pan differ by 0.36 (tests/test_motion_check.py). A known weakness, still to be found in the
solver; on the motion benchmark's latents the check separated the families (docs/results.md). The cost is
one small optical-flow pass over each clip's latents, little beside the attribution pass.
"""

from __future__ import annotations

from typing import Tuple

import torch

from .mask import lucas_kanade_flow

__all__ = ["FEATURE_NAMES", "clip_features"]

FEATURE_NAMES: Tuple[str, ...] = ("flow_accel", "still_fraction")
"""The names the hook announces in ``Hello.feature_names``, in the order of :func:`clip_features`."""

_STILL_TOLERANCE = 1e-3
_FLOW_FLOOR_PX2 = 1e-4
_SMOOTH = -20.0


@torch.no_grad()
def clip_features(latents: torch.Tensor, frame_dim: int = 2) -> torch.Tensor:
    """The motion-check statistics of each clip, ``[B, len(FEATURE_NAMES)]`` float32 on the CPU.

    Args:
        latents: ``[B, C, F, h, w]`` (or the frame axis at ``frame_dim``, spatial axes last).
        frame_dim: the frame axis.

    A clip with fewer than three frames has no change of motion to measure: its ``flow_accel`` is
    that of a perfectly smooth clip (it is never flagged for it); with one frame ``still_fraction``
    is 0.
    """
    x = latents.detach().float().cpu()
    if frame_dim != 2:
        x = x.movedim(frame_dim, 2)
    b, _, f = x.shape[:3]
    out = torch.zeros(b, len(FEATURE_NAMES), dtype=torch.float32)
    out[:, 0] = _SMOOTH
    if f < 2:
        return out
    spatial_var = x.var(dim=(3, 4)).mean(dim=(1, 2)).clamp_min(1e-12)  # [B]
    pair_energy = (x[:, :, 1:] - x[:, :, :-1]).pow(2).mean(dim=(1, 3, 4))  # [B, F-1]
    out[:, 1] = (pair_energy <= _STILL_TOLERANCE * spatial_var.view(-1, 1)).float().mean(dim=1)
    if f < 3:
        return out
    for i in range(b):
        flow = lucas_kanade_flow(x[i].transpose(0, 1))  # [F-1, 2, h, w]
        size = flow.pow(2).sum(dim=1).mean()
        change = (flow[1:] - flow[:-1]).pow(2).sum(dim=1).mean()
        out[i, 0] = float(torch.log((change + _FLOW_FLOOR_PX2) / (size + _FLOW_FLOOR_PX2)))
    return out
