"""A small video denoiser and synthetic clips, for the examples, tests and the overhead benchmark.

Not a generative model of any quality: just the shape of one (latents ``[B, C, F, h, w]``, a
timestep embedding, 3D convolutions, a per-frame 2D block and a token-wise MLP), small enough to
train on a CPU.
"""

from __future__ import annotations

import math
from typing import List, Tuple

import torch
import torch.nn as nn

__all__ = ["SmallVideoDenoiser", "moving_square_clip", "synthetic_latents", "linear_alphas_cumprod"]


class SmallVideoDenoiser(nn.Module):
    """ε- or velocity-predicting denoiser on latents ``[B, C, F, h, w]``.

    Args:
        channels: latent channels C.
        width: hidden channels.
        coords: also feed the first convolution two channels holding each pixel's position (x and y
            in [-1, 1]), so that the model can tell where in the frame it is (a convolution alone
            cannot, away from the borders): motion that depends on the position, such as the outward
            flow of a camera moving forward, then becomes learnable locally. Off by default.
    """

    def __init__(self, channels: int = 4, width: int = 32, coords: bool = False) -> None:
        super().__init__()
        self.coords = coords
        self.t_embed = nn.Linear(16, width)
        self.conv_in = nn.Conv3d(channels + (2 if coords else 0), width, kernel_size=3, padding=1)
        self.conv_mid = nn.Conv3d(width, width, kernel_size=3, padding=1)
        self.frame_conv = nn.Conv2d(width, width, kernel_size=3, padding=1)
        self.mlp_in = nn.Linear(width, 2 * width)
        self.mlp_out = nn.Linear(2 * width, width)
        self.conv_out = nn.Conv3d(width, channels, kernel_size=3, padding=1)
        self.act = nn.SiLU()

    def sketch_layers(self) -> List[str]:
        """The layers a typical attribution setup sketches (the later blocks)."""
        return ["frame_conv", "mlp_in", "mlp_out", "conv_out"]

    @staticmethod
    def _time_features(t: torch.Tensor) -> torch.Tensor:
        t = t.float().view(-1, 1)
        if float(t.max()) <= 1.0:
            t = t * 1000.0
        freqs = torch.exp(-math.log(1000.0) * torch.arange(8, device=t.device, dtype=torch.float32) / 8)
        ang = t * freqs
        return torch.cat([ang.sin(), ang.cos()], dim=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        b, _, f, h, w = x.shape
        emb = self.t_embed(self._time_features(t.to(x.device)))  # [B, width]
        if self.coords:
            ys = torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype).view(1, 1, 1, h, 1).expand(b, 1, f, h, w)
            xs = torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype).view(1, 1, 1, 1, w).expand(b, 1, f, h, w)
            x = torch.cat([x, xs, ys], dim=1)
        y = self.act(self.conv_in(x) + emb.view(b, -1, 1, 1, 1))
        y = self.act(self.conv_mid(y))
        z = y.permute(0, 2, 1, 3, 4).reshape(b * f, -1, h, w)  # frames folded into the batch, (b f)
        z = self.act(self.frame_conv(z))
        y = y + z.reshape(b, f, -1, h, w).permute(0, 2, 1, 3, 4)
        tok = y.permute(0, 2, 3, 4, 1)  # [B, F, h, w, width]
        tok = tok + self.mlp_out(self.act(self.mlp_in(tok)))
        return self.conv_out(tok.permute(0, 4, 1, 2, 3))


def linear_alphas_cumprod(num_timesteps: int = 1000) -> torch.Tensor:
    """ᾱ_t of the linear β schedule (1e-4 … 0.02), ``[num_timesteps]``."""
    betas = torch.linspace(1e-4, 0.02, num_timesteps, dtype=torch.float64)
    return torch.cumprod(1 - betas, dim=0).to(torch.float32)


def moving_square_clip(
    frames: int = 8, size: int = 32, square: int = 8, speed: Tuple[float, float] = (2.0, 0.0), start: Tuple[int, int] = (4, 12)
) -> Tuple[torch.Tensor, torch.Tensor]:
    """A bright square moving ``speed`` pixels per frame (dx, dy) over a static textured scene.

    Returns the clip ``[F, 3, size, size]`` in [0, 1] and the boolean path ``[size, size]`` (every
    pixel the square covers in some frame).
    """
    gen = torch.Generator()
    gen.manual_seed(0)
    scene = 0.3 + 0.1 * torch.rand(1, 3, size, size, generator=gen)
    clip = scene.repeat(frames, 1, 1, 1)
    path = torch.zeros(size, size, dtype=torch.bool)
    for f in range(frames):
        x0 = int(round(start[0] + speed[0] * f))
        y0 = int(round(start[1] + speed[1] * f))
        clip[f, :, y0 : y0 + square, x0 : x0 + square] = 0.95
        path[y0 : y0 + square, x0 : x0 + square] = True
    return clip, path


def synthetic_latents(n: int, channels: int = 4, frames: int = 8, size: int = 8, seed: int = 0) -> torch.Tensor:
    """``n`` latent clips ``[n, C, F, size, size]``: drifting sinusoidal patterns, varied speed."""
    gen = torch.Generator()
    gen.manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij")
    out = torch.empty(n, channels, frames, size, size)
    for i in range(n):
        params = torch.rand(channels, 5, generator=gen)
        speed = 1.5 * torch.rand(2, generator=gen) - 0.75
        for c in range(channels):
            fx, fy, ph, amp, _ = params[c].tolist()
            for f in range(frames):
                arg = (fx + 0.2) * (xs - speed[0] * f) + (fy + 0.2) * (ys - speed[1] * f) + 6.28 * ph
                out[i, c, f] = (0.5 + amp) * torch.sin(arg)
    return out + 0.05 * torch.randn(out.shape, generator=gen)
