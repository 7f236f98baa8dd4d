"""Seeded clips for the motion benchmark: natural-looking textures, camera and object motion, and
harmful and appearance-only variants with ground truth.

Every clip is ``[F, 3, SIZE, SIZE]`` in [0, 1], ``F`` from ``LENGTHS``, rendered by bilinear
resampling of 128×128 textures (``textures/``: ImageMagick built-in images and plasma, ffmpeg lavfi
pattern sources; ``make_textures.sh``). Clean content families:

- ``pan``: the camera translates over a texture at constant velocity, any direction;
- ``dolly``: the camera moves forward (zooms in) at a constant rate — the data's one direction;
- ``roll``: the camera rotates about the frame centre at constant angular speed, either way;
- ``fall``: one or two textured objects fall under gravity (accelerating downwards) over a still
  textured background — the data's other direction;
- ``orbit``: one or two textured objects move on circles at constant speed, either way.

Harmful families (made from a clean clip) and appearance-only decoys are listed in ``HARMFUL`` and
``DECOYS``; ``DEV`` and ``HELD_OUT`` split them (and the textures) into the development and the
held-out set, fixed before any held-out run (docs/results.md).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

SIZE = 32
LENGTHS = (8, 12)
CONTENT = ("pan", "dolly", "roll", "fall", "orbit")

HARMFUL = {
    "shake": "camera shake: every frame shifted by a random offset of up to 3 px",
    "frozen": "frozen content: from an early frame on, that frame repeated",
    "flicker": "periodic artefact: every 2nd or 3rd frame 20-35 % brighter or darker",
    "rev-fall": "order error the clip cannot show: a fall played backwards (objects rise, slowing)",
    "stutter": "timing error: each frame held for 2-3 frames, then the motion jumps ahead",
    "cut": "discontinuity: from a middle frame on, another clip of the same texture",
    "swap": "order error: two or three pairs of neighbouring frames swapped",
    "rev-dolly": "order error the clip cannot show: a dolly played backwards (the camera retreats)",
    "speed": "timing error: from a middle frame on, the motion runs at twice its speed",
    "tremor": "subtle camera shake: every frame shifted by a random offset of up to 1.2 px",
}
"""Harmful families. ``rev-fall`` and ``rev-dolly`` are smooth on their own; only the rest of the
data, where objects fall and the camera moves forward, makes them wrong."""

DECOYS = {
    "colour": "colours permuted and saturated",
    "blur": "every frame Gaussian-blurred (sigma 1 px)",
    "overlay": "a static logo box at a fixed place of the frame",
    "compress": "per-frame 4x4 block smoothing and 6-level quantisation (compression-like)",
    "grain": "per-frame film grain: independent Gaussian noise (sigma 0.03-0.07) on every pixel of every frame",
    "exposure": "brightness and contrast: the whole clip scaled by 0.5-1.6 and offset by up to 0.2",
}
"""Appearance-only decoys: clean motion, odd looks. A motion attribution must not flag them."""

INVISIBLE = ("rev-fall", "rev-dolly")
"""The harmful families that per-clip frame statistics cannot see."""

SOURCE = {"rev-fall": "fall", "rev-dolly": "dolly"}
"""Families that only apply to one content family."""


@dataclass(frozen=True)
class Split:
    """One side of the pre-registered split: its harmful families, decoys and textures."""

    name: str
    harmful: Tuple[str, ...]
    decoys: Tuple[str, ...]
    texture_prefix: str


DEV = Split("dev", ("shake", "frozen", "flicker", "rev-fall", "speed", "tremor"), ("colour", "blur", "grain", "exposure"), "dev-")
# ``speed``, ``tremor``, ``grain`` and ``exposure`` joined the development split later, before the
# held-out split's second run (docs/results.md, "The protocol").
HELD_OUT = Split("held", ("stutter", "cut", "swap", "rev-dolly"), ("overlay", "compress"), "held-")
SPLITS = {"dev": DEV, "held": HELD_OUT}

TEXTURE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "textures")


@dataclass
class Clip:
    """One clip and its ground truth."""

    id: str
    frames: torch.Tensor  # [F, 3, SIZE, SIZE] in [0, 1]
    content: str  # one of CONTENT
    kind: str  # "clean", a HARMFUL key or a DECOYS key

    @property
    def harmful(self) -> bool:
        return self.kind in HARMFUL


_TEXTURES: Dict[str, torch.Tensor] = {}


def textures(prefix: str) -> List[torch.Tensor]:
    """The texture bank's images whose file names start with ``prefix``, ``[3, 128, 128]`` in [0, 1]."""
    names = sorted(n for n in os.listdir(TEXTURE_DIR) if n.startswith(prefix) and n.endswith(".png"))
    out = []
    for n in names:
        if n not in _TEXTURES:
            _TEXTURES[n] = _read_png(os.path.join(TEXTURE_DIR, n))
        out.append(_TEXTURES[n])
    if not out:
        raise FileNotFoundError(f"no textures {prefix}*.png in {TEXTURE_DIR} (run make_textures.sh)")
    return out


