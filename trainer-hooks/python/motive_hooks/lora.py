"""The two LoRA module layouts the video trainers use, reproduced in plain torch.

- **PEFT** (DiffSynth-Studio, diffusers, finetrainers): the target ``nn.Linear`` is replaced by a
  wrapper holding the frozen ``base_layer`` and, per adapter, ``lora_A[adapter]`` (``in → r``)
  and ``lora_B[adapter]`` (``r → out``) in ``nn.ModuleDict`` s; ``y = base(x) + B(A(drop(x)))·α/r``.
  Module names: ``blocks.0.self_attn.q.lora_A.default``.
- **kohya / musubi-tuner**: a separate network module holds one ``LoRAModule`` per target, named
  after the target's path with dots as underscores (``lora_unet_blocks_0_self_attn_q``), with
  ``lora_down`` (``in → r``) and ``lora_up`` (``r → out``) children; the target's ``forward`` is
  replaced by ``org_forward(x) + up(down(x))·multiplier·α/r``. The adapters are not children of
  the transformer: resolve them on the network (``resolve_layers(network, "lora")``).

:func:`inject_peft_lora` and :func:`inject_kohya_lora` apply them to any model; the real
``peft`` package produces the same names and is used the same way when installed.
"""

from __future__ import annotations

import math
from fnmatch import fnmatchcase
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn as nn

__all__ = ["PeftLoraLinear", "KohyaLoRAModule", "KohyaLoRANetwork", "inject_peft_lora", "inject_kohya_lora"]


def _targets(model: nn.Module, patterns: Sequence[str]) -> List[Tuple[str, nn.Linear]]:
    found = [
        (n, m)
        for n, m in model.named_modules()
        if isinstance(m, nn.Linear) and any(fnmatchcase(n, p) for p in patterns)
    ]
    if not found:
        raise ValueError(f"no nn.Linear matches {list(patterns)}")
    return found


def _init_pair(down: nn.Linear, up: nn.Linear, init_up_std: float, gen: torch.Generator) -> None:
    with torch.no_grad():
        bound = 1.0 / math.sqrt(down.in_features)
        down.weight.copy_((torch.rand(down.weight.shape, generator=gen) * 2 - 1) * bound)
        up.weight.copy_(torch.randn(up.weight.shape, generator=gen) * init_up_std)


class PeftLoraLinear(nn.Module):
    """PEFT's ``lora.Linear`` layout: ``base_layer``, ``lora_A`` / ``lora_B`` / ``lora_dropout``
    ModuleDicts keyed by adapter name, ``scaling[adapter] = alpha / r``."""

    def __init__(self, base: nn.Linear, r: int, alpha: float, adapter: str = "default", dropout: float = 0.0) -> None:
        super().__init__()
        self.base_layer = base
        self.lora_A = nn.ModuleDict({adapter: nn.Linear(base.in_features, r, bias=False)})
        self.lora_B = nn.ModuleDict({adapter: nn.Linear(r, base.out_features, bias=False)})
        self.lora_dropout = nn.ModuleDict({adapter: nn.Dropout(dropout) if dropout > 0 else nn.Identity()})
        self.scaling: Dict[str, float] = {adapter: alpha / r}
        self.active_adapter = adapter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.active_adapter
        lora = self.lora_B[a](self.lora_A[a](self.lora_dropout[a](x)))
        return self.base_layer(x) + lora * self.scaling[a]


def inject_peft_lora(
    model: nn.Module,
    patterns: Sequence[str],
    r: int = 4,
    alpha: float = 4.0,
    adapter: str = "default",
    init_up_std: float = 0.0,
    seed: int = 0,
) -> List[str]:
    """Wraps every ``nn.Linear`` whose name matches a glob pattern, freezes the rest of the model.

    ``init_up_std = 0`` is PEFT's initialisation (``lora_B`` zero); tests use a small positive
    value so both factors get non-zero gradients. Returns the wrapped module names.
    """
    gen = torch.Generator()
    gen.manual_seed(seed)
    for p in model.parameters():
        p.requires_grad_(False)
    names = []
    for name, lin in _targets(model, patterns):
        wrapper = PeftLoraLinear(lin, r, alpha, adapter)
        _init_pair(wrapper.lora_A[adapter], wrapper.lora_B[adapter], init_up_std, gen)
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, wrapper)
        names.append(name)
    return names


class KohyaLoRAModule(nn.Module):
    """kohya's ``LoRAModule``: ``lora_down`` / ``lora_up`` beside the frozen original linear,
    whose ``forward`` it replaces (``apply_to``)."""

    def __init__(self, lora_name: str, org: nn.Linear, r: int, alpha: float, multiplier: float = 1.0) -> None:
        super().__init__()
        self.lora_name = lora_name
        self.lora_down = nn.Linear(org.in_features, r, bias=False)
        self.lora_up = nn.Linear(r, org.out_features, bias=False)
        self.scale = alpha / r
        self.multiplier = multiplier
        self.org_module = [org]  # a list, so the original is not registered as a child

    def apply_to(self) -> None:
        org = self.org_module[0]
        self.org_forward = org.forward
        org.forward = self.forward  # type: ignore[method-assign]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.org_forward(x) + self.lora_up(self.lora_down(x)) * self.multiplier * self.scale


class KohyaLoRANetwork(nn.Module):
    """kohya's ``LoRANetwork``: the LoRA modules as its own children, by ``lora_name``."""

    def __init__(self, loras: Sequence[KohyaLoRAModule]) -> None:
        super().__init__()
        self.unet_loras = list(loras)
        for lora in loras:
            self.add_module(lora.lora_name, lora)


def inject_kohya_lora(
    model: nn.Module,
    patterns: Sequence[str],
    r: int = 4,
    alpha: float = 4.0,
    prefix: str = "lora_unet",
    init_up_std: float = 0.0,
    seed: int = 0,
) -> KohyaLoRANetwork:
    """Builds the network for the matching linears, applies it, freezes the model; returns it."""
    gen = torch.Generator()
    gen.manual_seed(seed)
    for p in model.parameters():
        p.requires_grad_(False)
    loras = []
    for name, lin in _targets(model, patterns):
        lora = KohyaLoRAModule((prefix + "." + name).replace(".", "_"), lin, r, alpha)
        _init_pair(lora.lora_down, lora.lora_up, init_up_std, gen)
        lora.apply_to()
        loras.append(lora)
    return KohyaLoRANetwork(loras)
