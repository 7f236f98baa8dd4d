"""The attribution objectives: temporal-difference loss, several timesteps, static contrast, and
several objectives concatenated into one sketch."""

from __future__ import annotations

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
