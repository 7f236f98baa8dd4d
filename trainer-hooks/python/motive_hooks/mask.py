"""Motion masks: optical flow magnitude, min-max normalised per clip, resized to the latent grid.

The built-in flow estimate is a pyramidal (multi-scale, coarse-to-fine) Lucas–Kanade solver written
in plain torch: at each pyramid level the second frame is warped by the flow so far, the spatial and
temporal derivatives are taken, and the 2x2 structure-tensor system
``sum_w [Ix² IxIy; IxIy Iy²] · d = -sum_w [Ix·It; Iy·It]`` is solved in a Gaussian window at every
pixel (Tikhonov-regularised, so textureless regions get zero flow instead of NaN). It is a cheap,
dependency-free estimate; pass ``flow=`` (e.g. from RAFT) or ``flow_fn=`` to use a better one.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

__all__ = ["ZETA", "lucas_kanade_flow", "flow_magnitude", "motion_mask"]

#: Denominator guard of the min-max normalisation, ``W = (M - min M) / (max M - min M + ZETA)``.
ZETA: float = 1e-6

FlowFn = Callable[[torch.Tensor], torch.Tensor]
"""A flow estimator: frames ``[F, C, H, W]`` -> flow ``[F-1, 2, H, W]`` in pixels (dx, dy)."""


def _gaussian_kernel1d(sigma: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    radius = max(1, int(math.ceil(2.5 * sigma)))
    x = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``x`` [N, C, H, W] (replicate borders)."""
    k = _gaussian_kernel1d(sigma, x.device, x.dtype)
    r = k.numel() // 2
    c = x.shape[1]
    kx = k.view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    ky = k.view(1, 1, -1, 1).repeat(c, 1, 1, 1)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), kx, groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), ky, groups=c)


