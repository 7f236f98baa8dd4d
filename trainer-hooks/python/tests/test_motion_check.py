"""The hook's model-free motion checks (motive_hooks.motion_check) against closed forms and the
properties they promise: held frames counted exactly; each channel's gain and offset, the
resolution and per-frame noise leave them (nearly) unchanged; irregular motion above smooth."""

from __future__ import annotations

import math

import torch

from motive_hooks.motion_check import FEATURE_NAMES, clip_features


def _pan(frames: int = 12, size: int = 24, speed: float = 0.6, jitter: float = 0.0, seed: int = 0, scale: float = 1.0, phase: float = 1 / 3) -> torch.Tensor:
    """A smooth texture translating ``speed`` px/frame to the right (plus random per-frame offsets
    of up to ``jitter`` px), as latents ``[3, F, size, size]``; ``scale`` magnifies the texture, the
    speed and the offsets alike (the same clip at ``scale`` × the resolution). Channel c's phase is
    ``c · phase`` of a period: at a third, the channels' mean is zero everywhere, as signed latent
    channels' can be."""
    gen = torch.Generator()
    gen.manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64), indexing="ij")
    out = torch.empty(3, frames, size, size, dtype=torch.float64)
    for f in range(frames):
        dx = (speed * f + (float(torch.rand(1, generator=gen)) * 2 - 1) * jitter) * scale
        dy = (float(torch.rand(1, generator=gen)) * 2 - 1) * jitter * scale
        for c in range(3):
            out[c, f] = torch.sin(2 * math.pi * ((xs - dx) / (9.0 * scale) + c * phase)) * torch.cos(2 * math.pi * (ys - dy) / (11.0 * scale))
    return out.float()


def _accel(clip: torch.Tensor) -> float:
    return float(clip_features(clip.unsqueeze(0))[0, 0])


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


