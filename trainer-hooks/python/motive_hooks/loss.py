"""The motion-weighted attribution loss at a fixed timestep with seeded noise (DESIGN §1).

``L_mot(z) = (1/F) · mean_{c,f,h,w}[ W · (pred − target)² ]`` per sample, with ``W`` the motion mask
on the latent grid, evaluated at one fixed timestep ``t_fix`` and one seeded noise draw shared by
training and query clips (common randomness), so their gradients are comparable. The 1/F factor is
the frame-length fix. How the model is noised and what it predicts is the caller's
``predict(model, latents, t, noise) -> (pred, target)``; :func:`epsilon_predict` and
:func:`flow_matching_predict` are ready-made ones.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Tuple

import torch

__all__ = [
    "PredictFn",
    "motion_loss",
    "seeded_noise",
    "MotionObjective",
    "epsilon_predict",
    "flow_matching_predict",
]

PredictFn = Callable[[torch.nn.Module, Any, torch.Tensor, torch.Tensor], Tuple[torch.Tensor, torch.Tensor]]
"""``predict(model, batch, t, noise) -> (pred, target)``; ``t`` is an int64 tensor ``[B]`` of
timesteps in ``[0, num_timesteps)``, ``noise`` has the latents' shape."""


def motion_loss(
    pred: torch.Tensor, target: torch.Tensor, mask: Optional[torch.Tensor], frame_dim: int = 2
) -> torch.Tensor:
    """Per-sample motion loss ``(1/F) · mean(W · (pred − target)²)``, shape ``[B]``.

    Args:
        pred, target: ``[B, C, F, h, w]`` (or any layout with the frame axis at ``frame_dim``).
        mask: ``[B, F, h, w]`` motion weights (broadcast over channels), or ``None`` for W = 1
            (the plain per-sample loss, divided by F).
        frame_dim: index of the frame axis in ``pred``.
    """
    err = (pred.float() - target.float()) ** 2
    if mask is not None:
        w = mask.to(device=err.device, dtype=err.dtype)
        while w.dim() < err.dim():
            w = w.unsqueeze(1)
        err = err * w
    num_frames = pred.shape[frame_dim]
    return err.flatten(1).mean(dim=1) / float(num_frames)


def seeded_noise(
    shape: Sequence[int],
    seed: int,
    frame_dim: int = 2,
    device: Optional[torch.device] = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Standard-normal noise for a batch of shape ``[B, ...]``, the same for every sample.

    Every sample gets the draw of one ``torch.Generator`` seeded with ``seed``, generated frame by
    frame on the CPU, so it does not depend on the device, the batch it is in, or the global RNG,
    and the first ``F`` frames of a longer clip's noise equal a ``F``-frame clip's noise.
    """
    shape = tuple(int(s) for s in shape)
    per = list(shape[1:])
    fd = frame_dim - 1
    frames_first = [per[fd]] + per[:fd] + per[fd + 1 :]
    gen = torch.Generator(device="cpu")
    gen.manual_seed(int(seed))
    one = torch.randn(frames_first, generator=gen, dtype=torch.float32)
    one = one.movedim(0, fd)
    out = one.unsqueeze(0).expand(shape[0], *per).to(dtype=dtype)
    return out.to(device) if device is not None else out


def epsilon_predict(alphas_cumprod: torch.Tensor) -> PredictFn:
    """A ``predict`` for ε-prediction models ``model(x_t, t) -> ε̂``.

    ``x_t = sqrt(ᾱ_t)·x_0 + sqrt(1−ᾱ_t)·ε``, target ``ε``; ``alphas_cumprod`` is the scheduler's
    ``[num_timesteps]`` tensor.
    """

    def predict(model: torch.nn.Module, batch: Any, t: torch.Tensor, noise: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        x0 = batch
        a = alphas_cumprod.to(device=x0.device, dtype=x0.dtype)[t].view(-1, *([1] * (x0.dim() - 1)))
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        return model(xt, t), noise

    return predict


def flow_matching_predict(num_timesteps: int = 1000) -> PredictFn:
    """A ``predict`` for rectified-flow / velocity models ``model(x_s, s) -> v̂``.

    ``s = t / num_timesteps``, ``x_s = (1−s)·x_0 + s·ε``, target velocity ``ε − x_0``; the model
    receives ``s`` (float, ``[B]``).
    """

    def predict(model: torch.nn.Module, batch: Any, t: torch.Tensor, noise: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        x0 = batch
        s = (t.to(x0.dtype) / float(num_timesteps)).view(-1, *([1] * (x0.dim() - 1)))
        xs = (1 - s) * x0 + s * noise
        return model(xs, s.flatten()), noise - x0

    return predict


class MotionObjective:
    """The attribution objective: ``L_mot`` at ``t_fix`` with seeded noise.

    Args:
        predict: ``predict(model, batch, t, noise) -> (pred, target)``.
        t_fix: the fixed timestep (default 751 of 1000, as in the paper).
        noise_seed: seed of the shared noise draw.
        frame_dim: frame axis of the latents and of ``pred`` (2 for ``[B, C, F, h, w]``).
        latents_of: maps a batch to its latent tensor (the noise shape); default: the batch itself
            when it is a tensor, else ``batch["latents"]``.
    """

    def __init__(
        self,
        predict: PredictFn,
        t_fix: int = 751,
        noise_seed: int = 0,
        frame_dim: int = 2,
        latents_of: Optional[Callable[[Any], torch.Tensor]] = None,
    ) -> None:
        self.predict = predict
        self.t_fix = int(t_fix)
        self.noise_seed = int(noise_seed)
        self.frame_dim = int(frame_dim)
        self._latents_of = latents_of

    def latents(self, batch: Any) -> torch.Tensor:
        """The latent tensor of ``batch`` (its shape is the noise shape)."""
        if self._latents_of is not None:
            return self._latents_of(batch)
        if isinstance(batch, torch.Tensor):
            return batch
        return batch["latents"]

    def per_sample_losses(
        self,
        model: torch.nn.Module,
        batch: Any,
        masks: Optional[torch.Tensor],
        noise: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """``L_mot`` per sample, ``[B]``, with the graph kept for the sketch backward.

        ``noise`` overrides the seeded draw (it must have the latents' shape).
        """
        lat = self.latents(batch)
        if noise is None:
            noise = seeded_noise(lat.shape, self.noise_seed, self.frame_dim, device=lat.device, dtype=lat.dtype)
        t = torch.full((lat.shape[0],), self.t_fix, dtype=torch.long, device=lat.device)
        pred, target = self.predict(model, batch, t, noise)
        return motion_loss(pred, target, masks, frame_dim=self.frame_dim)
