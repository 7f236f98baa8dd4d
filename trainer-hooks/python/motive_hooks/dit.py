"""A miniature Wan-style video diffusion transformer, for the tests, examples and benchmarks.

The shape of Wan 2.1's DiT at a size a CPU trains: latents ``[B, 16, F, h, w]`` are cut into
``(1, 2, 2)`` patches by a 3D convolution (``patch_embedding``), ``depth`` blocks each apply
AdaLN-modulated self-attention over all tokens, cross-attention to fixed "text" embeddings and a
GELU MLP, and a modulated head maps the tokens back to latents. The model predicts the
flow-matching velocity ``ε − x₀`` at ``x_s = (1 − s)·x₀ + s·ε`` (``s ∈ [0, 1]``, what
:func:`motive_hooks.flow_matching_predict` hands it).

The module names follow Wan's (``blocks.N.self_attn.q`` / ``k`` / ``v`` / ``o``,
``blocks.N.cross_attn.*``, ``blocks.N.ffn.0`` / ``ffn.2``, ``head.head``), so LoRA target
patterns read as they do on the real model. Differences from Wan, to stay small: a fixed
additive 3D sinusoidal position embedding instead of 3D RoPE, and the text embeddings are a
fixed seeded buffer (``context``) unless the caller passes its own.

``gradient_checkpointing`` (``None``, ``"non_reentrant"`` or ``"reentrant"``) wraps each block in
:func:`torch.utils.checkpoint.checkpoint` whenever autograd is recording, as the trainers do.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

__all__ = ["WanMiniDiT", "sinusoidal_embedding", "wan_mini_latents"]


def sinusoidal_embedding(dim: int, position: torch.Tensor) -> torch.Tensor:
    """Wan's timestep embedding: ``[cos(p·ω), sin(p·ω)]`` with ``ω_i = 10000^(-i/(dim/2))``."""
    half = dim // 2
    pos = position.to(torch.float64).reshape(-1, 1)
    omega = torch.pow(10000.0, -torch.arange(half, dtype=torch.float64) / half).to(pos.device)
    ang = pos * omega
    return torch.cat([torch.cos(ang), torch.sin(ang)], dim=1).to(torch.float32)


