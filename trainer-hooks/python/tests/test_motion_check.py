"""The hook's model-free motion checks (motive_hooks.motion_check) against closed forms and the
properties they promise: held frames counted exactly, scale-free, irregular motion above smooth."""

from __future__ import annotations

import math

import torch

from motive_hooks.motion_check import FEATURE_NAMES, clip_features


def _pan(frames: int = 12, size: int = 24, speed: float = 0.6, jitter: float = 0.0, seed: int = 0) -> torch.Tensor:
    """A smooth texture translating ``speed`` px/frame to the right (plus random per-frame offsets
    of up to ``jitter`` px), as latents ``[3, F, size, size]``."""
    gen = torch.Generator()
    gen.manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64), indexing="ij")
    out = torch.empty(3, frames, size, size, dtype=torch.float64)
    for f in range(frames):
        dx = speed * f + (float(torch.rand(1, generator=gen)) * 2 - 1) * jitter
        dy = (float(torch.rand(1, generator=gen)) * 2 - 1) * jitter
        for c in range(3):
            out[c, f] = torch.sin(2 * math.pi * ((xs - dx) / 9.0 + c / 3)) * torch.cos(2 * math.pi * (ys - dy) / 11.0)
    return out.float()


def test_names_and_shape() -> None:
    x = torch.stack([_pan(), _pan(seed=1)])
    f = clip_features(x)
    assert f.shape == (2, len(FEATURE_NAMES)) and f.dtype == torch.float32
    assert FEATURE_NAMES == ("flow_accel", "still_fraction")


def test_still_fraction_counts_held_frames_exactly() -> None:
    clip = _pan()
    frozen = clip[:, :1].expand_as(clip).contiguous()
    held = clip[:, [2 * (f // 2) for f in range(12)]]  # each frame held for two: pairs 0, 2, 4, … do not change
    f = clip_features(torch.stack([clip, frozen, held]))
    assert float(f[0, 1]) == 0.0
    assert float(f[1, 1]) == 1.0
    assert abs(float(f[2, 1]) - 6 / 11) < 1e-6


def test_gain_and_offset() -> None:
    """``still_fraction`` does not move. ``flow_accel`` does (printed): on this pan 3× + 0.5 moves it
    by 0.15 where smooth and shaky differ by 0.36, a known weakness (motion_check.py)."""
    clip = _pan(jitter=1.0)
    held = clip[:, [2 * (f // 2) for f in range(12)]]
    a = clip_features(torch.stack([clip, held]))
    b = clip_features(torch.stack([3.0 * clip + 0.5, 3.0 * held + 0.5]))
    assert torch.equal(a[:, 1], b[:, 1])
    smooth = float(clip_features(_pan().unsqueeze(0))[0, 0])
    shaky = float(clip_features(_pan(jitter=1.5).unsqueeze(0))[0, 0])
    print(f"flow_accel: {float(a[0, 0]):.3f} as is, {float(b[0, 0]):.3f} at 3x + 0.5; smooth {smooth:.3f}, shaky {shaky:.3f}")
    assert shaky > smooth


def test_irregular_motion_scores_above_smooth() -> None:
    smooth = [clip_features(_pan(seed=s).unsqueeze(0))[0, 0] for s in range(4)]
    shaky = [clip_features(_pan(jitter=1.5, seed=s).unsqueeze(0))[0, 0] for s in range(4)]
    clip = _pan()
    swapped = clip[:, [0, 1, 3, 2, 4, 5, 7, 6, 8, 9, 11, 10]]
    assert max(smooth) < min(shaky), (smooth, shaky)
    assert float(clip_features(swapped.unsqueeze(0))[0, 0]) > max(smooth)


def test_short_clips_are_never_flagged_for_motion() -> None:
    f = clip_features(_pan(frames=2).unsqueeze(0))
    assert float(f[0, 0]) == -20.0  # the smoothest value: a pair has no change of motion to measure
    assert float(f[0, 1]) == 0.0
