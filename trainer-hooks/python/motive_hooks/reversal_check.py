"""A model-based per-clip check for motion played the wrong way: the reversal loss gap.

The model-free checks (:mod:`motive_hooks.motion_check`) cannot see a clip that is smooth on its
own and wrong only against the rest of the data (a fall played upwards, a dolly that retreats):
a clip and its reverse have the same frame differences and the same flow magnitudes. The model
being trained can: where the data's motion has a direction, its denoising loss on a clip played
the data's way is lower than on the same clip reversed. Unpaired, the difference is small against
the spread of the loss between clips, so the check compares each clip with its own reverse, at one
noise level and with the same draws:

``gap = ½ [L(z, n) − L(z̄, n̄) + L(z, n̄) − L(z̄, n)]``, averaged over ``draws`` seeded draws ``n``,

``z̄`` and ``n̄`` the clip and the draw reversed in time, ``L`` the plain per-sample denoising loss
(mean squared error of ``predict``'s prediction against its target). Whatever does not depend on
which way the clip runs cancels: a still clip, a one-frame clip and a model that treats time
symmetrically give 0, and a clip and its reverse get opposite gaps. Higher = the model finds the
clip's own direction less likely than its reverse = more suspicious.

The hook sends the gap divided by the mean of the four losses it is made of (``reversal_gap``,
:func:`reversal_check`): a clip whose appearance the model knows less well (colours it has not
seen, noise) has larger losses both ways, and so a larger gap for the same preference of
direction; divided, the gap reads the preference alone.

The cost is ``4 × draws`` forwards of each clip (four forwards of the batch per draw, at the
batch's own size) under ``torch.no_grad``, no backward: with the defaults, 8 forwards per clip, about as much as the
default recipe's attribution pass (three timesteps, forward and backward).

docs/results.md ("Development, fourth round") measures it on the motion benchmark.
"""

from __future__ import annotations

from typing import Tuple

import torch

from .loss import PredictFn, seeded_noise

__all__ = ["REVERSAL_FEATURE", "REVERSAL_T", "REVERSAL_DRAWS", "reversal_check", "reversal_terms"]

REVERSAL_FEATURE = "reversal_gap"
"""The name the hook announces for the gap in ``Hello.feature_names``."""

REVERSAL_T = 300
"""The timestep (of 1000) the gap is measured at: the model's direction knowledge is carried by the
low and middle noise levels (docs/results.md, "Development, third round")."""

REVERSAL_DRAWS = 2
"""Seeded noise draws the gap is averaged over."""

_NOISE_SEED = 7_000


@torch.no_grad()
def reversal_terms(
    model: torch.nn.Module,
    predict: PredictFn,
    latents: torch.Tensor,
    frame_dim: int = 2,
    t: int = REVERSAL_T,
    draws: int = REVERSAL_DRAWS,
    noise_seed: int = _NOISE_SEED,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """The reversal gap of each clip and the mean of the four losses it is made of, each ``[B]``
    float32 on the CPU.

    Args:
        model: the model, called through ``predict`` as the attribution objective calls it (the
            caller sets eval mode; see :meth:`MotionAttributor.features`).
        predict: ``predict(model, latents, t, noise) -> (pred, target)``.
        latents: ``[B, C, F, h, w]`` (frame axis at ``frame_dim``).
        t: the timestep, ``draws``: the number of seeded draws (draw ``d`` uses seed
            ``noise_seed + d``).

    A clip of fewer than two frames has no direction: its gap is 0 (and no forward is run). A
    non-finite gap (a model that overflows) is sent as 0, the neutral value.
    """
    b = int(latents.shape[0])
    f = int(latents.shape[frame_dim])
    gap = torch.zeros(b, dtype=torch.float64)
    level = torch.zeros(b, dtype=torch.float64)
    if f < 2 or b == 0:
        return gap.float(), level.float()
    # one call per (clip, draw) pairing at the batch's own size, as the attribution pass calls
    # ``predict``, so a ``predict`` that carries per-batch conditioning sees the batch it expects
    zr = latents.flip(frame_dim)
    tt = torch.full((b,), int(t), dtype=torch.long, device=latents.device)

    def loss(z: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        pred, target = predict(model, z, tt, n)
        return (pred.double() - target.double()).pow(2).flatten(1).mean(dim=1).cpu()

    for d in range(int(draws)):
        n = seeded_noise(latents.shape, noise_seed + d, frame_dim, device=latents.device, dtype=latents.dtype)
        nr = n.flip(frame_dim)
        l_zn, l_rr, l_zr, l_rn = loss(latents, n), loss(zr, nr), loss(latents, nr), loss(zr, n)
        gap += 0.5 * (l_zn - l_rr + l_zr - l_rn)
        level += 0.25 * (l_zn + l_rr + l_zr + l_rn)
    gap /= int(draws)
    level /= int(draws)
    ok = torch.isfinite(gap) & torch.isfinite(level)
    return torch.where(ok, gap, torch.zeros_like(gap)).float(), torch.where(ok, level, torch.zeros_like(level)).float()


def reversal_check(gap: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    """The value the hook sends for each clip, from :func:`reversal_terms`: the gap divided by the
    mean loss (0 where that loss is 0, a clip the terms left neutral)."""
    ok = level > 0
    return torch.where(ok, gap / torch.where(ok, level, torch.ones_like(level)), torch.zeros_like(gap))
