"""bf16: under torch.autocast the sketch algebra runs in float32 (against a float64 projection of
the same bf16 activations and output gradients), bf16 scores rank like fp32 ones on the DiT, and
fp16 parameters are refused."""

from __future__ import annotations

from typing import Dict, List, Tuple

import pytest
import torch

from motive_hooks import MotionAttributor, flow_matching_predict
from motive_hooks.dit import WanMiniDiT, wan_mini_latents
from motive_hooks.lora import inject_peft_lora

torch.set_num_threads(1)

BF16 = torch.autocast("cpu", dtype=torch.bfloat16)


def _lora_dit() -> WanMiniDiT:
    model = WanMiniDiT.tiny(seed=1)
    inject_peft_lora(model, model.lora_targets(), r=4, init_up_std=0.02, seed=2)
    return model


def _spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    def rank(x: torch.Tensor) -> torch.Tensor:
        r = torch.empty_like(x, dtype=torch.float64)
        r[x.argsort()] = torch.arange(len(x), dtype=torch.float64)
        return r - r.mean()

    ra, rb = rank(a), rank(b)
    return float(ra @ rb / (ra.norm() * rb.norm()))


def test_autocast_bf16_projection_is_float32() -> None:
    model = _lora_dit()
    attr = MotionAttributor(model, ["blocks.*.ffn.*.lora_*.default", "blocks.1.self_attn.o.lora_B.default"], flow_matching_predict(), dim=96, recipe="paper")
    layers = attr.sketcher._modules
    x = wan_mini_latents(3, seed=5)
    with BF16:
        raw, _ = attr.raw_sketch(x, None)

    # reference: the same bf16 forward and backward, the activations and output gradients taken
    # by plain hooks, the per-sample gradient and its projection formed in float64
    acts: Dict[str, torch.Tensor] = {}
    deltas: Dict[str, torch.Tensor] = {}
    handles = []
    for name, mod in layers:

        def fwd(m: torch.nn.Module, inp: Tuple[torch.Tensor, ...], out: torch.Tensor, name: str = name) -> None:
            acts[name] = inp[0].detach()
            out.register_hook(lambda g: deltas.__setitem__(name, g))

        handles.append(mod.register_forward_hook(fwd))
    with BF16:
        losses = attr.objective.per_sample_losses(model, x, None, None)
        losses.sum().backward()
    for h in handles:
        h.remove()
    assert all(d.dtype == torch.bfloat16 for d in deltas.values())
    assert any(a.dtype == torch.bfloat16 for a in acts.values())
    projs = attr.sketcher.projections()
    slices = attr.sketcher.layer_slices()
    worst = 0.0
    for name, _ in layers:
        a = acts[name].double().reshape(3, -1, acts[name].shape[-1])
        d = deltas[name].double().reshape(3, -1, deltas[name].shape[-1])
        p_out, p_in = (t.double() for t in projs[name])
        expect = torch.einsum("ko,bto,bti,ji->bkj", p_out, d, a, p_in).reshape(3, -1)
        got = raw[:, slices[name]].double()
        worst = max(worst, float((got - expect).norm() / expect.norm()))
    print(f"bf16 autocast: float32 sketch vs float64 projection of the bf16 tensors: {worst:.2e}")
    assert worst <= 1e-5


def test_bf16_scores_rank_like_fp32() -> None:
    model = _lora_dit()
    attr = MotionAttributor(model, "lora", flow_matching_predict(), dim=256, recipe="paper")
    train = wan_mini_latents(24, seed=3)
    queries = wan_mini_latents(3, seed=9)

    def scores(bf16: bool) -> torch.Tensor:
        ctx = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)
        with ctx:
            s, _ = attr.sketch(train, None)
            q, _ = attr.sketch(queries, None, query=True)
        return (s @ q.t()).flatten().double()

    fp32, bf16 = scores(False), scores(True)
    rho = _spearman(fp32, bf16)
    print(f"Spearman bf16 autocast vs fp32 scores (tiny DiT, LoRA): {rho:.4f}")
    assert rho >= 0.98


def test_fp16_parameters_are_refused() -> None:
    model = _lora_dit().half()
    with pytest.raises(ValueError, match="float16 parameters"):
        MotionAttributor(model, "lora", flow_matching_predict(), dim=64)
    # bf16 parameters are accepted
    MotionAttributor(_lora_dit().to(torch.bfloat16), "lora", flow_matching_predict(), dim=64)


def test_fp16_output_gradients_warn() -> None:
    lin = torch.nn.Linear(4, 3)
    from motive_hooks import GradientSketcher

    sk = GradientSketcher({"lin": lin}, dim=4)
    x = torch.randn(2, 5, 4)
    with sk.capture():
        out = lin(x)
    half = out.half()  # an fp16 autocast region's output, as on CUDA
    losses: List[torch.Tensor] = [(half[i].float() ** 2).mean() for i in range(2)]
    sk._captures["lin"].outputs = [half]
    with pytest.warns(RuntimeWarning, match="float16"):
        sk.sketch(torch.stack(losses))
