"""Several-timestep objectives run as one stacked forward where that is the same computation:
per-sample gradients equal to the looped path's in float64, sketches equal to within float32
round-off and exact against autograd per-sample adapter gradients, one forward per pass, and the
looped path kept where stacking would change the result."""

from __future__ import annotations

from typing import Any, List, Tuple

import pytest
import torch
import torch.nn as nn

from motive_hooks import DEFAULT_RECIPE, MotionAttributor, MotionObjective, flow_matching_predict, recipe
from motive_hooks.dit import WanMiniDiT, wan_mini_latents
from motive_hooks.layers import resolve_layers
from motive_hooks.lora import inject_peft_lora
from motive_hooks.toy import SmallVideoDenoiser, synthetic_latents

torch.set_num_threads(1)


def _lora_dit(dtype: torch.dtype = torch.float64) -> Tuple[WanMiniDiT, List[Tuple[str, nn.Module]]]:
    model = WanMiniDiT.tiny(seed=1)
    inject_peft_lora(model, model.lora_targets(), r=3, alpha=6.0, init_up_std=0.05, seed=2)
    return model.to(dtype), resolve_layers(model, "lora")


def _count_forwards(model: nn.Module) -> List[int]:
    calls: List[int] = []
    model.register_forward_hook(lambda m, i, o: calls.append(int(i[0].shape[0])))
    return calls


def _per_sample_grads(obj: MotionObjective, model: nn.Module, params: List[torch.Tensor], x: torch.Tensor, masks: Any) -> torch.Tensor:
    rows = []
    for i in range(x.shape[0]):
        loss = obj.per_sample_losses(model, x[i : i + 1], None if masks is None else masks[i : i + 1]).sum()
        rows.append(torch.cat([g.flatten() for g in torch.autograd.grad(loss, params)]))
    return torch.stack(rows)