class RMSNorm(nn.Module):
    """Wan's RMS norm on queries and keys."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        out = xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return out.type_as(x) * self.weight


class Attention(nn.Module):
    """Multi-head attention with Wan's ``q``, ``k``, ``v``, ``o`` linears and q/k RMS norms."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not a multiple of heads {heads}")
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.o = nn.Linear(dim, dim)
        self.norm_q = RMSNorm(dim)
        self.norm_k = RMSNorm(dim)

    def forward(self, x: torch.Tensor, context: Optional[torch.Tensor] = None) -> torch.Tensor:
        ctx = x if context is None else context
        b, n, d = x.shape
        h = self.heads
        q = self.norm_q(self.q(x)).reshape(b, n, h, d // h).transpose(1, 2)
        k = self.norm_k(self.k(ctx)).reshape(b, ctx.shape[1], h, d // h).transpose(1, 2)
        v = self.v(ctx).reshape(b, ctx.shape[1], h, d // h).transpose(1, 2)
        att = torch.softmax((q @ k.transpose(-2, -1)) / math.sqrt(d // h), dim=-1)
        return self.o((att @ v).transpose(1, 2).reshape(b, n, d))


class WanBlock(nn.Module):
    """Self-attention, cross-attention and MLP with Wan's six-way AdaLN modulation."""

    def __init__(self, dim: int, heads: int, ffn_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.self_attn = Attention(dim, heads)
        self.norm3 = nn.LayerNorm(dim, eps=1e-6)
        self.cross_attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.GELU(), nn.Linear(ffn_dim, dim))
        self.modulation = nn.Parameter(torch.randn(1, 6, dim) / math.sqrt(dim))

    def forward(self, x: torch.Tensor, e: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = (self.modulation + e).unbind(dim=1)
        y = self.self_attn(self.norm1(x) * (1 + scale1.unsqueeze(1)) + shift1.unsqueeze(1))
        x = x + y * gate1.unsqueeze(1)
        x = x + self.cross_attn(self.norm3(x), context)
        y = self.ffn(self.norm2(x) * (1 + scale2.unsqueeze(1)) + shift2.unsqueeze(1))
        return x + y * gate2.unsqueeze(1)


class Head(nn.Module):
    """Modulated norm and the linear back to patch values."""

    def __init__(self, dim: int, out: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.head = nn.Linear(dim, out)
        self.modulation = nn.Parameter(torch.randn(1, 2, dim) / math.sqrt(dim))

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        shift, scale = (self.modulation + e.unsqueeze(1)).unbind(dim=1)
        return self.head(self.norm(x) * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1))


class WanMiniDiT(nn.Module):
    """The miniature Wan-style DiT: ``model(x [B, C, F, h, w], s [B]) -> velocity [B, C, F, h, w]``.

    Args:
        in_dim: latent channels (16, as Wan's VAE).
        dim: token width.
        depth: number of blocks.
        heads: attention heads.
        ffn_dim: MLP hidden width (default ``4 · dim``).
        text_len, text_dim: length and width of the fixed text embeddings.
        patch: patch size ``(pf, ph, pw)`` (Wan: ``(1, 2, 2)``).
        seed: seed of the initial weights and of the fixed text embeddings (the global RNG is
            left as it was).

    The defaults (dim 192, depth 4) give about 2.5 M parameters; ``WanMiniDiT.tiny()`` is the
    test-sized one.
    """

    def __init__(
        self,
        in_dim: int = 16,
        dim: int = 192,
        depth: int = 4,
        heads: int = 4,
        ffn_dim: Optional[int] = None,
        text_len: int = 8,
        text_dim: int = 64,
        patch: Tuple[int, int, int] = (1, 2, 2),
        freq_dim: int = 64,
        seed: int = 0,
    ) -> None:
        super().__init__()
        rng = torch.get_rng_state()
        torch.manual_seed(seed)
        try:
            self.in_dim, self.dim, self.patch, self.freq_dim = in_dim, dim, tuple(patch), freq_dim
            self.patch_embedding = nn.Conv3d(in_dim, dim, kernel_size=self.patch, stride=self.patch)
            self.text_embedding = nn.Sequential(nn.Linear(text_dim, dim), nn.GELU(), nn.Linear(dim, dim))
            self.time_embedding = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
            self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
            self.blocks = nn.ModuleList([WanBlock(dim, heads, ffn_dim or 4 * dim) for _ in range(depth)])
            self.head = Head(dim, in_dim * int(math.prod(self.patch)))
            self.register_buffer("context", torch.randn(1, text_len, text_dim), persistent=False)
        finally:
            torch.set_rng_state(rng)
        self.gradient_checkpointing: Optional[str] = None

    @classmethod
    def tiny(cls, seed: int = 0, depth: int = 2) -> "WanMiniDiT":
        """A test-sized model (dim 32, 2 heads, about 40 k parameters)."""
        return cls(dim=32, depth=depth, heads=2, ffn_dim=64, text_len=4, text_dim=16, freq_dim=32, seed=seed)

    def lora_targets(self) -> Tuple[str, ...]:
        """Glob patterns of the linears a typical Wan LoRA adapts (attention and FFN)."""
        return ("blocks.*.self_attn.[qkvo]", "blocks.*.cross_attn.[qkvo]", "blocks.*.ffn.0", "blocks.*.ffn.2")

    def _positions(self, f: int, h: int, w: int, device: torch.device) -> torch.Tensor:
        d3 = self.dim // 3
        parts = []
        for n, size in ((f, d3), (h, d3), (w, self.dim - 2 * d3)):
            emb = sinusoidal_embedding(size, torch.arange(n, device=device))
            parts.append(emb)
        pe = (
            parts[0][:, None, None, :].expand(f, h, w, -1),
            parts[1][None, :, None, :].expand(f, h, w, -1),
            parts[2][None, None, :, :].expand(f, h, w, -1),
        )
        return torch.cat(pe, dim=-1).reshape(1, f * h * w, self.dim).to(device)

    def forward(self, x: torch.Tensor, s: torch.Tensor, context: Optional[torch.Tensor] = None) -> torch.Tensor:
        b, c, f, h, w = x.shape
        pf, ph, pw = self.patch
        tok = self.patch_embedding(x)  # [B, dim, F', h', w']
        gf, gh, gw = tok.shape[2:]
        tok = tok.flatten(2).transpose(1, 2) + self._positions(gf, gh, gw, x.device).to(tok.dtype)
        t = s.to(x.device).reshape(-1).expand(b) * 1000.0
        e = self.time_embedding(sinusoidal_embedding(self.freq_dim, t).to(x.device, self.patch_embedding.weight.dtype))
        e6 = self.time_projection(e).unflatten(1, (6, self.dim))
        ctx = self.text_embedding((self.context if context is None else context).expand(b, -1, -1).to(x.device))
        for block in self.blocks:
            if self.gradient_checkpointing and torch.is_grad_enabled():
                reentrant = self.gradient_checkpointing == "reentrant"
                if reentrant and not tok.requires_grad:
                    # reentrant checkpointing passes gradients only through inputs that need them
                    tok = tok.detach().requires_grad_(True)
                tok = checkpoint(block, tok, e6, ctx, use_reentrant=reentrant)
            else:
                tok = block(tok, e6, ctx)
        out = self.head(tok, e)  # [B, N, C·pf·ph·pw]
        out = out.reshape(b, gf, gh, gw, c, pf, ph, pw).permute(0, 4, 1, 5, 2, 6, 3, 7)
        return out.reshape(b, c, gf * pf, gh * ph, gw * pw)


def wan_mini_latents(n: int, frames: int = 3, size: int = 4, channels: int = 16, seed: int = 0) -> torch.Tensor:
    """``n`` latent clips ``[n, channels, frames, size, size]``: drifting patterns of varied speed.

    Each clip is a few sinusoids translating at their own speed plus a little noise, so clips
    differ in how they move (the global RNG is untouched).
    """
    gen = torch.Generator()
    gen.manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij")
    fr = torch.arange(frames, dtype=torch.float32).view(frames, 1, 1)
    out = torch.empty(n, channels, frames, size, size)
    for i in range(n):
        par = torch.rand(channels, 4, generator=gen)
        speed = 2.0 * torch.rand(2, generator=gen) - 1.0
        for ch in range(channels):
            fx, fy, ph, amp = par[ch].tolist()
            arg = (fx + 0.3) * (xs - speed[0] * fr) + (fy + 0.3) * (ys - speed[1] * fr) + 6.28 * ph
            out[i, ch] = (0.5 + amp) * torch.sin(arg)
    return out + 0.05 * torch.randn(out.shape, generator=gen)