def _gradients(x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Central-difference spatial derivatives of ``x`` [N, 1, H, W] (replicate borders), per pixel."""
    xp = F.pad(x, (1, 1, 1, 1), mode="replicate")
    ix = 0.5 * (xp[:, :, 1:-1, 2:] - xp[:, :, 1:-1, :-2])
    iy = 0.5 * (xp[:, :, 2:, 1:-1] - xp[:, :, :-2, 1:-1])
    return ix, iy


def _warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Samples ``x`` [N, 1, H, W] at ``p + flow(p)`` (flow in pixels, bilinear, border clamp)."""
    n, _, h, w = x.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, device=x.device, dtype=x.dtype),
        torch.arange(w, device=x.device, dtype=x.dtype),
        indexing="ij",
    )
    gx = (xs.unsqueeze(0) + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys.unsqueeze(0) + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack((gx, gy), dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


def lucas_kanade_flow(
    frames: torch.Tensor,
    levels: int = 3,
    window_sigma: float = 1.5,
    iterations: int = 2,
    reg: float = 1e-3,
    evidence: float = 0.02,
) -> torch.Tensor:
    """Dense pyramidal Lucas–Kanade optical flow between consecutive frames.

    Args:
        frames: ``[F, C, H, W]`` (any value range; C channels averaged to luminance). F >= 2.
        levels: pyramid levels (each halves the resolution); large motions need more levels.
        window_sigma: standard deviation of the Gaussian integration window, in pixels.
        iterations: warp-and-refine passes per level.
        reg: Tikhonov term added to the structure tensor's diagonal, in units of the clip's
            intensity range squared per pixel² (keeps textureless regions at zero flow).
        evidence: frame-to-frame intensity change (fraction of the clip's range) at which a
            pixel counts as changing. A pixel whose 3x3 neighbourhood does not change between the
            two frames does not move there; the flow LK assigns it is the integration window's
            spill-over from a moving neighbour. Its flow is scaled by ``min(1, e / evidence)``,
            ``e`` the largest ``|I1 - I0|`` around it, which keeps the mask on what moves.
            ``0`` disables the gate.

    Returns:
        ``[F-1, 2, H, W]`` flow from frame f to frame f+1 in pixels, channel 0 = dx, 1 = dy.
    """
    if frames.dim() != 4 or frames.shape[0] < 2:
        raise ValueError(f"frames must be [F>=2, C, H, W], got {tuple(frames.shape)}")
    with torch.no_grad():
        gray = frames.detach().to(torch.float32).mean(dim=1, keepdim=True)
        lo, hi = gray.min(), gray.max()
        gray = (gray - lo) / (hi - lo + ZETA)
        pyr0 = [gray[:-1]]
        pyr1 = [gray[1:]]
        for _ in range(1, levels):
            if min(pyr0[-1].shape[-2:]) < 8:
                break
            pyr0.append(F.avg_pool2d(pyr0[-1], 2, ceil_mode=True))
            pyr1.append(F.avg_pool2d(pyr1[-1], 2, ceil_mode=True))
        flow: Optional[torch.Tensor] = None
        for i0, i1 in zip(reversed(pyr0), reversed(pyr1)):
            n, _, h, w = i0.shape
            if flow is None:
                flow = torch.zeros(n, 2, h, w, device=i0.device, dtype=i0.dtype)
            else:
                flow = 2.0 * F.interpolate(flow, size=(h, w), mode="bilinear", align_corners=False)
            ix, iy = _gradients(i0)
            sxx = _blur(ix * ix, window_sigma)
            syy = _blur(iy * iy, window_sigma)
            sxy = _blur(ix * iy, window_sigma)
            # The prior pulls the *total* flow towards zero, so textureless regions do not inherit
            # the coarse level's smeared estimate: (S + reg·I) d_new = S d_old + b.
            a = sxx + reg
            d = syy + reg
            det = a * d - sxy * sxy
            for _ in range(iterations):
                moved = bool(flow.abs().max() > 0)
                it = (_warp(i1, flow) if moved else i1) - i0
                bx = sxx * flow[:, 0:1] + sxy * flow[:, 1:2] - _blur(ix * it, window_sigma)
                by = sxy * flow[:, 0:1] + syy * flow[:, 1:2] - _blur(iy * it, window_sigma)
                u = (d * bx - sxy * by) / det
                v = (a * by - sxy * bx) / det
                flow = torch.cat((u, v), dim=1)
        assert flow is not None
        if evidence > 0:
            e = F.max_pool2d((gray[1:] - gray[:-1]).abs(), 3, stride=1, padding=1)
            flow = flow * (e / evidence).clamp(max=1.0)
        return flow


def flow_magnitude(flow: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Per-frame flow magnitude ``M_f = ||flow_f||_2``, ``[F, H, W]``.

    ``flow`` is ``[F-1, 2, H, W]`` (between consecutive frames) or ``[F, 2, H, W]``. With F-1 flows,
    frame f gets the mean magnitude of the flows touching it (f-1→f and f→f+1), so the first and last
    frames are not treated differently from the others.
    """
    mag = torch.linalg.vector_norm(flow.to(torch.float32), dim=1)
    if mag.shape[0] == num_frames:
        return mag
    if mag.shape[0] != num_frames - 1:
        raise ValueError(f"flow has {mag.shape[0]} frames, expected {num_frames - 1} or {num_frames}")
    if num_frames == 1:
        return torch.zeros((1,) + tuple(mag.shape[1:]), dtype=mag.dtype, device=mag.device)
    out = torch.empty((num_frames,) + tuple(mag.shape[1:]), dtype=mag.dtype, device=mag.device)
    out[0] = mag[0]
    out[-1] = mag[-1]
    if num_frames > 2:
        out[1:-1] = 0.5 * (mag[:-1] + mag[1:])
    return out


def _normalise(mag: torch.Tensor) -> torch.Tensor:
    lo = mag.min()
    hi = mag.max()
    return (mag - lo) / (hi - lo + ZETA)


def _resize(w: torch.Tensor, latent_shape: Tuple[int, int, int]) -> torch.Tensor:
    """Resizes ``w`` [F, H, W] to ``latent_shape`` (F', h, w): bilinear in space, linear in time."""
    f_lat, h, wd = latent_shape
    if w.shape[0] == f_lat:
        return F.interpolate(w.unsqueeze(1), size=(h, wd), mode="bilinear", align_corners=False).squeeze(1)
    return F.interpolate(
        w.unsqueeze(0).unsqueeze(0), size=(f_lat, h, wd), mode="trilinear", align_corners=False
    )[0, 0]


def _one_clip(
    frames: Optional[torch.Tensor],
    latent_shape: Tuple[int, int, int],
    flow: Optional[torch.Tensor],
    flow_fn: Optional[FlowFn],
) -> torch.Tensor:
    if flow is None:
        assert frames is not None
        flow = flow_fn(frames) if flow_fn is not None else lucas_kanade_flow(frames)
        num_frames = frames.shape[0]
    else:
        num_frames = frames.shape[0] if frames is not None else flow.shape[0] + 1
    w = _normalise(flow_magnitude(flow, num_frames))
    return _resize(w, latent_shape).clamp_(0.0, 1.0)


def motion_mask(
    frames: Optional[torch.Tensor],
    latent_shape: Union[Sequence[int], torch.Size],
    *,
    flow: Optional[torch.Tensor] = None,
    flow_fn: Optional[FlowFn] = None,
) -> torch.Tensor:
    """Motion weight W of DESIGN §1 on the latent grid, values in [0, 1].

    Per clip: flow magnitude ``M`` → ``W = (M - min M) / (max M - min M + 1e-6)`` over the whole
    clip → bilinear resize to the latent grid (linear in time when the latent has fewer frames).
    A static clip gives an all-zero mask (never NaN).

    Args:
        frames: pixel frames ``[F, C, H, W]`` or a batch ``[B, F, C, H, W]``; may be ``None`` when
            ``flow`` is given.
        latent_shape: ``(F_lat, h, w)`` or ``(h, w)`` (then ``F_lat = F``); a leading batch or
            channel dimension, e.g. a full latent's ``.shape[-3:]``, is the caller's to strip.
        flow: precomputed flow ``[F-1 or F, 2, H, W]`` (``[B, ...]`` for a batch) in pixels,
            e.g. from RAFT; replaces the built-in estimate.
        flow_fn: callable ``frames [F, C, H, W] -> flow [F-1, 2, H, W]`` used instead of the
            built-in pyramidal Lucas–Kanade.

    Returns:
        ``[F_lat, h, w]`` for one clip or ``[B, F_lat, h, w]`` for a batch, float32.
    """
    shape = tuple(int(s) for s in latent_shape)
    batched = (frames is not None and frames.dim() == 5) or (frames is None and flow is not None and flow.dim() == 5)
    if frames is None and flow is None:
        raise ValueError("motion_mask needs frames or flow")
    if len(shape) == 2:
        if frames is not None:
            n_f = frames.shape[1] if batched else frames.shape[0]
        else:
            assert flow is not None
            n_f = (flow.shape[1] if batched else flow.shape[0]) + 1
        shape = (n_f,) + shape
    if len(shape) != 3:
        raise ValueError(f"latent_shape must be (F, h, w) or (h, w), got {tuple(latent_shape)}")
    lat = (shape[0], shape[1], shape[2])
    if not batched:
        return _one_clip(frames, lat, flow, flow_fn)
    n = frames.shape[0] if frames is not None else flow.shape[0]  # type: ignore[union-attr]
    return torch.stack(
        [
            _one_clip(
                frames[i] if frames is not None else None,
                lat,
                flow[i] if flow is not None else None,
                flow_fn,
            )
            for i in range(n)
        ]
    )
