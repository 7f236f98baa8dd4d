"""The model, attributor and dataset the side-car tests share: importable, so that workers started
with torch.multiprocessing (spawn) build the same ones (a LoRA-adapted Wan-style DiT)."""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from motive_hooks import MotionAttributor
from motive_hooks.dit import WanMiniDiT, wan_mini_latents
from motive_hooks.lora import inject_peft_lora

CLIPS = [f"c{i}" for i in range(6)]
QUERY_IDS = ["q-a", "q-b"]
DIM = 80


def build_model() -> nn.Module:
    model = WanMiniDiT.tiny(seed=1)
    inject_peft_lora(model, model.lora_targets(), r=2, alpha=4.0, init_up_std=0.05, seed=2)
    return model


def build_attributor(model: nn.Module) -> MotionAttributor:
    # the default recipe (three timesteps) and motion checks, a short sketch for speed
    return MotionAttributor(model, dim=DIM, seed=3)


def clips(ids: Sequence[str]) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """The latents of clips ``c<i>`` (query clips ``q-*`` are clips 100, 101); no motion masks."""
    rows: List[torch.Tensor] = []
    for sid in ids:
        seed = 100 + QUERY_IDS.index(sid) if sid in QUERY_IDS else int(sid[1:])
        rows.append(wan_mini_latents(1, frames=3, size=4, seed=seed)[0])
    return torch.stack(rows), None


def train_loss(model: nn.Module, latents: torch.Tensor, step: int) -> torch.Tensor:
    """A flow-matching training loss with noise and times drawn from a per-step seed."""
    gen = torch.Generator().manual_seed(1000 + step)
    noise = torch.randn(latents.shape, generator=gen)
    s = torch.rand(latents.shape[0], generator=gen)
    x_t = (1 - s.view(-1, 1, 1, 1, 1)) * latents + s.view(-1, 1, 1, 1, 1) * noise
    return ((model(x_t, s) - (noise - latents)) ** 2).mean()


def schedule(step: int) -> Tuple[float, List[str]]:
    """Step ``step``'s learning rate and clips (3 of the 6, varying)."""
    lr = 0.05 * (1 + (step % 3))
    return lr, [CLIPS[(step + j * 2) % len(CLIPS)] for j in range(3)]
