"""Which layers to sketch: names, glob patterns, ``"lora"``, or ``(name, module)`` pairs.

:func:`resolve_layers` turns the ``layers`` argument of :class:`~motive_hooks.MotionAttributor`
into the ordered ``(name, module)`` list the :class:`~motive_hooks.GradientSketcher` hooks:

- an exact module name (``"blocks.3.ffn.2"``): that module;
- a glob pattern over module names (``"blocks.*.self_attn.[qkvo].lora_*.default"``,
  :func:`fnmatch.fnmatchcase`, ``*`` also crosses dots): every sketchable layer
  (``nn.Linear``, ``nn.Conv2d``, ``nn.Conv3d`` with groups = 1) whose name matches, in
  ``named_modules()`` order;
- ``"lora"``: every LoRA adapter factor: PEFT's ``…lora_A.<adapter>`` / ``…lora_B.<adapter>``
  and kohya's ``…lora_down`` / ``…lora_up`` (see :mod:`motive_hooks.lora`);
- ``(name, module)`` pairs or a ``{name: module}`` mapping: taken as given.

A string may be given alone or in a sequence with others; a module selected twice is kept once
(first occurrence). A name or pattern that selects nothing is an error, so a typo never
silently sketches fewer layers.
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase
from typing import Any, Dict, List, Mapping, Tuple, Union

import torch.nn as nn

__all__ = ["LayerSpec", "LORA_NAME", "is_sketchable", "resolve_layers", "unwrap_model"]

LayerSpec = Union[str, Tuple[str, nn.Module], Mapping[str, nn.Module], Any]

#: The last components of a LoRA factor's module name: PEFT (``lora_A.default``) or kohya
#: (``lora_down``).
LORA_NAME = re.compile(r"(^|\.)(lora_[AB]\.[^.]+|lora_down|lora_up)$")

_GLOB = re.compile(r"[*?\[]")


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside ``DistributedDataParallel`` (or ``DataParallel``): the attribution pass
    must run the bare model, since a DDP forward with autograd on arms the gradient all-reduce
    for a backward the pass never runs."""
    while isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        model = model.module
    return model


def is_sketchable(module: nn.Module) -> bool:
    """Whether the sketcher supports the layer (Linear, or Conv2d / Conv3d with groups = 1)."""
    if isinstance(module, nn.Linear):
        return True
    return isinstance(module, (nn.Conv2d, nn.Conv3d)) and module.groups == 1


def resolve_layers(model: nn.Module, layers: LayerSpec) -> List[Tuple[str, nn.Module]]:
    """The ``(name, module)`` pairs ``layers`` selects in ``model`` (see the module doc)."""
    named: Dict[str, nn.Module] = dict(unwrap_model(model).named_modules())
    out: List[Tuple[str, nn.Module]] = []
    seen = set()

    def add(name: str, mod: nn.Module) -> None:
        if id(mod) not in seen:
            seen.add(id(mod))
            out.append((name, mod))

    if isinstance(layers, str):
        items: List[Any] = [layers]
    elif isinstance(layers, Mapping):
        items = list(layers.items())
    elif isinstance(layers, tuple) and len(layers) == 2 and isinstance(layers[1], nn.Module):
        items = [layers]
    else:
        items = list(layers)
    for item in items:
        if isinstance(item, str):
            for name, mod in _select(named, item):
                add(name, mod)
        else:
            name, mod = item
            if not isinstance(mod, nn.Module):
                raise TypeError(f"layer {name!r}: expected an nn.Module, got {type(mod).__name__}")
            add(str(name), mod)
    if not out:
        raise ValueError("layers selects no layer")
    return out


def _select(named: Dict[str, nn.Module], spec: str) -> List[Tuple[str, nn.Module]]:
    if spec == "lora":
        hits = [(n, m) for n, m in named.items() if LORA_NAME.search(n) and is_sketchable(m)]
        if not hits:
            raise ValueError(
                "layers='lora' found no LoRA factor (modules named …lora_A.<adapter>, …lora_B.<adapter>, "
                "…lora_down or …lora_up); with kohya/musubi LoRA the modules live in the network: "
                "resolve them there (resolve_layers(network, 'lora'))"
            )
        return hits
    if _GLOB.search(spec):
        hits = [(n, m) for n, m in named.items() if n and fnmatchcase(n, spec) and is_sketchable(m)]
        if not hits:
            raise ValueError(f"layer pattern {spec!r} matches no Linear / Conv2d / Conv3d module")
        return hits
    if spec not in named:
        raise ValueError(f"no module named {spec!r} in the model")
    return [(spec, named[spec])]
