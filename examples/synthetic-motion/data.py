"""Seeded synthetic clips of moving sprites with known ground truth.

Every clip is ``[F, 3, 32, 32]`` in [0, 1], ``F`` drawn from ``LENGTHS``. A clip is one soft-edged
sprite (disk, square or bar) over a smooth, lightly textured background, moving in one of three
clean ways:

- ``translate``: constant velocity (1–2 px/frame) in a random direction;
- ``rotate``: a bar spinning about its centre (0.25–0.45 rad/frame) while drifting slowly;
- ``bounce``: a ball under gravity bouncing off the floor, drifting sideways.

Harmful variants are made from a clean clip (labels are the ground truth):

- ``jitter``: camera shake, each frame shifted by a random offset of up to 3 px;
- ``frozen``: the first frame repeated;
- ``shuffle``: the frames in a random order;
- ``flicker``: a random brightness gain per frame (±25–45 %).

``appearance`` clips have clean motion but odd looks (saturated, inverted palettes and a
high-frequency checker texture on sprite and background): a motion attribution must not flag them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F

SIZE = 32
LENGTHS = (8, 12)
MOTIONS = ("translate", "rotate", "bounce")
HARMFUL = ("jitter", "frozen", "shuffle", "flicker")
KINDS = ("clean", "appearance") + HARMFUL


@dataclass
class Clip:
    """One clip and its ground truth."""

    id: str
    frames: torch.Tensor  # [F, 3, SIZE, SIZE] in [0, 1]
    motion: str  # translate | rotate | bounce
    kind: str  # clean | appearance | jitter | frozen | shuffle | flicker

    @property
    def harmful(self) -> bool:
        return self.kind in HARMFUL


def _background(gen: torch.Generator, odd: bool) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.linspace(0, 1, SIZE), torch.linspace(0, 1, SIZE), indexing="ij")
    if odd:
        c0 = torch.rand(3, generator=gen)
        c1 = 1.0 - c0
        ang = float(torch.rand(1, generator=gen)) * math.pi
        stripes = 0.5 + 0.5 * torch.sign(torch.sin((xs * math.cos(ang) + ys * math.sin(ang)) * 2 * math.pi * 5))
        bg = c0.view(3, 1, 1) * stripes + c1.view(3, 1, 1) * (1 - stripes)
        return 0.3 + 0.5 * bg
    c0 = 0.25 + 0.2 * torch.rand(3, generator=gen)
    c1 = 0.25 + 0.2 * torch.rand(3, generator=gen)
    ramp = xs if bool(torch.rand(1, generator=gen) < 0.5) else ys
    bg = c0.view(3, 1, 1) * (1 - ramp) + c1.view(3, 1, 1) * ramp
    tex = F.avg_pool2d(torch.rand(1, 1, SIZE, SIZE, generator=gen), 3, stride=1, padding=1)[0]
    return bg + 0.06 * (tex - 0.5)


def _sprite_alpha(shape: str, cx: float, cy: float, angle: float, r: float) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(SIZE, dtype=torch.float32), torch.arange(SIZE, dtype=torch.float32), indexing="ij")
    dx, dy = xs - cx, ys - cy
    c, s = math.cos(angle), math.sin(angle)
    u, v = c * dx + s * dy, -s * dx + c * dy
    if shape == "disk":
        d = torch.sqrt(dx * dx + dy * dy) - r
    elif shape == "square":
        d = torch.maximum(u.abs(), v.abs()) - r
    else:  # bar
        d = torch.maximum(u.abs() - 1.6 * r, v.abs() - 0.45 * r)
    return torch.sigmoid(-d / 0.6)


def _trajectory(motion: str, frames: int, gen: torch.Generator) -> Tuple[List[Tuple[float, float, float]], str]:
    """Per-frame (cx, cy, angle) and the sprite shape."""

    def u(a: float, b: float) -> float:
        return a + (b - a) * float(torch.rand(1, generator=gen))

    out: List[Tuple[float, float, float]] = []
    if motion == "translate":
        shape = "square" if bool(torch.rand(1, generator=gen) < 0.5) else "disk"
        speed, ang = u(1.0, 2.0), u(0, 2 * math.pi)
        vx, vy = speed * math.cos(ang), speed * math.sin(ang)
        x0 = SIZE / 2 - vx * (frames - 1) / 2 + u(-3, 3)
        y0 = SIZE / 2 - vy * (frames - 1) / 2 + u(-3, 3)
        out = [(x0 + vx * f, y0 + vy * f, 0.0) for f in range(frames)]
    elif motion == "rotate":
        shape = "bar"
        w, a0 = u(0.25, 0.45) * (1 if bool(torch.rand(1, generator=gen) < 0.5) else -1), u(0, math.pi)
        vx, vy = u(-0.4, 0.4), u(-0.4, 0.4)
        x0, y0 = SIZE / 2 + u(-3, 3), SIZE / 2 + u(-3, 3)
        out = [(x0 + vx * f, y0 + vy * f, a0 + w * f) for f in range(frames)]
    else:  # bounce
        shape = "disk"
        x, y = u(8, 24), u(6, 12)
        vx, vy, g, floor = u(-1.2, 1.2), u(-0.5, 0.5), 0.6, SIZE - 7.0
        for _ in range(frames):
            out.append((x, y, 0.0))
            vy += g
            x, y = x + vx, y + vy
            if y > floor:
                y, vy = floor - (y - floor), -0.9 * abs(vy)
            if x < 5 or x > SIZE - 5:
                vx = -vx
    return out, shape


def render(motion: str, frames: int, gen: torch.Generator, odd: bool = False) -> torch.Tensor:
    """A clean clip ``[frames, 3, SIZE, SIZE]`` of one sprite moving ``motion``."""
    traj, shape = _trajectory(motion, frames, gen)
    bg = _background(gen, odd)
    if odd:
        colour = torch.rand(3, generator=gen)
        colour = (colour - colour.mean()) * 3.0 + 0.5  # saturated
        period = 2 + int(torch.randint(0, 2, (1,), generator=gen))
        ys, xs = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
        checker = (((xs // period) + (ys // period)) % 2).float()
    else:
        colour = 0.65 + 0.3 * torch.rand(3, generator=gen)
        checker = torch.ones(SIZE, SIZE)
    r = 3.2 + 1.0 * float(torch.rand(1, generator=gen))
    out = torch.empty(frames, 3, SIZE, SIZE)
    for f, (cx, cy, ang) in enumerate(traj):
        a = _sprite_alpha(shape, cx, cy, ang, r)
        # the sprite's texture moves with it: sample the checker in sprite coordinates
        tex = torch.roll(checker, shifts=(int(round(cy - SIZE / 2)), int(round(cx - SIZE / 2))), dims=(0, 1)) if odd else checker
        sprite = colour.view(3, 1, 1) * (0.55 + 0.45 * tex)
        out[f] = bg * (1 - a) + sprite * a
    return out.clamp(0.0, 1.0)


def _shift(frame: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    pad = 4
    big = F.pad(frame.unsqueeze(0), (pad, pad, pad, pad), mode="replicate")[0]
    return big[:, pad + dy : pad + dy + SIZE, pad + dx : pad + dx + SIZE]


def corrupt(clip: torch.Tensor, kind: str, gen: torch.Generator) -> torch.Tensor:
    """The harmful variant ``kind`` of a clean clip (see the module doc)."""
    n = clip.shape[0]
    if kind == "jitter":
        offs = torch.randint(-3, 4, (n, 2), generator=gen)
        offs[0] = 0
        return torch.stack([_shift(clip[f], int(offs[f, 0]), int(offs[f, 1])) for f in range(n)])
    if kind == "frozen":
        return clip[:1].repeat(n, 1, 1, 1)
    if kind == "shuffle":
        perm = torch.randperm(n, generator=gen)
        while bool((perm == torch.arange(n)).float().mean() > 0.5):
            perm = torch.randperm(n, generator=gen)
        return clip[perm]
    if kind == "flicker":
        sign = torch.where(torch.arange(n) % 2 == 0, 1.0, -1.0)
        gain = 1.0 + sign * (0.25 + 0.2 * torch.rand(n, generator=gen))
        return (clip * gain.view(n, 1, 1, 1)).clamp(0.0, 1.0)
    raise ValueError(f"unknown corruption {kind!r}")


def make_clip(idx: str, kind: str, motion: str, frames: int, gen: torch.Generator) -> Clip:
    """One clip of ground-truth ``kind`` (clean, appearance or a corruption) and motion type."""
    base = render(motion, frames, gen, odd=(kind == "appearance"))
    if kind in HARMFUL:
        base = corrupt(base, kind, gen)
    return Clip(idx, base, motion, kind)


def make_set(counts: Dict[str, int], seed: int, prefix: str, lengths: Sequence[int] = LENGTHS) -> List[Clip]:
    """``counts[kind]`` clips of each kind, motion types and lengths cycled, seeded."""
    gen = torch.Generator()
    gen.manual_seed(int(seed))
    clips: List[Clip] = []
    for kind, n in counts.items():
        for i in range(n):
            motion = MOTIONS[i % len(MOTIONS)]
            frames = int(lengths[int(torch.randint(0, len(lengths), (1,), generator=gen))])
            clips.append(make_clip(f"{prefix}-{kind}-{i:03d}", kind, motion, frames, gen))
    return clips


def to_latent(frames: torch.Tensor) -> torch.Tensor:
    """The model's latent of a clip: ``[F, 3, 32, 32]`` in [0, 1] → ``[3, F, 16, 16]`` in [-1, 1]
    (2× average pooling stands in for a VAE encoder)."""
    x = F.avg_pool2d(frames, 2) * 2.0 - 1.0
    return x.permute(1, 0, 2, 3).contiguous()


def from_latent(lat: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`to_latent` up to resolution: ``[3, F, 16, 16]`` → ``[F, 3, 16, 16]`` in [0, 1]."""
    return ((lat.permute(1, 0, 2, 3) + 1.0) / 2.0).clamp(0.0, 1.0)