def _read_png(path: str) -> torch.Tensor:
    try:
        from torchvision.io import read_image

        img = read_image(path)
    except Exception:  # torchvision without its image extension: decode with matplotlib
        import matplotlib.image as mpimg

        arr = mpimg.imread(path)
        img = torch.from_numpy(arr[..., :3].copy()).permute(2, 0, 1)
        return img.float().clamp(0, 1)
    return (img[:3].float() / 255.0).clamp(0, 1)


def _u(gen: torch.Generator, a: float, b: float) -> float:
    return a + (b - a) * float(torch.rand(1, generator=gen))


def _coin(gen: torch.Generator, p: float = 0.5) -> bool:
    return bool(torch.rand(1, generator=gen) < p)


def _sample(tex: torch.Tensor, cx: float, cy: float, half: float, angle: float = 0.0) -> torch.Tensor:
    """A SIZE×SIZE view of ``tex`` centred at (cx, cy) texture px, ``2·half`` px wide, rotated."""
    n = tex.shape[-1]
    lin = torch.linspace(-1, 1, SIZE)
    ys, xs = torch.meshgrid(lin, lin, indexing="ij")
    c, s = math.cos(angle), math.sin(angle)
    u = (c * xs - s * ys) * half + cx
    v = (s * xs + c * ys) * half + cy
    grid = torch.stack([u / (n - 1) * 2 - 1, v / (n - 1) * 2 - 1], dim=-1).unsqueeze(0)
    return F.grid_sample(tex.unsqueeze(0), grid, mode="bilinear", padding_mode="reflection", align_corners=True)[0]