def test_every_channels_gain_and_offset_leave_both_checks_unchanged() -> None:
    """16 signed channels mixed from the pan, then each channel scaled and offset on its own: the
    checks read the same (the view standardises each channel over the clip)."""
    gen = torch.Generator()
    gen.manual_seed(3)
    mix = torch.randn(16, 3, generator=gen, dtype=torch.float64)
    gain = torch.rand(16, generator=gen, dtype=torch.float64) * 5 + 0.2
    offset = torch.randn(16, generator=gen, dtype=torch.float64) * 4
    clips = []
    for clip in (_pan(jitter=1.0), _pan()[:, [2 * (f // 2) for f in range(12)]]):
        latent = torch.einsum("oc,cfhw->ofhw", mix, clip.double())
        clips += [latent, latent * gain.view(-1, 1, 1, 1) + offset.view(-1, 1, 1, 1)]
    f = clip_features(torch.stack(clips).float())
    assert abs(float(f[0, 0]) - float(f[1, 0])) < 1e-3, f
    assert abs(float(f[2, 0]) - float(f[3, 0])) < 1e-3, f
    assert torch.equal(f[0::2, 1], f[1::2, 1]), f
    assert abs(float(f[2, 1]) - 6 / 11) < 1e-6  # held frames still counted exactly


def test_a_clip_and_its_gain_and_offset_copy_read_the_same() -> None:
    clip = _pan(jitter=1.0)
    a, b = _accel(clip), _accel(3.0 * clip + 0.5)
    assert abs(a - b) < 1e-3, (a, b)


def test_per_frame_noise_is_not_flagged_where_one_displaced_frame_is() -> None:
    """One frame shifted a pixel off a smooth pan's path raises ``flow_accel`` by more than 1 (the
    motion's change e× larger against its size); independent noise on every pixel of every frame
    (grain, compression) at a tenth of the texture's amplitude raises it by less than a third of
    that. (A pan whose channels do not cancel, so that the channel mean is a fair luminance.)"""
    for s in range(3):
        clip = _pan(seed=s, phase=0.1)
        gen = torch.Generator()
        gen.manual_seed(100 + s)
        noisy = clip + 0.1 * torch.randn(clip.shape, generator=gen)
        displaced = clip.clone()
        displaced[:, 6] = clip[:, 6].roll(1, dims=-1)
        smooth, noise, jump = _accel(clip), _accel(noisy), _accel(displaced)
        assert jump - smooth > 1.0, (smooth, noise, jump)
        assert noise - smooth < (jump - smooth) / 3, (smooth, noise, jump)


def _disc_over_calm_background(seed: int, jitter: float = 0.0, frames: int = 12, size: int = 16) -> torch.Tensor:
    """A textured disc moving on a straight path (plus random offsets of up to ``jitter`` px) over a
    still, low-contrast background, as latents ``[3, F, size, size]``: the case where grain on the
    background, not the motion, dominates a noisy clip's flow."""
    gen = torch.Generator()
    gen.manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64), indexing="ij")
    bg = 0.15 * torch.sin(2 * math.pi * xs / 7.0) * torch.cos(2 * math.pi * ys / 5.0)
    out = torch.empty(3, frames, size, size, dtype=torch.float64)
    for f in range(frames):
        cx = 4 + 0.7 * f + (float(torch.rand(1, generator=gen)) * 2 - 1) * jitter
        cy = 5 + 0.3 * f
        alpha = torch.sigmoid(-(torch.sqrt((xs - cx) ** 2 + (ys - cy) ** 2) - 3.0) / 0.6)
        tex = 0.6 + 0.4 * torch.sin(2 * math.pi * (xs - cx) / 4.0) * torch.cos(2 * math.pi * (ys - cy) / 4.0)
        for c in range(3):
            out[c, f] = bg * (1 - alpha) + tex * alpha * (1 if c != 1 else -1)
    return out.float()


def test_grain_on_a_still_background_is_flagged_far_less_than_a_shaky_object() -> None:
    """Over three seeds, independent noise (σ 0.05) on every pixel of every frame raises
    ``flow_accel`` by less than 0.35 of what a 0.8 px shake of the moving object does (without the
    flow's Tikhonov term above the noise's structure, about half)."""
    noise_rise, shake_rise = 0.0, 0.0
    for s in range(3):
        clip = _disc_over_calm_background(s)
        gen = torch.Generator()
        gen.manual_seed(100 + s)
        smooth = _accel(clip)
        noise_rise += _accel(clip + 0.05 * torch.randn(clip.shape, generator=gen)) - smooth
        shake_rise += _accel(_disc_over_calm_background(s, jitter=0.8)) - smooth
    assert shake_rise / 3 > 3.0, shake_rise
    assert noise_rise < 0.35 * shake_rise, (noise_rise, shake_rise)


def test_the_same_clip_at_three_times_the_resolution_reads_alike() -> None:
    """The checks measure motion on one grid (``WORK_SIZE``): a pan and a shaky pan at 16 px and
    the same clips at 48 px read within 0.3 of each other, while shaky and smooth differ by more
    than 1 at both resolutions."""
    for seed in range(2):
        lo = [_accel(_pan(size=16, seed=seed)), _accel(_pan(size=16, jitter=1.0, seed=seed))]
        hi = [_accel(_pan(size=48, scale=3.0, seed=seed)), _accel(_pan(size=48, scale=3.0, jitter=1.0, seed=seed))]
        assert abs(lo[0] - hi[0]) < 0.3 and abs(lo[1] - hi[1]) < 0.3, (lo, hi)
        assert lo[1] - lo[0] > 1.0 and hi[1] - hi[0] > 1.0, (lo, hi)


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


def test_any_shape_and_frame_axis() -> None:
    """Finite for 1–16 channels, frames from 3, grids from 1×7 to 60×104 and half precision; the
    frame axis moved to dim 1 gives the same values; a constant clip is frozen (1) and not moving."""
    gen = torch.Generator()
    gen.manual_seed(0)
    for shape in [(2, 16, 5, 8, 8), (1, 1, 12, 48, 48), (1, 3, 12, 60, 104), (1, 3, 3, 1, 7)]:
        f = clip_features(torch.randn(shape, generator=gen))
        assert f.shape == (shape[0], 2) and bool(torch.isfinite(f).all()), (shape, f)
    x = torch.randn(2, 3, 12, 20, 20, generator=gen)
    assert torch.allclose(clip_features(x), clip_features(x.transpose(1, 2).contiguous(), frame_dim=1))
    const = clip_features(torch.ones(1, 16, 6, 16, 16).half())
    assert float(const[0, 1]) == 1.0 and bool(torch.isfinite(const).all())
