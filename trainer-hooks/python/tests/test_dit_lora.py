"""The Wan-style DiT, layer selection (names, globs, "lora") and LoRA sketch exactness against
autograd per-sample gradients of the adapter weights, for PEFT's and kohya's module layouts."""

from __future__ import annotations

from typing import List, Tuple

import pytest
import torch
import torch.nn as nn

from motive_hooks import MotionAttributor, flow_matching_predict
from motive_hooks.dit import WanMiniDiT, wan_mini_latents
from motive_hooks.layers import resolve_layers
from motive_hooks.lora import inject_kohya_lora, inject_peft_lora

torch.set_num_threads(1)


def test_dit_shapes_sizes_and_flow_matching_step() -> None:
    full = WanMiniDiT()
    n = sum(p.numel() for p in full.parameters())
    assert 1_000_000 <= n <= 5_000_000
    model = WanMiniDiT.tiny()
    x = wan_mini_latents(2, frames=3, size=4)
    out = model(x, torch.tensor([0.25, 0.75]))
    assert out.shape == x.shape and torch.isfinite(out).all()
    # the prediction depends on the timestep and on every frame (attention mixes frames)
    assert not torch.allclose(out, model(x, torch.tensor([0.5, 0.5])))
    x2 = x.clone()
    x2[:, :, 2] += 1.0
    assert not torch.allclose(model(x2, torch.tensor([0.25, 0.75]))[:, :, 0], out[:, :, 0])
    names = {n for n, _ in model.named_modules()}
    assert {"blocks.1.self_attn.q", "blocks.1.cross_attn.o", "blocks.0.ffn.0", "blocks.0.ffn.2"} <= names
    # the global RNG is left alone by construction
    state = torch.get_rng_state()
    WanMiniDiT.tiny(seed=3)
    assert torch.equal(state, torch.get_rng_state())


def test_resolve_layers_names_globs_and_errors() -> None:
    model = WanMiniDiT.tiny()
    got = [n for n, _ in resolve_layers(model, "blocks.*.self_attn.[qk]")]
    assert got == ["blocks.0.self_attn.q", "blocks.0.self_attn.k", "blocks.1.self_attn.q", "blocks.1.self_attn.k"]
    # names, patterns and pairs mixed; a module selected twice counts once; norms are not sketchable
    mixed = resolve_layers(model, ["head.head", "blocks.1.ffn.*", ("alias", model.head.head)])
    assert [n for n, _ in mixed] == ["head.head", "blocks.1.ffn.0", "blocks.1.ffn.2"]
    assert [n for n, _ in resolve_layers(model, "patch_embedding")] == ["patch_embedding"]
    with pytest.raises(ValueError, match="no module named"):
        resolve_layers(model, "blocks.9.ffn.0")
    with pytest.raises(ValueError, match="matches no"):
        resolve_layers(model, "blocks.*.norm*")
    with pytest.raises(ValueError, match="no LoRA factor"):
        resolve_layers(model, "lora")


def _peft() -> Tuple[WanMiniDiT, List[Tuple[str, nn.Module]]]:
    model = WanMiniDiT.tiny(seed=1)
    inject_peft_lora(model, model.lora_targets(), r=3, alpha=6.0, init_up_std=0.05, seed=2)
    return model, resolve_layers(model, "lora")


def _kohya() -> Tuple[WanMiniDiT, List[Tuple[str, nn.Module]]]:
    model = WanMiniDiT.tiny(seed=1)
    network = inject_kohya_lora(model, model.lora_targets(), r=3, alpha=6.0, init_up_std=0.05, seed=2)
    return model, resolve_layers(network, "lora")


def test_lora_layouts_name_their_factors_like_the_trainers() -> None:
    model, peft = _peft()
    names = [n for n, _ in peft]
    assert names[:2] == ["blocks.0.self_attn.q.lora_A.default", "blocks.0.self_attn.q.lora_B.default"]
    assert len(names) == 2 * 2 * 10  # 2 blocks × 10 target linears × (A, B)
    assert all(not p.requires_grad for n, p in model.named_parameters() if "lora_" not in n)
    assert [n for n, _ in resolve_layers(model, "blocks.1.ffn.*.lora_B.*")] == [
        "blocks.1.ffn.0.lora_B.default",
        "blocks.1.ffn.2.lora_B.default",
    ]
    _, kohya = _kohya()
    assert [n for n, _ in kohya][:2] == ["lora_unet_blocks_0_self_attn_q.lora_down", "lora_unet_blocks_0_self_attn_q.lora_up"]


@pytest.mark.parametrize("layout", ["peft", "kohya"])
def test_lora_sketch_equals_projected_per_sample_adapter_gradient(layout: str) -> None:
    model, layers = _peft() if layout == "peft" else _kohya()
    attr = MotionAttributor(model, layers, flow_matching_predict(), dim=160, seed=5)
    x = wan_mini_latents(3, frames=3, size=4, seed=4)
    masks = torch.rand(3, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    raw, _ = attr.raw_sketch(x, masks)
    raw = raw.double()
    assert all(p.grad is None for _, m in layers for p in m.parameters())

    projs = attr.sketcher.projections()
    slices = attr.sketcher.layer_slices()
    weights = [m.weight for _, m in layers]
    worst = 0.0
    for i in range(x.shape[0]):
        loss_i = attr.objective.per_sample_losses(model, x[i : i + 1], masks[i : i + 1], None).sum()
        grads = torch.autograd.grad(loss_i, weights)
        for (name, _), g in zip(layers, grads):
            p_out, p_in = (t.double() for t in projs[name])
            expect = (p_out @ g.double() @ p_in.t()).flatten()
            got = raw[i, slices[name]]
            worst = max(worst, float((got - expect).norm() / expect.norm().clamp_min(1e-30)))
    print(f"LoRA ({layout}) sketch exactness: max relative error {worst:.2e}")
    assert worst <= 3e-5