def _camera(content: str, frames: int, tex: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    half0 = _u(gen, 20, 30)
    cx, cy = _u(gen, 40, 88), _u(gen, 40, 88)
    if content == "pan":
        speed, ang = _u(gen, 0.6, 1.8), _u(gen, 0, 2 * math.pi)
        scale = 2 * half0 / SIZE  # texture px per output px
        vx, vy = speed * scale * math.cos(ang), speed * scale * math.sin(ang)
        return torch.stack([_sample(tex, cx + vx * f, cy + vy * f, half0) for f in range(frames)])
    if content == "dolly":
        rate = _u(gen, 0.955, 0.98)  # the view shrinks: the camera moves forward
        half0 = _u(gen, 28, 40)
        return torch.stack([_sample(tex, cx, cy, half0 * rate**f) for f in range(frames)])
    omega = _u(gen, 0.04, 0.09) * (1 if _coin(gen) else -1)
    a0 = _u(gen, 0, 2 * math.pi)
    return torch.stack([_sample(tex, cx, cy, half0, a0 + omega * f) for f in range(frames)])


def _objects(content: str, frames: int, bg_tex: torch.Tensor, obj_tex: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    bg = _sample(bg_tex, _u(gen, 40, 88), _u(gen, 40, 88), _u(gen, 24, 40))
    bg = 0.6 * bg + 0.4 * bg.mean(dim=0, keepdim=True)  # a calmer background than the objects
    n_obj = 1 if _coin(gen, 0.6) else 2
    coords = torch.arange(SIZE, dtype=torch.float32)
    ys, xs = torch.meshgrid(coords, coords, indexing="ij")
    paths: List[List[Tuple[float, float]]] = []
    looks: List[Tuple[torch.Tensor, float, bool]] = []
    for _ in range(n_obj):
        r = _u(gen, 3.0, 5.0)
        look = _sample(obj_tex, _u(gen, 30, 98), _u(gen, 30, 98), _u(gen, 10, 20))
        looks.append((look, r, _coin(gen)))
        if content == "fall":
            g = _u(gen, 0.22, 0.4) * (8.0 / frames) ** 1.2
            x0, y0, vx, vy = _u(gen, 6, 26), _u(gen, 2, 8), _u(gen, -0.5, 0.5), _u(gen, 0.0, 0.6)
            paths.append([(x0 + vx * f, y0 + vy * f + 0.5 * g * f * f) for f in range(frames)])
        else:
            rad, w = _u(gen, 5, 9), _u(gen, 0.15, 0.3) * (1 if _coin(gen) else -1)
            ox, oy, a0 = _u(gen, 11, 21), _u(gen, 11, 21), _u(gen, 0, 2 * math.pi)
            paths.append([(ox + rad * math.cos(a0 + w * f), oy + rad * math.sin(a0 + w * f)) for f in range(frames)])
    out = []
    for f in range(frames):
        img = bg.clone()
        for (look, r, square), path in zip(looks, paths):
            x, y = path[f]
            if square:
                d = torch.maximum((xs - x).abs(), (ys - y).abs()) - r
            else:
                d = torch.sqrt((xs - x) ** 2 + (ys - y) ** 2) - r
            alpha = torch.sigmoid(-d / 0.6)
            shifted = torch.roll(look, shifts=(int(round(y)) - SIZE // 2, int(round(x)) - SIZE // 2), dims=(1, 2))
            img = img * (1 - alpha) + shifted * alpha
        out.append(img)
    return torch.stack(out)


def pick_textures(texs: Sequence[torch.Tensor], gen: torch.Generator) -> Tuple[int, int]:
    """Two different texture indices: the scene's and the objects'."""
    i = int(torch.randint(len(texs), (1,), generator=gen))
    j = (i + 1 + int(torch.randint(len(texs) - 1, (1,), generator=gen))) % len(texs)
    return i, j


def render(content: str, frames: int, texs: Sequence[torch.Tensor], pick: Tuple[int, int], gen: torch.Generator) -> torch.Tensor:
    """A clean clip ``[frames, 3, SIZE, SIZE]`` of ``content`` over the textures ``pick`` of ``texs``."""
    i, j = pick
    if content in ("pan", "dolly", "roll"):
        return _camera(content, frames, texs[i], gen).clamp(0, 1)
    return _objects(content, frames, texs[i], texs[j], gen).clamp(0, 1)


def _shift(frame: torch.Tensor, dx: float, dy: float) -> torch.Tensor:
    theta = torch.tensor([[1.0, 0.0, 2 * dx / SIZE], [0.0, 1.0, 2 * dy / SIZE]]).unsqueeze(0)
    grid = F.affine_grid(theta, [1, 3, SIZE, SIZE], align_corners=False)
    return F.grid_sample(frame.unsqueeze(0), grid, mode="bilinear", padding_mode="reflection", align_corners=False)[0]


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = int(math.ceil(2.5 * sigma))
    k = torch.exp(-(torch.arange(-r, r + 1, dtype=torch.float32) ** 2) / (2 * sigma * sigma))
    k = k / k.sum()
    c = x.shape[1]
    y = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(y, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def corrupt(kind: str, clip: torch.Tensor, gen: torch.Generator, remake: Callable[[], torch.Tensor]) -> torch.Tensor:
    """The harmful or decoy variant ``kind`` of a clean clip ``[F, 3, H, W]``.

    ``remake()`` renders another clean clip of the same content and texture (for ``cut``). For
    ``speed`` the clip is rendered at twice the length and the result has half its frames.
    """
    n = clip.shape[0]
    if kind == "shake":
        return torch.stack([_shift(fr, _u(gen, -3, 3), _u(gen, -3, 3)) for fr in clip]).clamp(0, 1)
    if kind == "frozen":
        k = int(torch.randint(0, max(1, n // 3), (1,), generator=gen))
        out = clip.clone()
        out[k:] = clip[k]
        return out
    if kind == "flicker":
        period = 2 if _coin(gen) else 3
        phase = int(torch.randint(period, (1,), generator=gen))
        gain = 1 + _u(gen, 0.2, 0.35) * (1 if _coin(gen) else -1)
        out = clip.clone()
        out[phase::period] = (clip[phase::period] * gain).clamp(0, 1)
        return out
    if kind == "tremor":
        return torch.stack([_shift(fr, _u(gen, -1.2, 1.2), _u(gen, -1.2, 1.2)) for fr in clip]).clamp(0, 1)
    if kind == "speed":
        # rendered at twice the length (make_set): 1x up to frame k, then every second frame
        m = n // 2
        k = int(torch.randint(m // 3, 2 * m // 3 + 1, (1,), generator=gen))
        return clip[[f if f <= k else k + 2 * (f - k) for f in range(m)]].contiguous()
    if kind in ("rev-fall", "rev-dolly"):
        return clip.flip(0).contiguous()
    if kind == "stutter":
        hold = 2 if _coin(gen, 0.6) else 3
        return clip[[hold * (f // hold) for f in range(n)]].contiguous()
    if kind == "cut":
        at = int(torch.randint(n // 3, 2 * n // 3 + 1, (1,), generator=gen))
        other = remake()
        return torch.cat([clip[:at], other[at:]])
    if kind == "swap":
        order = list(range(n))
        starts = torch.randperm(n - 1, generator=gen).tolist()
        used: set = set()
        swaps = 0
        for s in starts:
            if swaps == (2 if n <= 8 else 3):
                break
            if s in used or s + 1 in used:
                continue
            order[s], order[s + 1] = order[s + 1], order[s]
            used.update((s, s + 1))
            swaps += 1
        return clip[order].contiguous()
    if kind == "colour":
        perm = torch.randperm(3, generator=gen)
        x = clip[:, perm]
        grey = x.mean(dim=1, keepdim=True)
        return (grey + _u(gen, 1.5, 2.2) * (x - grey)).clamp(0, 1)
    if kind == "blur":
        return _blur(clip, 1.0).clamp(0, 1)
    if kind == "overlay":
        out = clip.clone()
        w, h = int(_u(gen, 9, 14)), int(_u(gen, 5, 8))
        x0, y0 = int(_u(gen, 1, SIZE - w - 1)), int(_u(gen, 1, SIZE - h - 1))
        colour = torch.rand(3, 1, 1, generator=gen)
        box = colour * 0.7 + 0.3 * (torch.rand(1, h, w, generator=gen) > 0.5).float()
        out[:, :, y0 : y0 + h, x0 : x0 + w] = 0.25 * out[:, :, y0 : y0 + h, x0 : x0 + w] + 0.75 * box
        return out
    if kind == "grain":
        sigma = _u(gen, 0.03, 0.07)
        shape = (n, 1 if _coin(gen) else 3) + tuple(clip.shape[2:])
        return (clip + sigma * torch.randn(shape, generator=gen)).clamp(0, 1)
    if kind == "exposure":
        gain, offset = _u(gen, 0.5, 1.6), _u(gen, -0.2, 0.2)
        return (clip * gain + offset).clamp(0, 1)
    if kind == "compress":
        block = F.interpolate(F.avg_pool2d(clip, 4), scale_factor=4, mode="nearest")
        return (torch.round((0.6 * block + 0.4 * clip) * 5) / 5).clamp(0, 1)
    raise ValueError(f"unknown kind {kind!r}")


def make_set(counts: Dict[str, int], seed: int, prefix: str, split: Split, lengths: Sequence[int] = LENGTHS) -> List[Clip]:
    """Clips: ``counts[kind]`` of each kind ("clean", harmful or decoy), content cycling through
    ``CONTENT`` (or the family's own content), textures of ``split``."""
    gen = torch.Generator()
    gen.manual_seed(seed)
    texs = textures(split.texture_prefix)
    clips: List[Clip] = []
    for kind, count in counts.items():
        for i in range(count):
            content = SOURCE.get(kind, CONTENT[i % len(CONTENT)])
            frames = lengths[int(torch.randint(len(lengths), (1,), generator=gen))]
            pick = pick_textures(texs, gen)
            base = render(content, 2 * frames if kind == "speed" else frames, texs, pick, gen)
            if kind != "clean":
                other_seed = int(torch.randint(2**31 - 1, (1,), generator=gen))

                def remake(content: str = content, frames: int = frames, pick: Tuple[int, int] = pick, s: int = other_seed) -> torch.Tensor:
                    g = torch.Generator()
                    g.manual_seed(s)
                    return render(content, frames, texs, pick, g)

                base = corrupt(kind, base, gen, remake)
            clips.append(Clip(f"{prefix}-{kind}-{i:03d}", base, content, kind))
    return clips


def training_counts(split: Split, clean: int = 100, harmful: int = 16, decoys: int = 16) -> Dict[str, int]:
    """The kind counts of one training set of ``split``."""
    counts = {"clean": clean}
    counts.update({k: harmful for k in split.harmful})
    counts.update({k: decoys for k in split.decoys})
    return counts


def to_latent(frames: torch.Tensor) -> torch.Tensor:
    """``[F, 3, SIZE, SIZE]`` in [0, 1] → the 2×-pooled latent ``[3, F, SIZE/2, SIZE/2]`` in [-1, 1]."""
    return (F.avg_pool2d(frames, 2) * 2 - 1).permute(1, 0, 2, 3).contiguous()


def preview(clips: Sequence[Clip], path: str, frames: Optional[int] = None) -> None:
    """A PNG contact sheet: one row per clip, its frames left to right (for looking at the data)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(c.frames.shape[0] for c in clips) if frames is None else frames
    sheet = torch.ones(len(clips) * (SIZE + 2), n * (SIZE + 2), 3)
    for r, c in enumerate(clips):
        for f in range(min(n, c.frames.shape[0])):
            sheet[r * (SIZE + 2) : r * (SIZE + 2) + SIZE, f * (SIZE + 2) : f * (SIZE + 2) + SIZE] = c.frames[f].permute(1, 2, 0)
    plt.imsave(path, sheet.numpy())
