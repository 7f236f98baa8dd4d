"""Named attribution recipes and the default choice of layers to sketch.

A recipe is the objective the hook differentiates (:class:`~motive_hooks.loss.MotionObjective`);
its name goes into the projection fingerprint, so ranks of one run must use the same recipe. The
default recipe and the default layers are the ones that generalised best on the held-out families
of the motion benchmark (docs/results.md); nothing needs copying by hand from a results table.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import torch.nn as nn

from .layers import LORA_NAME
from .loss import MotionObjective, PredictFn

__all__ = ["DEFAULT_RECIPE", "RECIPES", "COMPOSITE_RECIPES", "recipe", "recipe_objectives", "auto_layers", "default_layers", "AUTO_LAYER_COUNT"]

RECIPES: Dict[str, str] = {
    "accel-luma": "second frame differences of the channel-mean prediction error, motion-masked, at t = 500 "
    "and 751 and at t = 250 on the 2×2-pooled error",
    "accel-multi-t": "second frame differences of the prediction error, motion-masked, at t = 500 and 751",
    "temporal": "first frame differences of the prediction error, motion-masked, at t = 751",
    "paper": "the motion-masked denoising loss at t = 751 (the published method)",
    "reverse": "time-reversal contrast: the motion-masked loss of the clip minus that of the clip played "
    "backwards, each against the seeded draw and its reverse, at t = 100 and 500",
    "accel-luma+reverse": "two blocks of one sketch: `accel-luma` and `reverse`",
}
"""The named recipes and what each differentiates."""

COMPOSITE_RECIPES: Dict[str, Tuple[str, ...]] = {"accel-luma+reverse": ("accel-luma", "reverse")}
"""Recipes of several objectives, each sketched as its own block of the concatenated sketch (see
:class:`~motive_hooks.MotionAttributor`): the daemon's score of a clip is the sum of its mean
cosines with each block's queries."""

DEFAULT_RECIPE = "accel-luma"
"""The recipe :class:`~motive_hooks.MotionAttributor` uses unless given ``objectives``."""


def recipe(
    name: str,
    predict: PredictFn,
    frame_dim: int = 2,
    noise_seed: int = 0,
    latents_of: Optional[Callable[[Any], Any]] = None,
    stack_timesteps: Optional[bool] = None,
) -> MotionObjective:
    """The objective of the named recipe (one of :data:`RECIPES`); ``latents_of`` maps a batch that
    is not the latent tensor itself to its latents, ``stack_timesteps`` says whether a recipe
    with several timesteps runs them as one forward (see :class:`MotionObjective`)."""
    common = dict(frame_dim=frame_dim, noise_seed=noise_seed, name=name, latents_of=latents_of, stack_timesteps=stack_timesteps)
    if name == "accel-luma":
        return MotionObjective(predict, kind="temporal2", timesteps=(500, 751, 250), spatial_pool=(1, 1, 2), channel_pool=True, **common)  # type: ignore[arg-type]
    if name == "accel-multi-t":
        return MotionObjective(predict, kind="temporal2", timesteps=(500, 751), **common)  # type: ignore[arg-type]
    if name == "temporal":
        return MotionObjective(predict, kind="temporal", t_fix=751, **common)  # type: ignore[arg-type]
    if name == "paper":
        return MotionObjective(predict, kind="masked", t_fix=751, **common)  # type: ignore[arg-type]
    if name == "reverse":
        common["noise_seed"] = noise_seed + 3  # a draw apart from accel-luma's three
        return MotionObjective(predict, kind="masked", timesteps=(100, 500), reverse=True, **common)  # type: ignore[arg-type]
    if name in COMPOSITE_RECIPES:
        raise ValueError(f"recipe {name!r} has several objectives: use recipe_objectives()")
    raise ValueError(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}")


def recipe_objectives(
    name: str,
    predict: PredictFn,
    frame_dim: int = 2,
    noise_seed: int = 0,
    latents_of: Optional[Callable[[Any], Any]] = None,
    stack_timesteps: Optional[bool] = None,
) -> List[MotionObjective]:
    """The objectives of the named recipe: one for a single recipe, one per block for a
    :data:`COMPOSITE_RECIPES` one (arguments as :func:`recipe`)."""
    parts = COMPOSITE_RECIPES.get(name, (name,))
    return [recipe(p, predict, frame_dim, noise_seed, latents_of, stack_timesteps) for p in parts]


AUTO_LAYER_COUNT = 3
"""How many layers :func:`auto_layers` picks."""

_SKIP_NAME_PARTS = ("embed", "emb", "time", "norm", "modulation", "adaln", "pos")


def auto_layers(model: nn.Module, count: int = AUTO_LAYER_COUNT) -> List[Tuple[str, nn.Module]]:
    """The layers sketched by default: the last ``count`` sketchable layers of the model.

    Sketchable: ``nn.Linear``, ``nn.Conv2d`` and ``nn.Conv3d`` with ``groups == 1``, in the order
    the model registers them (for the usual block stacks, forward order), leaving out layers whose
    name says they embed the timestep, the text or positions, or modulate a norm: their gradient
    says little about one clip's motion. The last layers see the prediction as a whole; the early
    ones see each frame's texture, and their gradients carry appearance (docs/results.md).
    """
    picked: List[Tuple[str, nn.Module]] = []
    for name, mod in model.named_modules():
        if not isinstance(mod, (nn.Linear, nn.Conv2d, nn.Conv3d)):
            continue
        if getattr(mod, "groups", 1) != 1:
            continue
        lowered = name.lower()
        if any(part in lowered for part in _SKIP_NAME_PARTS):
            continue
        picked.append((name, mod))
    if not picked:
        raise ValueError("the model has no nn.Linear / nn.Conv2d / nn.Conv3d layer to sketch; pass layers=")
    return picked[-count:]


def default_layers(model: nn.Module) -> Union[str, List[Tuple[str, nn.Module]]]:
    """What :class:`~motive_hooks.MotionAttributor` sketches when given no ``layers``: ``"lora"``
    when the model holds LoRA adapter factors (a LoRA fine-tune trains only those), else
    :func:`auto_layers`."""
    if any(LORA_NAME.search(name) for name, _ in model.named_modules()):
        return "lora"
    return auto_layers(model)
