"""The motion-weighted attribution loss at a fixed timestep with seeded noise (DESIGN §1).

``L_mot(z) = (1/F) · mean_{c,f,h,w}[ W · (pred − target)² ]`` per sample, with ``W`` the motion mask
on the latent grid, evaluated at one fixed timestep ``t_fix`` and one seeded noise draw shared by
training and query clips (common randomness), so their gradients are comparable. The 1/F factor is
the frame-length fix. How the model is noised and what it predicts is the caller's
``predict(model, latents, t, noise) -> (pred, target)``; :func:`epsilon_predict` and
:func:`flow_matching_predict` are ready-made ones.

Besides the paper's loss (``kind="masked"``) the objective offers motion-specific variants, each
an option of :class:`MotionObjective`:

- ``kind="temporal"``: :func:`temporal_difference_loss`, the error of the predicted clean clip's
  frame-to-frame differences. For ε- and velocity-prediction ``x̂₀ − x₀`` is a per-timestep
  multiple of ``pred − target``, so this is the squared frame difference of the prediction error.
- ``timesteps=(t₁, t₂, …)``: the loss averaged over several fixed timesteps, each with its own
  seeded noise draw (common randomness at every timestep). Where that is the same computation,
  the timesteps are stacked along the batch axis into one forward (and so one backward) of
  ``B × len(timesteps)`` clips instead of one per timestep: see ``stack_timesteps``.
- ``spatial_pool=p``: the prediction error (and the motion mask) average-pooled over ``p × p``
  blocks of the latent grid before the loss (:func:`spatial_pool`), so the loss compares the
  coarse-scale predicted clip: fine texture (a few latent pixels per period) averages out, while
  the displacement of an object larger than the block survives. For the temporal kinds this
  keeps what moves and drops most of what only looks different. A sequence gives one factor per
  timestep: at low noise the prediction error is dominated by fine texture, at high noise the
  prediction is coarse already, so pooling can be kept to the low timesteps.
- ``channel_pool=True``: the prediction error averaged over the channel axis before the loss,
  so the loss sees one error per position and frame, not which channel it is in. For pixel or
  colour-like latents (RGB, or a VAE whose channels stay close to colour) that is the luminance
  error: a clip's colours stop steering the direction of its gradient, while a displacement,
  which moves every channel together, keeps its full size. In a learned latent space whose
  channels are not colour, the channel mean is one fixed projection: check it on the data.
- ``contrast=True``: the loss of the clip minus the loss of its static copy (its first frame
  repeated, same mask), so the gradient keeps what the clip's motion adds and drops what its
  appearance alone explains. A frozen clip has an all-zero contrast gradient.
  ``contrast="query"`` applies it to query clips only (a *motion-contrast query*: the query's
  gradient minus its static copy's), training clips keep the plain loss.
- ``reverse=True``: the *time-reversal contrast*, the loss of the clip minus the loss of the clip
  played backwards, each against the seeded draw and against the draw reversed in time (half of
  ``[L(z, n) − L(z̄, n̄)] + [L(z, n̄) − L(z̄, n)]``, ``z̄`` the reversed clip). Whatever does not
  depend on which way the clip runs cancels: a clip and its reverse get exactly opposite
  objectives (and gradients), a still clip and a model that treats time symmetrically get 0. So
  the gradient is what the model has learnt about the direction of motion, and a clip that runs
  against the queries' direction (a fall played upwards) points the other way. It costs four
  forwards of the batch per timestep.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Tuple, Union

import torch

__all__ = [
    "OBJECTIVE_KINDS",
    "PredictFn",
    "motion_loss",
    "static_copy",
    "temporal_difference_loss",
    "seeded_noise",
    "spatial_pool",
    "MotionObjective",
    "epsilon_predict",
    "flow_matching_predict",
    "batch_coupled",
]

PredictFn = Callable[[torch.nn.Module, Any, torch.Tensor, torch.Tensor], Tuple[torch.Tensor, torch.Tensor]]
"""``predict(model, batch, t, noise) -> (pred, target)``; ``t`` is an int64 tensor ``[B]`` of
timesteps in ``[0, num_timesteps)``, ``noise`` has the latents' shape. A predict that honours a
different timestep per sample (as :func:`flow_matching_predict` and :func:`epsilon_predict` do)
says so with the attribute ``per_sample_timesteps = True``; see ``stack_timesteps`` of
:class:`MotionObjective`."""


def batch_coupled(model: torch.nn.Module) -> bool:
    """Whether a forward of ``model`` mixes the samples of its batch: a batch-norm layer that
    normalises with the batch's own statistics (in training mode, or without running stats)."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and (m.training or not m.track_running_stats):
            return True
    return False


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


