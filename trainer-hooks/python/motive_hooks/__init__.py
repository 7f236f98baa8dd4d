"""motive-hooks: the PyTorch side of Motive (live motion attribution for video-model fine-tunes).

Public surface: :func:`motion_mask`, :class:`MotionObjective` / :func:`motion_loss`, the named
recipes (:func:`recipe`), the motion checks (:func:`clip_features`),
:class:`GradientSketcher`, :class:`MotionAttributor`, :class:`MotiveClient`, :class:`MotiveSampler`.
Importing the package has no side effects beyond registering the ``motive.v1`` protobuf messages.
"""

from .attribution import MotionAttributor, isolated_pass
from .client import CLIENT_VERSION, ClientStats, MotiveClient, MotiveClientError
from .loss import MotionObjective, epsilon_predict, flow_matching_predict, motion_loss, seeded_noise
from .mask import flow_magnitude, lucas_kanade_flow, motion_mask
from .motion_check import FEATURE_NAMES as MOTION_CHECKS
from .motion_check import clip_features
from .presets import COMPOSITE_RECIPES, DEFAULT_RECIPE, RECIPES, auto_layers, default_layers, recipe, recipe_objectives
from .sampler import MotiveDistributedSampler, MotiveSampler
from .sketch import PROJECTION_KIND, GradientSketcher, LayerProjection, normalize_sketches

__version__ = CLIENT_VERSION

__all__ = [
    "CLIENT_VERSION",
    "COMPOSITE_RECIPES",
    "DEFAULT_RECIPE",
    "MOTION_CHECKS",
    "RECIPES",
    "auto_layers",
    "default_layers",
    "clip_features",
    "recipe",
    "recipe_objectives",
    "ClientStats",
    "GradientSketcher",
    "LayerProjection",
    "MotionAttributor",
    "MotionObjective",
    "MotiveClient",
    "MotiveClientError",
    "MotiveDistributedSampler",
    "MotiveSampler",
    "PROJECTION_KIND",
    "epsilon_predict",
    "flow_magnitude",
    "flow_matching_predict",
    "isolated_pass",
    "lucas_kanade_flow",
    "motion_loss",
    "motion_mask",
    "normalize_sketches",
    "seeded_noise",
]
