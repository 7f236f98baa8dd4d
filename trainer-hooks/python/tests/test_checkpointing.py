"""Activation checkpointing re-runs each block's forward during the backward, so the layer hooks
fire twice: the sketches must equal those of the run without checkpointing, for reentrant and
non-reentrant checkpointing, and the training step's gradients must be left as they were."""

from __future__ import annotations

from typing import List

import pytest
import torch

from motive_hooks import MotionAttributor, flow_matching_predict
from motive_hooks.dit import WanMiniDiT, wan_mini_latents
from motive_hooks.lora import inject_kohya_lora, inject_peft_lora

torch.set_num_threads(1)

MODES = ["non_reentrant", "reentrant"]


@pytest.mark.parametrize("setup", ["peft-lora", "kohya-lora", "full-linears"])
def test_sketches_identical_with_checkpointing(setup: str) -> None:
    model = WanMiniDiT.tiny(seed=1)
    if setup == "peft-lora":
        inject_peft_lora(model, model.lora_targets(), r=3, init_up_std=0.05)
        layers = "lora"
    elif setup == "kohya-lora":
        net = inject_kohya_lora(model, model.lora_targets(), r=3, init_up_std=0.05)
        layers = [(n, m) for n, m in net.named_modules() if n.endswith(("lora_down", "lora_up"))]
    else:  # linears inside the checkpointed blocks and the head outside them
        layers = ["blocks.*.self_attn.[qo]", "blocks.1.ffn.*", "head.head"]
    attr = MotionAttributor(model, layers, flow_matching_predict(), dim=128, recipe="paper")
    x = wan_mini_latents(3, seed=2)
    masks = torch.rand(3, 3, 4, 4, generator=torch.Generator().manual_seed(0))

    calls: List[int] = []
    model.blocks[0].self_attn.o.register_forward_hook(lambda m, i, o: calls.append(1))
    ref, _ = attr.raw_sketch(x, masks)
    plain_calls = len(calls)
    for mode in MODES:
        model.gradient_checkpointing = mode
        calls.clear()
        got, _ = attr.raw_sketch(x, masks)
        assert len(calls) == 2 * plain_calls  # the block's forward ran again in the backward
        assert torch.equal(got, ref), f"{setup} / {mode}: max diff {(got - ref).abs().max():.3e}"
    model.gradient_checkpointing = None


@pytest.mark.parametrize("mode", MODES)
def test_training_gradients_untouched_under_checkpointing(mode: str) -> None:
    x = wan_mini_latents(2, seed=3)
    s = torch.tensor([0.3, 0.8])
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(4))
    grads = []
    for with_hook in (False, True):
        model = WanMiniDiT.tiny(seed=1)
        inject_peft_lora(model, model.lora_targets(), r=3, init_up_std=0.05)
        model.gradient_checkpointing = mode
        model.train()
        attr = MotionAttributor(model, "lora", flow_matching_predict(), dim=64, recipe="paper")
        xs = (1 - s.view(-1, 1, 1, 1, 1)) * x + s.view(-1, 1, 1, 1, 1) * noise
        loss = ((model(xs, s) - (noise - x)) ** 2).mean()
        loss.backward()
        before = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        if with_hook:
            attr.step(0, 1e-3, ["a", "b"], x, None)
        after = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
        assert before.keys() == after.keys() and len(before) > 0
        assert all(torch.equal(before[n], after[n]) for n in before)
        assert model.training
        grads.append(before)
    assert all(torch.equal(grads[0][n], grads[1][n]) for n in grads[0])
