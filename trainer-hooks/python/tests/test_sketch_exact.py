"""Projection exactness: each layer's sketch equals P_out · G · P_inᵀ of the explicit per-sample
gradient obtained by autograd one sample at a time."""

from __future__ import annotations

from typing import Dict

import pytest
import torch
import torch.nn as nn

from motive_hooks import GradientSketcher

torch.set_num_threads(1)


class TinyVideoNet(nn.Module):
    """[B, C, F, H, W] -> [B, C, F, H, W]: Conv3d, per-frame Conv2d (frames folded into the batch),
    a token-wise Linear without bias, a reflect-padded Conv2d, and a Linear head."""

    def __init__(self, c: int = 3, h: int = 6) -> None:
        super().__init__()
        self.conv3 = nn.Conv3d(c, h, kernel_size=(3, 3, 3), padding=1)
        self.conv2 = nn.Conv2d(h, h, kernel_size=3, padding=1, stride=1)
        self.refl = nn.Conv2d(h, h, kernel_size=3, padding=1, padding_mode="reflect", bias=True)
        self.mix = nn.Linear(h, h, bias=False)
        self.head = nn.Linear(h, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, f, hh, ww = x.shape
        y = torch.tanh(self.conv3(x))
        y = y.permute(0, 2, 1, 3, 4).reshape(b * f, -1, hh, ww)
        y = torch.relu(self.conv2(y))
        y = torch.tanh(self.refl(y))
        y = y.reshape(b, f, -1, hh, ww).permute(0, 1, 3, 4, 2)  # [B, F, H, W, h]
        y = torch.tanh(self.mix(y))
        y = self.head(y)
        return y.permute(0, 4, 1, 2, 3)


def _flat_grad(mod: nn.Module, grads: Dict[str, torch.Tensor], prefix: str) -> torch.Tensor:
    w = grads[prefix + ".weight"].reshape(grads[prefix + ".weight"].shape[0], -1)
    if getattr(mod, "bias", None) is not None:
        w = torch.cat([w, grads[prefix + ".bias"].unsqueeze(1)], dim=1)
    return w.double()


@pytest.mark.parametrize("dim", [60, 400])  # 60: projected activations; 400: per-sample G path for most layers
def test_sketch_equals_projected_explicit_gradient(dim: int) -> None:
    torch.manual_seed(0)
    model = TinyVideoNet()
    names = ["conv3", "conv2", "refl", "mix", "head"]
    mods = {n: getattr(model, n) for n in names}
    sk = GradientSketcher(mods, dim=dim, seed=7)
    x = torch.randn(4, 3, 5, 6, 6)
    target = torch.randn_like(x)

    def losses_of(inp: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        return ((model(inp) - tgt) ** 2).flatten(1).mean(1)

    with sk.capture():
        losses = losses_of(x, target)
    sketches = sk.sketch(losses).double()
    assert all(p.grad is None for p in model.parameters())

    projs = sk.projections()
    slices = sk.layer_slices()
    params = dict(model.named_parameters())
    worst = 0.0
    for i in range(x.shape[0]):
        loss_i = losses_of(x[i : i + 1], target[i : i + 1]).sum()
        keys = [k for k in params if k.split(".")[0] in mods]
        g = dict(zip(keys, torch.autograd.grad(loss_i, [params[k] for k in keys])))
        for n in names:
            p_out, p_in = (t.double() for t in projs[n])
            expect = (p_out @ _flat_grad(mods[n], g, n) @ p_in.t()).flatten()
            got = sketches[i, slices[n]]
            rel = float((got - expect).norm() / expect.norm())
            worst = max(worst, rel)
    print(f"projection exactness (k={dim}): max relative error {worst:.2e}")
    assert worst <= 1e-5


def test_fingerprint_deterministic_and_sensitive() -> None:
    torch.manual_seed(0)
    a = TinyVideoNet()
    b = TinyVideoNet(h=6)
    fa = GradientSketcher({"conv3": a.conv3, "head": a.head}, dim=64, seed=1)
    fb = GradientSketcher({"conv3": b.conv3, "head": b.head}, dim=64, seed=1)
    assert fa.fingerprint == fb.fingerprint
    pa, pb = fa.projections(), fb.projections()
    assert all(torch.equal(pa[k][0], pb[k][0]) and torch.equal(pa[k][1], pb[k][1]) for k in pa)
    assert GradientSketcher({"conv3": a.conv3, "head": a.head}, dim=64, seed=2).fingerprint != fa.fingerprint
    assert GradientSketcher({"conv3": a.conv3, "head": a.head}, dim=32, seed=1).fingerprint != fa.fingerprint
    assert GradientSketcher({"x": a.conv3, "head": a.head}, dim=64, seed=1).fingerprint != fa.fingerprint
    assert sum(lp.k for lp in fa.layers) == 64
