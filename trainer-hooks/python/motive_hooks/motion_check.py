"""Model-free motion checks per clip: temporal statistics of the latents the hook already holds.

Gradient attribution finds clips whose motion works against the queries, including clips that look
smooth on their own (motion played backwards where the data's motion has a direction). Some kinds
of bad motion are visible in the clip itself, without a model: shake, flicker, dropped or repeated
frames, speed jumps, cuts, frames out of order make a clip's motion irregular, and frozen content
makes it vanish. The hook measures both and sends these statistics beside each sketch; the daemon
turns each into a robust z-score over the run's clips and fuses them with the attribution score
(docs/method.md, "The fused signal"). Each statistic is oriented so that higher is more suspicious.

Both read the clip through the same view, built so that the statistics mean the same on any latent
space (RGB-like or a VAE's 16 signed channels, any value range, any resolution):

1. every channel is standardised over the clip (zero mean, unit variance over frames and pixels),
   so a channel's gain and offset, and the clip's, do not enter;
2. for ``flow_accel``, the channels are reduced to their first principal component over the clip
   (the channel mean can cancel in a signed latent space; the first component carries the most
   structure whatever the channels are), and area-averaged down to ``WORK_SIZE`` pixels on the short
   side when larger, so motion is measured on the same grid at every resolution, and per-pixel
   per-frame noise (film grain, compression) is averaged away before the flow sees it.

The statistics:

- ``flow_accel``: ``log((mean ‖ū_{f+1} − ū_f‖² + δ) / (mean ‖ū_f‖² + δ))``, ``ū_f`` the dense optical
  flow between frames f and f+1 of that view (the hook's pyramidal Lucas–Kanade,
  :func:`~motive_hooks.mask.lucas_kanade_flow`, integration window σ = 3 px, Tikhonov term 1e-2 of
  the view's squared range per px²) smoothed by a Gaussian of σ = ``WORK_SIZE`` / 4, δ = 1e-4 px²:
  how much the motion changes from one frame pair to the
  next against how large it is. Smooth motion (pans, zooms, rolls, objects on smooth paths, gravity)
  keeps it low whatever the texture; shake, flicker (brightness changes read as spurious motion),
  stutter, speed jumps, cuts and swapped frames raise it. The smoothing keeps what moves coherently
  over a region (a shaken frame, a jumping object) and averages out the incoherent flow that
  per-frame noise induces. The Tikhonov term sits above the structure that per-frame noise gives a
  calm, low-contrast region (a still background), so noise there does not become flow, while
  textured regions, where motion is measured, keep theirs. Frame differences alone mistake a fast
  pan over fine texture, or grain, for shake; the smoothed, regularised flow does so far less
  (docs/results.md).
- ``still_fraction``: the share of consecutive frame pairs that do not change (mean squared
  difference of the standardised channels below ``1e-3``, their variance being 1): 1 for frozen
  content, the share of held frames for stutter, 0 for a clip that moves.

Both are invariant to each channel's gain and offset (tests/test_motion_check.py). The cost is one
optical-flow pass over a ``WORK_SIZE``-pixel view of each clip, little beside the attribution pass.
"""

from __future__ import annotations

import math
from typing import Tuple

import torch
import torch.nn.functional as F

from .mask import lucas_kanade_flow

__all__ = ["FEATURE_NAMES", "WORK_SIZE", "clip_features", "standardised_view"]

FEATURE_NAMES: Tuple[str, ...] = ("flow_accel", "still_fraction")
"""The names the hook announces in ``Hello.feature_names``, in the order of :func:`clip_features`."""

WORK_SIZE = 16
"""The short side, in pixels, of the grid ``flow_accel`` measures motion on (larger clips are
area-averaged down to it; smaller ones are used as they are)."""

_STILL_TOLERANCE = 1e-3
_FLOW_FLOOR_PX2 = 1e-4
_WINDOW_SIGMA = 3.0
_FLOW_REG = 1e-2
_SMOOTH = -20.0


def _standardise(x: torch.Tensor) -> torch.Tensor:
    """``[C, F, h, w]`` with every channel at zero mean and unit variance over the clip (a constant
    channel becomes zeros)."""
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    s = x.std(dim=(1, 2, 3), unbiased=False, keepdim=True)
    return torch.where(s > 1e-12, (x - m) / s.clamp_min(1e-12), torch.zeros_like(x))


def standardised_view(x: torch.Tensor) -> torch.Tensor:
    """The single-channel view ``flow_accel`` reads, ``[F, 1, h', w']``: the first principal
    component of the standardised channels of a clip ``[C, F, h, w]``, area-averaged to
    ``WORK_SIZE`` pixels on the short side when larger."""
    z = _standardise(x.double())
    c, f, h, w = z.shape
    flat = z.reshape(c, -1)
    if c > 1:
        _, vec = torch.linalg.eigh(flat @ flat.T / flat.shape[1])
        luma = vec[:, -1] @ flat
    else:
        luma = flat[0]
    luma = luma.reshape(f, 1, h, w).float()
    short = min(h, w)
    if short > WORK_SIZE:
        size = (max(1, round(h * WORK_SIZE / short)), max(1, round(w * WORK_SIZE / short)))
        luma = F.interpolate(luma, size=size, mode="area")
    return luma


def _smooth(flow: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of a flow field ``[N, 2, h, w]`` (replicate borders)."""
    h, w = flow.shape[-2:]
    r = max(1, min(int(math.ceil(2.5 * sigma)), h - 1, w - 1))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=flow.dtype) / sigma) ** 2)
    k = (k / k.sum()).to(flow.device)
    y = F.conv2d(F.pad(flow, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).repeat(2, 1, 1, 1), groups=2)
    return F.conv2d(F.pad(y, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1).repeat(2, 1, 1, 1), groups=2)


def _flow_accel(x: torch.Tensor) -> float:
    view = standardised_view(x)
    flow = lucas_kanade_flow(view, window_sigma=_WINDOW_SIGMA, reg=_FLOW_REG)  # [F-1, 2, h', w']
    flow = _smooth(flow, WORK_SIZE / 4)
    size = flow.pow(2).sum(dim=1).mean()
    change = (flow[1:] - flow[:-1]).pow(2).sum(dim=1).mean()
    return float(torch.log((change + _FLOW_FLOOR_PX2) / (size + _FLOW_FLOOR_PX2)))


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
    for i in range(b):
        z = _standardise(x[i].double())
        pair_energy = (z[:, 1:] - z[:, :-1]).pow(2).mean(dim=(0, 2, 3))  # [F-1]
        out[i, 1] = float((pair_energy <= _STILL_TOLERANCE).double().mean())
        if f >= 3:
            out[i, 0] = _flow_accel(x[i])
    return out