def temporal_difference_loss(
    pred: torch.Tensor, target: torch.Tensor, mask: Optional[torch.Tensor], frame_dim: int = 2, order: int = 1
) -> torch.Tensor:
    """Per-sample temporal-difference loss ``(1/F) · mean(W̄ · (Δ_f(pred − target))²)``, ``[B]``.

    ``Δ_f e = e_{f+1} − e_f`` along ``frame_dim`` (``order=2``: the second difference
    ``e_{f+2} − 2 e_{f+1} + e_f``, an acceleration error); ``W̄_f`` is the mean motion mask of the
    frames a difference spans (``None``: 1). Per-frame appearance errors that are the same in
    consecutive frames cancel, so the loss measures how the clip changes over time. A clip with
    at most ``order`` frames gives 0.
    """
    err = pred.float() - target.float()
    num_frames = pred.shape[frame_dim]
    if num_frames <= order:
        return err.flatten(1).sum(dim=1) * 0.0
    diff = err
    for _ in range(order):
        n = diff.shape[frame_dim]
        diff = diff.narrow(frame_dim, 1, n - 1) - diff.narrow(frame_dim, 0, n - 1)
    sq = diff**2
    if mask is not None:
        w = mask.to(device=sq.device, dtype=sq.dtype)
        fd = frame_dim - 1 if w.dim() < sq.dim() else frame_dim
        m = num_frames - order
        w = sum(w.narrow(fd, j, m) for j in range(order + 1)) / float(order + 1)
        while w.dim() < sq.dim():
            w = w.unsqueeze(1)
        sq = sq * w
    return sq.flatten(1).mean(dim=1) / float(num_frames)