@pytest.mark.parametrize("name", [DEFAULT_RECIPE, "accel-multi-t"])
def test_stacked_losses_and_gradients_equal_the_looped_ones_in_float64(name: str) -> None:
    model, layers = _lora_dit()
    model.eval()
    params = [m.weight for _, m in layers]
    x = wan_mini_latents(3, frames=4, size=4, seed=4).double()
    masks = torch.rand(3, 4, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    stacked = recipe(name, flow_matching_predict())
    looped = recipe(name, flow_matching_predict(), stack_timesteps=False)
    assert stacked.stacks(model, x) and not looped.stacks(model, x)
    calls = _count_forwards(model)
    ls = stacked.per_sample_losses(model, x, masks)
    assert calls == [3 * len(stacked.timesteps)]  # one forward of B × timesteps clips
    calls.clear()
    ll = looped.per_sample_losses(model, x, masks)
    assert calls == [3] * len(looped.timesteps)
    torch.testing.assert_close(ls, ll, rtol=1e-12, atol=0.0)
    # per-sample gradients of the whole batch's stacked loss (samples do not interact) against
    # each sample alone through the looped path
    g_batch = []
    for i in range(3):
        g_batch.append(torch.cat([g.flatten() for g in torch.autograd.grad(stacked.per_sample_losses(model, x, masks)[i], params)]))
    got = torch.stack(g_batch)
    expect = _per_sample_grads(looped, model, params, x, masks)
    rel = float((got - expect).norm(dim=1).max() / expect.norm(dim=1).min())
    print(f"{name}: stacked vs looped per-sample gradients, float64: max relative error {rel:.1e}")
    assert rel <= 1e-6


def test_stacked_sketch_equals_looped_sketch_and_projected_autograd_gradients() -> None:
    model, layers = _lora_dit()
    x = wan_mini_latents(3, frames=4, size=4, seed=4).double()
    masks = torch.rand(3, 4, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    fast = MotionAttributor(model, layers, flow_matching_predict(), dim=160, seed=5)
    assert fast.objective.name == DEFAULT_RECIPE and fast.objective.stacks(model, x)
    calls = _count_forwards(model)
    raw, _ = fast.raw_sketch(x, masks)
    assert len(calls) == 1
    fast.sketcher.remove()
    slow = MotionAttributor(model, layers, dim=160, seed=5, objectives=[recipe(DEFAULT_RECIPE, flow_matching_predict(), stack_timesteps=False)])
    ref, _ = slow.raw_sketch(x, masks)
    assert len(calls) == 1 + len(fast.objective.timesteps)
    rel = float((raw - ref).norm() / ref.norm())
    assert rel <= 1e-6, rel  # the projection runs in float32 either way
    # and against autograd per-sample adapter gradients (looped objective), projected in float64
    projs, slices = slow.sketcher.projections(), slow.sketcher.layer_slices()
    expect = _per_sample_grads(slow.objective, model, [m.weight for _, m in layers], x, masks)
    worst, off = 0.0, 0
    for name, m in layers:
        n = m.weight.numel()
        g = expect[:, off : off + n].reshape(3, *m.weight.shape)
        off += n
        p_out, p_in = (t.double() for t in projs[name])
        e = torch.einsum("ko,boi,ji->bkj", p_out, g, p_in).reshape(3, -1)
        worst = max(worst, float((raw.double()[:, slices[name]] - e).norm() / e.norm()))
    assert worst <= 3e-5, worst


def test_stacking_composes_with_contrast_and_folded_frame_convolutions() -> None:
    """The toy model folds frames into the batch of its 2-D convolutions ([B·F, C, H, W]); with
    ``contrast`` the batch is interleaved pairs; stacked rows stay attributed to their sample."""
    torch.manual_seed(0)
    model = SmallVideoDenoiser(width=6)  # float32 only (its time features are float32)
    x = synthetic_latents(3, size=6, frames=4, seed=3)
    kw: Any = dict(kind="temporal2", timesteps=(500, 751), contrast=True)
    outs = []
    for stack in (True, False):
        attr = MotionAttributor(model, model.sketch_layers(), dim=64, seed=2, objectives=[MotionObjective(flow_matching_predict(), stack_timesteps=stack, **kw)])
        outs.append(attr.raw_sketch(x, None)[0])
        attr.sketcher.remove()
    rel = float((outs[0] - outs[1]).norm() / outs[1].norm())
    assert rel <= 1e-5, rel  # float32 forward: round-off of the batched convolutions


def test_looped_path_where_stacking_is_not_the_same_computation() -> None:
    model, _ = _lora_dit(torch.float32)
    x = wan_mini_latents(2, frames=3, size=4, seed=4)

    def own_predict(m: nn.Module, batch: Any, t: torch.Tensor, noise: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        s = t[:1].float() / 1000.0  # one timestep for the whole batch, as DiffSynth's scheduler takes it
        return m(((1 - s) * batch + s * noise), s.expand(batch.shape[0])), noise - batch

    assert not recipe(DEFAULT_RECIPE, own_predict).stacks(model, x)  # undeclared predict
    assert recipe(DEFAULT_RECIPE, own_predict, stack_timesteps=True).stacks(model, x)
    assert not recipe(DEFAULT_RECIPE, flow_matching_predict()).stacks(model, {"latents": x})  # not the tensor itself
    assert not recipe("paper", flow_matching_predict()).stacks(model, x)  # one timestep
    bn = nn.Sequential(nn.BatchNorm3d(16, track_running_stats=False), model)
    assert not recipe(DEFAULT_RECIPE, flow_matching_predict()).stacks(bn, x)  # batch statistics
    bn_eval = nn.Sequential(nn.BatchNorm3d(16).eval(), model)
    assert recipe(DEFAULT_RECIPE, flow_matching_predict()).stacks(bn_eval, x)
    # the undeclared predict gives the looped losses, one forward per timestep
    calls = _count_forwards(model)
    a = recipe(DEFAULT_RECIPE, own_predict).per_sample_losses(model, x, None)
    assert len(calls) == 3
    b = recipe(DEFAULT_RECIPE, flow_matching_predict(), stack_timesteps=False).per_sample_losses(model, x, None)
    torch.testing.assert_close(a, b)
