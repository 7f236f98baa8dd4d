"""The attribution pass leaves the training step alone; seeded noise; predict helpers."""

from __future__ import annotations

import torch

from motive_hooks import MotionAttributor, epsilon_predict, flow_matching_predict, seeded_noise
from motive_hooks.toy import SmallVideoDenoiser, linear_alphas_cumprod, synthetic_latents


def _train_step(model: SmallVideoDenoiser, opt: torch.optim.Optimizer, x: torch.Tensor) -> torch.Tensor:
    t = torch.randint(0, 1000, (x.shape[0],))
    noise = torch.randn_like(x)
    loss = ((model(x + noise, t) - noise) ** 2).mean()
    loss.backward()
    return loss.detach()


def test_pass_does_not_disturb_training() -> None:
    torch.manual_seed(0)
    x = synthetic_latents(3, size=6, frames=4)
    masks = torch.rand(3, 4, 6, 6)
    runs = []
    for with_hook in (False, True):
        torch.manual_seed(1)
        model = SmallVideoDenoiser(width=8)
        model.conv_mid.register_forward_hook(lambda m, i, o: None)
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        attr = MotionAttributor(model, model.sketch_layers(), epsilon_predict(linear_alphas_cumprod()), dim=32)
        torch.manual_seed(2)
        for step in range(3):
            opt.zero_grad()
            _train_step(model, opt, x)
            grads = [p.grad.clone() for p in model.parameters()]
            if with_hook:
                attr.step(step, 1e-3, ["a", "b", "c"], x, masks)
                assert all(torch.equal(g, p.grad) for g, p in zip(grads, model.parameters()))
                assert model.training and all(p.requires_grad for p in model.parameters())
            opt.step()
        runs.append(([p.detach().clone() for p in model.parameters()], torch.rand(3), opt.state_dict()))
    (p0, r0, s0), (p1, r1, s1) = runs
    assert all(torch.equal(a, b) for a, b in zip(p0, p1))
    assert torch.equal(r0, r1)  # global RNG stream unchanged
    assert all(torch.equal(s0["state"][k]["exp_avg"], s1["state"][k]["exp_avg"]) for k in s0["state"])


def test_sketches_are_deterministic_and_normalised() -> None:
    torch.manual_seed(0)
    model = SmallVideoDenoiser(width=8)
    attr = MotionAttributor(model, model.sketch_layers(), flow_matching_predict(), dim=64, seed=3)
    x = synthetic_latents(2, size=6, frames=4)
    s1, l1 = attr.sketch(x, None)
    s2, _ = attr.sketch(x, None)
    assert torch.equal(s1, s2) and s1.shape == (2, 64) and l1.shape == (2,)
    assert torch.allclose(s1.norm(dim=1), torch.ones(2), atol=1e-5)
    # per-sample independence: a sample's sketch does not depend on its batch mates
    s_single, _ = attr.sketch(x[:1], None)
    assert torch.allclose(s_single[0], s1[0], atol=1e-5)


def test_seeded_noise_is_shared_and_prefix_stable() -> None:
    a = seeded_noise((2, 3, 8, 4, 4), seed=11)
    b = seeded_noise((1, 3, 16, 4, 4), seed=11)
    assert torch.equal(a[0], a[1])
    assert torch.equal(a[0], b[0, :, :8])
    g = torch.get_rng_state()
    seeded_noise((1, 3, 2, 2, 2), seed=1)
    assert torch.equal(g, torch.get_rng_state())