def spatial_pool(x: torch.Tensor, factor: int) -> torch.Tensor:
    """``x`` average-pooled over non-overlapping ``factor × factor`` blocks of its last two axes.

    ``[..., h, w] -> [..., h / factor, w / factor]``; ``factor = 1`` returns ``x`` itself. Raises
    ``ValueError`` when ``h`` or ``w`` is not a multiple of ``factor``.
    """
    factor = int(factor)
    if factor == 1:
        return x
    if factor < 1:
        raise ValueError(f"spatial_pool must be >= 1, got {factor}")
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if h % factor or w % factor:
        raise ValueError(f"spatial_pool {factor} does not divide the latent grid {h}x{w}")
    lead = x.shape[:-2]
    blocks = x.reshape(*lead, h // factor, factor, w // factor, factor)
    return blocks.mean(dim=(-3, -1))


def static_copy(latents: torch.Tensor, frame_dim: int = 2) -> torch.Tensor:
    """The clip's first frame repeated over all its frames (same shape as ``latents``)."""
    first = latents.narrow(frame_dim, 0, 1)
    return first.expand_as(latents).contiguous()


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

    predict.per_sample_timesteps = True  # type: ignore[attr-defined]
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

    predict.per_sample_timesteps = True  # type: ignore[attr-defined]
    return predict


def _reverse_rows(x: torch.Tensor, frame_dim: int, noise: bool = False) -> torch.Tensor:
    """Four rows per sample, sample-major, for the time-reversal contrast: the clip, the clip
    reversed, the clip, the clip reversed (``noise=True``: the draw, reversed, reversed, the draw,
    so that each clip meets both the draw and its reverse)."""
    rev = x.flip(frame_dim)
    rows = (x, rev, rev, x) if noise else (x, rev, x, rev)
    return torch.stack(rows, dim=1).reshape(4 * x.shape[0], *x.shape[1:])


OBJECTIVE_KINDS = ("masked", "temporal", "temporal2")
"""The per-sample losses :class:`MotionObjective` offers: ``masked`` (:func:`motion_loss`, the
paper's), ``temporal`` and ``temporal2`` (:func:`temporal_difference_loss` of order 1 and 2)."""


class MotionObjective:
    """The attribution objective: a motion loss at fixed timestep(s) with seeded noise.

    Args:
        predict: ``predict(model, batch, t, noise) -> (pred, target)``.
        t_fix: the fixed timestep (default 751 of 1000, as in the paper).
        noise_seed: seed of the shared noise draw.
        frame_dim: frame axis of the latents and of ``pred`` (2 for ``[B, C, F, h, w]``).
        latents_of: maps a batch to its latent tensor (the noise shape); default: the batch itself
            when it is a tensor, else ``batch["latents"]``.
        kind: ``"masked"`` (default, the paper's loss), ``"temporal"`` or ``"temporal2"``.
        timesteps: several fixed timesteps to average over (overrides ``t_fix``); timestep ``i``
            uses noise seed ``noise_seed + i``.
        contrast: ``True`` subtracts the loss of the clip's static copy (see the module doc);
            ``"query"`` does so for query clips only. Needs a tensor batch.
        use_mask: ``False`` ignores the masks handed in (W = 1): the "no motion mask" ablation.
        spatial_pool: average-pool the prediction error and the mask over ``p × p`` blocks of the
            last two (spatial) axes before the loss (default 1: no pooling); the latent grid
            must be a multiple of ``p``. A sequence gives one factor per timestep (as long as
            ``timesteps``). See the module doc.
        channel_pool: average the prediction error over the channel axis (1, or 2 when
            ``frame_dim`` is 1) before the loss, at every timestep. See the module doc.
        name: a label for reports and query groups (default: built from the options).
        stack_timesteps: with several ``timesteps``, run them as one forward of the batch
            repeated sample-major (``z₀@t₁, z₀@t₂, …, z₁@t₁, …``, each with its timestep's seeded
            noise), the per-sample loss being the same mean over timesteps: one forward and one
            backward instead of one per timestep, the same sketches up to float round-off and
            the same work; the activations kept for the backward are those of all timesteps
            either way (the looped path keeps every timestep's graph until its one backward).
            Fewer, larger calls pay where per-call overhead counts (small clips, small
            batches: docs/performance.md). ``None``
            (default): stacked whenever it is the same computation: the batch is the latent
            tensor itself, ``predict`` declares ``per_sample_timesteps`` (the ready-made ones do)
            and the model has no layer that mixes the samples of a batch
            (:func:`batch_coupled`); otherwise one forward per timestep. ``False``: always one
            forward per timestep; ``True``: stack even for a
            ``predict`` that does not declare it (it must honour ``t`` per sample).
        reverse: the time-reversal contrast (see the module doc); the forward runs on ``4B``
            clips, sample-major (clip, reversed, clip, reversed, with the draw, reversed,
            reversed, the draw). Needs a tensor batch; not with ``contrast``.
    """

    def __init__(
        self,
        predict: PredictFn,
        t_fix: int = 751,
        noise_seed: int = 0,
        frame_dim: int = 2,
        latents_of: Optional[Callable[[Any], torch.Tensor]] = None,
        kind: str = "masked",
        timesteps: Optional[Sequence[int]] = None,
        contrast: Union[bool, str] = False,
        use_mask: bool = True,
        spatial_pool: Union[int, Sequence[int]] = 1,
        channel_pool: bool = False,
        name: Optional[str] = None,
        stack_timesteps: Optional[bool] = None,
        reverse: bool = False,
    ) -> None:
        if kind not in OBJECTIVE_KINDS:
            raise ValueError(f"kind must be one of {OBJECTIVE_KINDS}, got {kind!r}")
        self.predict = predict
        self.t_fix = int(t_fix)
        self.noise_seed = int(noise_seed)
        self.frame_dim = int(frame_dim)
        self._latents_of = latents_of
        self.kind = kind
        self.timesteps: Tuple[int, ...] = tuple(int(t) for t in timesteps) if timesteps else (self.t_fix,)
        if contrast not in (False, True, "query"):
            raise ValueError(f"contrast must be False, True or 'query', got {contrast!r}")
        self.contrast: Union[bool, str] = contrast
        self.use_mask = bool(use_mask)
        if isinstance(spatial_pool, (list, tuple)):
            pools = tuple(int(p) for p in spatial_pool)
        else:
            pools = (int(spatial_pool),) * len(self.timesteps)
        if len(pools) != len(self.timesteps) or any(p < 1 for p in pools):
            raise ValueError(f"spatial_pool must be >= 1, one value or one per timestep ({len(self.timesteps)}), got {spatial_pool!r}")
        self.spatial_pools: Tuple[int, ...] = pools
        """The pooling factor of each timestep."""
        self.channel_pool = bool(channel_pool)
        self.channel_dim = 2 if self.frame_dim == 1 else 1
        """The channel axis of the latents and of ``pred``."""
        self.stack_timesteps = stack_timesteps
        self.reverse = bool(reverse)
        if self.reverse and contrast:
            raise ValueError("reverse and contrast cannot be combined")
        if name is None:
            name = kind + "@" + "+".join(str(t) for t in self.timesteps)
            if contrast:
                name += "-qcontrast" if contrast == "query" else "-contrast"
            if any(p > 1 for p in pools):
                name += "-pool" + (str(pools[0]) if len(set(pools)) == 1 else "+".join(str(p) for p in pools))
            if channel_pool:
                name += "-cmean"
            if not use_mask:
                name += "-nomask"
            if self.reverse:
                name += "-reverse"
        self.name = name

    def latents(self, batch: Any) -> torch.Tensor:
        """The latent tensor of ``batch`` (its shape is the noise shape)."""
        if self._latents_of is not None:
            return self._latents_of(batch)
        if isinstance(batch, torch.Tensor):
            return batch
        return batch["latents"]

    def _loss(self, pred: torch.Tensor, target: torch.Tensor, masks: Optional[torch.Tensor], pool: int = 1) -> torch.Tensor:
        if self.channel_pool or pool > 1:
            # both are linear: the pooled error is the pooled prediction's error
            err = pred.float() - target.float()
            if self.channel_pool:
                err = err.mean(dim=self.channel_dim, keepdim=True)
            if pool > 1:
                err = spatial_pool(err, pool)
                if masks is not None:
                    masks = spatial_pool(masks.float(), pool)
            pred, target = err, torch.zeros_like(err)
        if self.kind in ("temporal", "temporal2"):
            order = 2 if self.kind == "temporal2" else 1
            return temporal_difference_loss(pred, target, masks, frame_dim=self.frame_dim, order=order)
        return motion_loss(pred, target, masks, frame_dim=self.frame_dim)

    def stacks(self, model: torch.nn.Module, batch: Any) -> bool:
        """Whether :meth:`per_sample_losses` runs the timesteps as one stacked forward (see
        ``stack_timesteps``)."""
        if len(self.timesteps) < 2 or self.stack_timesteps is False:
            return False
        if not isinstance(batch, torch.Tensor) or self._latents_of is not None:
            return False
        if self.stack_timesteps is True:
            return True
        return bool(getattr(self.predict, "per_sample_timesteps", False)) and not batch_coupled(model)

    def _noise(self, lat: torch.Tensor, i: int, noise: Optional[torch.Tensor]) -> torch.Tensor:
        if noise is not None:
            return noise
        draw = seeded_noise(lat.shape, self.noise_seed + i, self.frame_dim, device=lat.device, dtype=lat.dtype)
        if self.reverse:
            draw = _reverse_rows(draw[0::4], self.frame_dim, noise=True)
        return draw

    def _looped_losses(
        self, model: torch.nn.Module, batch: Any, lat: torch.Tensor, masks: Optional[torch.Tensor], noise: Optional[torch.Tensor]
    ) -> torch.Tensor:
        """One forward per timestep; the mean of the per-timestep losses, ``[B]``."""
        total: Optional[torch.Tensor] = None
        for i, t_val in enumerate(self.timesteps):
            t = torch.full((lat.shape[0],), t_val, dtype=torch.long, device=lat.device)
            pred, target = self.predict(model, batch, t, self._noise(lat, i, noise))
            loss = self._loss(pred, target, masks, self.spatial_pools[i])
            total = loss if total is None else total + loss
        assert total is not None
        return total / float(len(self.timesteps))

    def _stacked_losses(
        self, model: torch.nn.Module, lat: torch.Tensor, masks: Optional[torch.Tensor], noise: Optional[torch.Tensor]
    ) -> torch.Tensor:
        """All timesteps in one forward of the batch repeated sample-major, ``[B]``.

        Sample-major (``z₀@t₁, z₀@t₂, …, z₁@t₁, …``) keeps each sample's rows together, so the
        sketcher reads the stacked leading axis as ``(b r)`` and attributes every timestep's
        rows to their sample; the losses are summed over timesteps in the same order as the
        looped path.
        """
        b, n = lat.shape[0], len(self.timesteps)
        x = lat.repeat_interleave(n, dim=0)
        nz = torch.stack([self._noise(lat, i, noise) for i in range(n)], dim=1).flatten(0, 1)
        t = torch.tensor(self.timesteps, dtype=torch.long, device=lat.device).repeat(b)
        pred, target = self.predict(model, x, t, nz)
        pred, target = pred.unflatten(0, (b, n)), target.unflatten(0, (b, n))
        total: Optional[torch.Tensor] = None
        for i in range(n):
            loss = self._loss(pred[:, i], target[:, i], masks, self.spatial_pools[i])
            total = loss if total is None else total + loss
        assert total is not None
        return total / float(n)

    def per_sample_losses(
        self,
        model: torch.nn.Module,
        batch: Any,
        masks: Optional[torch.Tensor],
        noise: Optional[torch.Tensor] = None,
        query: bool = False,
    ) -> torch.Tensor:
        """The objective per sample, ``[B]``, with the graph kept for the sketch backward.

        ``query`` says the batch holds query clips (for ``contrast="query"``).

        ``noise`` overrides the seeded draw (it must have the latents' shape; with several
        timesteps it is used at every one).

        With ``contrast`` the forward runs on ``2B`` clips interleaved sample-major
        (``z₀, static(z₀), z₁, static(z₁), …``), so a sketcher reading its layers' leading axis as
        ``(b r)`` attributes both halves of a pair to the same sample.
        """
        if not self.use_mask:
            masks = None
        lat = self.latents(batch)
        b = lat.shape[0]
        contrast = self.contrast is True or (self.contrast == "query" and query)
        if contrast:
            if not isinstance(batch, torch.Tensor):
                raise TypeError("contrast=True needs the batch to be the latent tensor")
            still = static_copy(lat, self.frame_dim)
            # a clip equal to its static copy has no motion: exactly zero, not float round-off
            moving = (lat != still).flatten(1).any(dim=1).to(lat.dtype)
            pair = torch.stack([lat, still], dim=1)
            batch = pair.reshape(2 * b, *lat.shape[1:])
            lat = batch
            if masks is not None:
                masks = masks.repeat_interleave(2, dim=0)
        if contrast and noise is not None:
            noise = noise.repeat_interleave(2, dim=0)
        if self.reverse:
            if not isinstance(batch, torch.Tensor):
                raise TypeError("reverse=True needs the batch to be the latent tensor")
            batch = lat = _reverse_rows(lat, self.frame_dim)
            if masks is not None:
                masks = _reverse_rows(masks, 1)
            if noise is not None:
                noise = _reverse_rows(noise, self.frame_dim, noise=True)
        if self.stacks(model, batch):
            total = self._stacked_losses(model, lat, masks, noise)
        else:
            total = self._looped_losses(model, batch, lat, masks, noise)
        if contrast:
            total = (total[0::2] - total[1::2]) * moving
        elif self.reverse:
            total = 0.5 * ((total[0::4] - total[1::4]) + (total[2::4] - total[3::4]))
        return total
