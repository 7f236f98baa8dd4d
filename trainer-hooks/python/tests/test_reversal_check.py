"""The hook's reversal check (motive_hooks.reversal_check) against a float64 reference written
here from its definition, ``½ [L(z, n) − L(z̄, n̄) + L(z, n̄) − L(z̄, n)]`` averaged over the seeded
draws, and the properties it promises: a clip and its reverse get opposite gaps, a model that
treats time symmetrically and a one-frame clip give 0, a batch the hook cannot reverse sends 0,
and the attributor announces and sends it as its third feature without changing the training
state."""

from __future__ import annotations

import copy
from typing import Any, List, Tuple

import torch
import torch.nn as nn

from motive_hooks import MotionAttributor, flow_matching_predict, seeded_noise
from motive_hooks.motion_check import FEATURE_NAMES, clip_features
from motive_hooks.reversal_check import REVERSAL_DRAWS, REVERSAL_FEATURE, REVERSAL_T, reversal_check, reversal_terms


class Arrow(nn.Module):
    """A velocity model that is not symmetric in time: a Conv3d whose temporal kernel is not
    symmetric, a timestep embedding, a dropout (off in eval mode) and a linear head."""

    def __init__(self, channels: int = 3, symmetric: bool = False) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.conv = nn.Conv3d(channels, 8, kernel_size=(3, 3, 3), padding=1)
        if symmetric:
            with torch.no_grad():
                w = self.conv.weight
                w.copy_(0.5 * (w + w.flip(2)))
        self.emb = nn.Linear(1, 8)
        self.drop = nn.Dropout(0.5)
        self.head = nn.Conv3d(8, channels, kernel_size=1)
        self.calls = 0

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        h = torch.tanh(self.conv(x) + self.emb(s.view(-1, 1).to(x.dtype)).view(-1, 8, 1, 1, 1))
        return self.head(self.drop(h))


def _clips(b: int = 3, frames: int = 6, seed: int = 0) -> torch.Tensor:
    g = torch.Generator()
    g.manual_seed(seed)
    return torch.randn(b, 3, frames, 8, 8, generator=g)


def _reference(model: nn.Module, x: torch.Tensor, t: int = REVERSAL_T, draws: int = REVERSAL_DRAWS, seed: int = 7_000, relative: bool = False) -> List[float]:
    """Plain float64 loops over clips and draws: the rectified-flow loss of the model on the clip
    and on its reverse, against the draw and the draw reversed (frame axis 2); ``relative``: the
    gap divided by the mean of the four losses."""
    m = copy.deepcopy(model).double().eval()
    s = t / 1000.0
    out = []
    for i in range(x.shape[0]):
        z = x[i : i + 1].double()
        zr = torch.flip(z, dims=[2])
        total = 0.0
        mean = 0.0
        for d in range(draws):
            n = seeded_noise(z.shape, seed + d).double()
            nr = torch.flip(n, dims=[2])

            def loss(a: torch.Tensor, e: torch.Tensor) -> float:
                with torch.no_grad():
                    pred = m((1 - s) * a + s * e, torch.tensor([s], dtype=torch.float64))
                return float(((pred - (e - a)) ** 2).mean())

            total += 0.5 * (loss(z, n) - loss(zr, nr) + loss(z, nr) - loss(zr, n))
            mean += (loss(z, n) + loss(zr, nr) + loss(z, nr) + loss(zr, n)) / 4
        out.append(total / mean if relative else total / draws)
    return out


def test_gap_matches_a_float64_reference() -> None:
    model = Arrow().eval()
    x = _clips()
    gap, level = reversal_terms(model, flow_matching_predict(), x)
    ref = _reference(model, x)
    assert gap.shape == (3,) and gap.dtype == torch.float32
    assert max(abs(a) for a in ref) > 1e-3, "the reference model must tell the directions apart"
    for a, b in zip(gap.tolist(), ref):
        assert abs(a - b) <= 1e-5 + 1e-3 * abs(b), (a, b)
    assert bool((level > 0).all())
    rel = _reference(model, x, relative=True)
    for a, b in zip(reversal_check(gap, level).tolist(), rel):
        assert abs(a - b) <= 1e-5 + 1e-3 * abs(b), (a, b)


def test_a_clip_and_its_reverse_get_opposite_gaps_and_a_symmetric_model_none() -> None:
    x = _clips(frames=7, seed=1)
    model = Arrow().eval()
    fwd, _ = reversal_terms(model, flow_matching_predict(), x)
    back, _ = reversal_terms(model, flow_matching_predict(), x.flip(2))
    assert torch.allclose(fwd, -back, atol=1e-6)
    sym, _ = reversal_terms(Arrow(symmetric=True).eval(), flow_matching_predict(), x)
    assert float(sym.abs().max()) < 1e-3 * float(fwd.abs().max()) + 1e-7


def test_one_frame_clips_are_neutral_without_a_forward() -> None:
    model = Arrow().eval()
    gap, level = reversal_terms(model, flow_matching_predict(), _clips(frames=1))
    assert model.calls == 0
    assert gap.tolist() == [0.0, 0.0, 0.0] and level.tolist() == [0.0, 0.0, 0.0]


def test_non_finite_losses_send_the_neutral_value() -> None:
    def overflow(model: nn.Module, batch: Any, t: torch.Tensor, noise: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        pred = model(batch, t.float() / 1000)
        pred[0] = float("inf")
        return pred, noise

    gap, _ = reversal_terms(Arrow().eval(), overflow, _clips())
    assert torch.isfinite(gap).all() and float(gap[0]) == 0.0 and float(gap[1]) != 0.0


def test_the_attributor_sends_it_as_its_third_feature_and_leaves_training_as_it_was() -> None:
    model = Arrow().train()
    attr = MotionAttributor(model, ["head"], dim=16)  # on by default
    assert attr.feature_names == FEATURE_NAMES + (REVERSAL_FEATURE,)
    x = _clips()
    rng = torch.get_rng_state()
    feats = attr.features(x)
    assert model.training and torch.equal(torch.get_rng_state(), rng)
    assert feats is not None and feats.shape == (3, 3)
    assert torch.equal(feats[:, :2], clip_features(x))
    for a, b in zip(feats[:, 2].tolist(), _reference(model, x, relative=True)):  # eval mode: dropout off
        assert abs(a - b) <= 1e-5 + 1e-3 * abs(b), (a, b)
    only = MotionAttributor(model, ["head"], dim=16, motion_check=False, reversal_check=True)
    assert only.feature_names == (REVERSAL_FEATURE,)
    assert torch.equal(only.features(x), feats[:, 2:])
    assert MotionAttributor(model, ["head"], dim=16, reversal_check=False).feature_names == FEATURE_NAMES


def test_a_batch_the_hook_cannot_reverse_sends_zero() -> None:
    model = Arrow().eval()
    x = _clips()

    def predict(m: nn.Module, batch: Any, t: torch.Tensor, noise: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return flow_matching_predict()(m, batch["latents"], t, noise)

    attr = MotionAttributor(model, ["head"], predict, dim=16, reversal_check=True)
    gap, level = attr.reversal_terms({"latents": x})
    assert model.calls == 0 and gap.tolist() == [0.0] * 3 and level.tolist() == [0.0] * 3
    feats = attr.features({"latents": x})
    assert feats is not None and feats[:, 2].tolist() == [0.0] * 3
