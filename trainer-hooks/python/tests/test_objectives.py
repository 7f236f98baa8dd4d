"""The attribution objectives: temporal-difference loss, several timesteps, static contrast, spatial
pooling, and several objectives concatenated into one sketch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from motive_hooks import MotionAttributor, flow_matching_predict
from motive_hooks.loss import MotionObjective, static_copy, temporal_difference_loss
from motive_hooks.toy import SmallVideoDenoiser, synthetic_latents


def test_temporal_difference_loss_matches_a_plain_reference() -> None:
    torch.manual_seed(0)
    pred, target = torch.randn(2, 3, 5, 4, 4), torch.randn(2, 3, 5, 4, 4)
    mask = torch.rand(2, 5, 4, 4)
    got = temporal_difference_loss(pred, target, mask)
    for b in range(2):
        acc = 0.0
        for c in range(3):
            for f in range(4):
                for y in range(4):
                    for x in range(4):
                        e1 = float(pred[b, c, f + 1, y, x] - target[b, c, f + 1, y, x])
                        e0 = float(pred[b, c, f, y, x] - target[b, c, f, y, x])
                        w = 0.5 * float(mask[b, f, y, x] + mask[b, f + 1, y, x])
                        acc += w * (e1 - e0) ** 2
        assert abs(float(got[b]) - acc / (3 * 4 * 4 * 4) / 5) < 1e-5
    # an error that is the same in every frame (appearance) does not count
    same = torch.randn(1, 3, 1, 4, 4).expand(1, 3, 5, 4, 4)
    assert float(temporal_difference_loss(same, torch.zeros_like(same), None)[0]) < 1e-12


def test_contrast_is_the_difference_of_the_clip_and_its_static_copy() -> None:
    torch.manual_seed(0)
    model = SmallVideoDenoiser(channels=4, width=8)
    x = synthetic_latents(3, frames=4, size=6)
    masks = torch.rand(3, 4, 6, 6)
    p = flow_matching_predict()
    con = MotionObjective(p, timesteps=(300, 751), contrast=True)
    plain = MotionObjective(p, timesteps=(300, 751))
    got = con.per_sample_losses(model, x, masks)
    want = plain.per_sample_losses(model, x, masks) - plain.per_sample_losses(model, static_copy(x), masks)
    assert torch.allclose(got, want, atol=1e-6)
    attr = MotionAttributor(model, model.sketch_layers(), p, dim=48, objectives=[con])
    frozen = static_copy(x)
    raw, _ = attr.raw_sketch(frozen, masks)
    assert float(raw.abs().max()) == 0.0  # a frozen clip has no motion to attribute
    # sketch of the contrast = sketch of the clip minus sketch of its static copy
    ref = MotionAttributor(model, model.sketch_layers(), p, dim=48, objectives=[plain])
    a, _ = ref.raw_sketch(x, masks)
    b, _ = ref.raw_sketch(static_copy(x), masks)
    c, _ = attr.raw_sketch(x, masks)
    assert torch.allclose(c, a - b, atol=1e-4 * float(a.abs().max()))


def test_several_objectives_concatenate_blocks_and_queries() -> None:
    torch.manual_seed(0)
    model = SmallVideoDenoiser(channels=4, width=8)
    x = synthetic_latents(2, frames=4, size=6)
    masks = torch.rand(2, 4, 6, 6)
    p = flow_matching_predict()
    objs = [MotionObjective(p, kind="masked"), MotionObjective(p, kind="temporal")]
    attr = MotionAttributor(model, model.sketch_layers(), p, dim=32, objectives=objs)
    assert attr.dim == 64 and attr.identity.dim == 64
    assert attr.fingerprint != attr.sketcher.fingerprint
    s, _ = attr.sketch(x, masks)
    assert torch.allclose(s.norm(dim=1), torch.ones(2), atol=1e-5)
    single = MotionAttributor(model, model.sketch_layers(), p, dim=32, objectives=[objs[1]])
    t, _ = single.sketch(x, masks)
    assert torch.allclose(s[:, 32:] * 2**0.5, t, atol=1e-5)
    attr.add_queries(["q"], x[:1], masks[:1])
    ids, q, groups = attr.query_sketches()
    assert ids == ["masked@751/q", "temporal@751/q"] and groups == ["masked@751", "temporal@751"]
    assert float(q[0, 32:].abs().max()) == 0.0 and float(q[1, :32].abs().max()) == 0.0
    # a single objective keeps the sketcher's own identity (wire-compatible with older runs)
    assert single.dim == 32 and single.fingerprint == single.sketcher.fingerprint


def test_no_mask_objective_ignores_masks() -> None:
    torch.manual_seed(0)
    model = SmallVideoDenoiser(channels=4, width=8)
    x = synthetic_latents(2, frames=4, size=6)
    p = flow_matching_predict()
    a = MotionObjective(p, use_mask=False).per_sample_losses(model, x, torch.zeros(2, 4, 6, 6))
    b = MotionObjective(p).per_sample_losses(model, x, None)
    assert torch.allclose(a, b)


def _pooled_accel_reference(err: np.ndarray, mask: np.ndarray, p: int) -> np.ndarray:
    """Plain float64 loops: the p×p block means of the error and of the mask, then the masked
    second temporal difference, (1/F) · mean over (c, f, y, x)."""
    b_n, c_n, f_n, h, w = err.shape
    out = np.zeros(b_n)
    for b in range(b_n):
        e = np.zeros((c_n, f_n, h // p, w // p))
        m = np.zeros((f_n, h // p, w // p))
        for y in range(h // p):
            for x in range(w // p):
                for dy in range(p):
                    for dx in range(p):
                        e[:, :, y, x] += err[b, :, :, y * p + dy, x * p + dx] / (p * p)
                        m[:, y, x] += mask[b, :, y * p + dy, x * p + dx] / (p * p)
        acc, count = 0.0, 0
        for c in range(c_n):
            for f in range(f_n - 2):
                for y in range(h // p):
                    for x in range(w // p):
                        d2 = e[c, f + 2, y, x] - 2 * e[c, f + 1, y, x] + e[c, f, y, x]
                        wf = (m[f, y, x] + m[f + 1, y, x] + m[f + 2, y, x]) / 3
                        acc += wf * d2 * d2
                        count += 1
        out[b] = acc / count / f_n
    return out


def test_spatial_pool_matches_a_plain_reference() -> None:
    torch.manual_seed(0)
    pred, target = torch.randn(2, 3, 6, 8, 8), torch.randn(2, 3, 6, 8, 8)
    mask = torch.rand(2, 6, 8, 8)
    err = (pred - target).double().numpy()
    for p in (1, 2, 4):
        obj = MotionObjective(flow_matching_predict(), kind="temporal2")
        got = obj._loss(pred, target, mask, pool=p).double().numpy()
        want = _pooled_accel_reference(err, mask.double().numpy(), p)
        assert np.allclose(got, want, rtol=1e-5, atol=1e-9), (p, got, want)
    assert MotionObjective(flow_matching_predict(), kind="temporal2", spatial_pool=2).name == "temporal2@751-pool2"


def test_spatial_pool_drops_texture_finer_than_the_block() -> None:
    # an error that alternates sign within every 2x2 block (a checker) is invisible to pool 2;
    # a block-constant error (coarse displacement) keeps its full size
    checker = torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(4, 4)  # [8, 8]
    wiggle = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0, -1.0]).view(1, 1, 6, 1, 1)
    fine = (wiggle * checker).expand(1, 3, 6, 8, 8)
    coarse = wiggle.expand(1, 3, 6, 8, 8)
    obj = MotionObjective(flow_matching_predict(), kind="temporal2")
    zero = torch.zeros(1, 3, 6, 8, 8)
    assert float(obj._loss(fine, zero, None, pool=2)[0]) < 1e-12
    assert abs(float(obj._loss(coarse, zero, None, pool=2)[0]) - float(obj._loss(coarse, zero, None)[0])) < 1e-6


def test_spatial_pool_gradients_through_the_model_and_bad_grids() -> None:
    torch.manual_seed(0)
    model = SmallVideoDenoiser(channels=4, width=8)
    x = synthetic_latents(2, frames=5, size=8)
    masks = torch.rand(2, 5, 8, 8)
    p = flow_matching_predict()
    losses = MotionObjective(p, kind="temporal2", timesteps=(500, 751), spatial_pool=2).per_sample_losses(model, x, masks)
    assert losses.shape == (2,) and bool((losses > 0).all()) and losses.requires_grad
    with pytest.raises(ValueError):
        MotionObjective(p, kind="temporal2", spatial_pool=3).per_sample_losses(model, x, masks)
    with pytest.raises(ValueError):
        MotionObjective(p, spatial_pool=0)
    with pytest.raises(ValueError):
        MotionObjective(p, timesteps=(500, 751), spatial_pool=(1, 2, 2))


def test_spatial_pool_per_timestep_is_the_mean_of_single_timestep_objectives() -> None:
    # timestep i keeps noise seed i and gets its own pooling factor
    torch.manual_seed(0)
    model = SmallVideoDenoiser(channels=4, width=8)
    x = synthetic_latents(2, frames=5, size=8)
    masks = torch.rand(2, 5, 8, 8)
    p = flow_matching_predict()
    mixed = MotionObjective(p, kind="temporal2", timesteps=(500, 751, 250), spatial_pool=(1, 1, 2))
    assert mixed.name == "temporal2@500+751+250-pool1+1+2"
    parts = [
        MotionObjective(p, kind="temporal2", t_fix=500, noise_seed=0),
        MotionObjective(p, kind="temporal2", t_fix=751, noise_seed=1),
        MotionObjective(p, kind="temporal2", t_fix=250, noise_seed=2, spatial_pool=2),
    ]
    want = sum(o.per_sample_losses(model, x, masks) for o in parts) / 3
    assert torch.allclose(mixed.per_sample_losses(model, x, masks), want, atol=1e-7)


def test_channel_pool_matches_a_plain_reference() -> None:
    # the channel mean of the error, then (optionally) the block pool, then the acceleration loss
    torch.manual_seed(1)
    pred, target = torch.randn(2, 3, 6, 8, 8), torch.randn(2, 3, 6, 8, 8)
    mask = torch.rand(2, 6, 8, 8)
    err = (pred - target).double().numpy()
    luma = err.mean(axis=1, keepdims=True)
    for p in (1, 2):
        obj = MotionObjective(flow_matching_predict(), kind="temporal2", channel_pool=True)
        got = obj._loss(pred, target, mask, pool=p).double().numpy()
        want = _pooled_accel_reference(luma, mask.double().numpy(), p)
        assert np.allclose(got, want, rtol=1e-5, atol=1e-9), (p, got, want)
    named = MotionObjective(flow_matching_predict(), kind="temporal2", timesteps=(500, 751, 250), spatial_pool=(1, 1, 2), channel_pool=True)
    assert named.name == "temporal2@500+751+250-pool1+1+2-cmean"


def test_channel_pool_drops_colour_and_keeps_what_moves_every_channel() -> None:
    # an error that only shifts colour (sums to zero over the channels) is invisible; one that is
    # the same in every channel (a displacement of a grey edge) keeps its full size
    wiggle = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0, -1.0]).view(1, 1, 6, 1, 1)
    chroma = (torch.tensor([1.0, -2.0, 1.0]).view(1, 3, 1, 1, 1) * wiggle).expand(1, 3, 6, 4, 4)
    grey = wiggle.expand(1, 3, 6, 4, 4)
    zero = torch.zeros(1, 3, 6, 4, 4)
    pooled = MotionObjective(flow_matching_predict(), kind="temporal2", channel_pool=True)
    plain = MotionObjective(flow_matching_predict(), kind="temporal2")
    assert float(pooled._loss(chroma, zero, None)[0]) < 1e-12
    assert float(plain._loss(chroma, zero, None)[0]) > 1.0
    assert abs(float(pooled._loss(grey, zero, None)[0]) - float(plain._loss(grey, zero, None)[0])) < 1e-6
    # frames first ([B, F, C, h, w]): the channel axis is 2
    assert MotionObjective(flow_matching_predict(), frame_dim=1, channel_pool=True).channel_dim == 2


def test_channel_pool_gradients_through_the_model() -> None:
    torch.manual_seed(0)
    model = SmallVideoDenoiser(channels=4, width=8)
    x = synthetic_latents(2, frames=5, size=8)
    masks = torch.rand(2, 5, 8, 8)
    p = flow_matching_predict()
    obj = MotionObjective(p, kind="temporal2", timesteps=(500, 751, 250), spatial_pool=(1, 1, 2), channel_pool=True)
    losses = obj.per_sample_losses(model, x, masks)
    assert losses.shape == (2,) and bool((losses > 0).all()) and losses.requires_grad
    attr = MotionAttributor(model, model.sketch_layers(), p, dim=48, objectives=[obj])
    raw, _ = attr.raw_sketch(x, masks)
    assert raw.shape == (2, 48) and bool(torch.isfinite(raw).all()) and float(raw.abs().max()) > 0


def _plain_fm_loss(model: torch.nn.Module, x: torch.Tensor, noise: torch.Tensor, t: int, mask: torch.Tensor) -> float:
    """The flow-matching motion loss of one clip ``[C, F, h, w]``, written out in float64."""
    s = t / 1000.0
    xs = (1 - s) * x + s * noise
    pred = model(xs.unsqueeze(0), torch.tensor([s], dtype=x.dtype))[0]
    err = (pred - (noise - x)) ** 2 * mask.unsqueeze(0)
    return float(err.mean()) / x.shape[1]


class _ConvVelocity(torch.nn.Module):
    """A float64 velocity model: one 3D convolution (not symmetric in time), scaled by s."""

    def __init__(self, symmetric: bool = False) -> None:
        super().__init__()
        self.conv = torch.nn.Conv3d(3, 3, 3, padding=1).double()
        if symmetric:
            with torch.no_grad():
                self.conv.weight.copy_(0.5 * (self.conv.weight + self.conv.weight.flip(2)))

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * (1 + s.view(-1, 1, 1, 1, 1))


@pytest.mark.parametrize("stack", [False, True])
def test_reverse_contrast_matches_a_plain_reference(stack: bool) -> None:
    torch.manual_seed(0)
    model = _ConvVelocity()
    x = synthetic_latents(3, channels=3, frames=5, size=6).double()
    masks = torch.rand(3, 5, 6, 6, dtype=torch.float64)
    obj = MotionObjective(flow_matching_predict(), kind="masked", timesteps=(100, 500), noise_seed=3, reverse=True, stack_timesteps=stack)
    got = obj.per_sample_losses(model, x, masks)
    for b in range(3):
        ref = 0.0
        for i, t in enumerate((100, 500)):
            g = torch.Generator()
            g.manual_seed(3 + i)
            n = torch.randn(5, 3, 6, 6, generator=g).permute(1, 0, 2, 3).double()  # frame by frame, as seeded_noise draws
            xr, nr, mr = x[b].flip(1), n.flip(1), masks[b].flip(0)
            ref += 0.5 * (
                _plain_fm_loss(model, x[b], n, t, masks[b])
                - _plain_fm_loss(model, xr, nr, t, mr)
                + _plain_fm_loss(model, x[b], nr, t, masks[b])
                - _plain_fm_loss(model, xr, n, t, mr)
            )
        assert abs(float(got[b]) - ref / 2) < 1e-6 * max(1.0, abs(ref))
    # a clip played backwards gets exactly the opposite objective, a still clip none
    back = obj.per_sample_losses(model, x.flip(2), masks.flip(1))
    torch.testing.assert_close(back, -got, rtol=0, atol=1e-7)
    still = x[:, :, :1].expand_as(x).contiguous()
    assert float(obj.per_sample_losses(model, still, masks[:, :1].expand_as(masks)).abs().max()) < 1e-12


def test_reverse_contrast_vanishes_for_a_model_symmetric_in_time() -> None:
    torch.manual_seed(1)
    x = synthetic_latents(2, channels=3, frames=6, size=5).double()
    obj = MotionObjective(flow_matching_predict(), timesteps=(100, 500), reverse=True)
    assert float(obj.per_sample_losses(_ConvVelocity(symmetric=True), x, None).abs().max()) < 1e-7
    assert float(obj.per_sample_losses(_ConvVelocity(), x, None).abs().min()) > 1e-5
    with pytest.raises(ValueError):
        MotionObjective(flow_matching_predict(), reverse=True, contrast=True)


def test_composite_recipe_gives_one_block_per_objective() -> None:
    from motive_hooks import COMPOSITE_RECIPES, recipe, recipe_objectives

    model = SmallVideoDenoiser(channels=3, width=8)
    parts = COMPOSITE_RECIPES["accel-luma+reverse"]
    objs = recipe_objectives("accel-luma+reverse", flow_matching_predict())
    assert [o.name for o in objs] == list(parts) and objs[1].reverse and not objs[0].reverse
    assert [o.name for o in recipe_objectives("paper", flow_matching_predict())] == ["paper"]
    with pytest.raises(ValueError):
        recipe("accel-luma+reverse", flow_matching_predict())
    attr = MotionAttributor(model, dim=16, recipe="accel-luma+reverse")
    assert attr.dim == 32 and [o.name for o in attr.objectives] == list(parts)
    x = synthetic_latents(2, channels=3, frames=4, size=6)
    rows, _ = attr.sketch(x, None)
    # each block is the L2-normalised sketch of its own objective, scaled by 1/sqrt(2)
    for i, obj in enumerate(attr.objectives):
        raw, _ = attr.raw_sketch(x, None, objective=obj)
        expect = raw / raw.norm(dim=1, keepdim=True) / 2**0.5
        torch.testing.assert_close(rows[:, 16 * i : 16 * (i + 1)], expect, rtol=1e-5, atol=1e-6)
