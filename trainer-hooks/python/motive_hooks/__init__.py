"""motive-hooks: the PyTorch side of Motive (live motion attribution for video-model fine-tunes).

Public surface: :func:`motion_mask`, :class:`MotionObjective` / :func:`motion_loss`,
:class:`GradientSketcher`, :class:`MotionAttributor`, :class:`MotiveClient`, :class:`MotiveSampler`.
Importing the package has no side effects beyond registering the ``motive.v1`` protobuf messages.
"""

from .attribution import MotionAttributor, isolated_pass
from .client import CLIENT_VERSION, ClientStats, MotiveClient, MotiveClientError
from .loss import MotionObjective, epsilon_predict, flow_matching_predict, motion_loss, seeded_noise
from .mask import flow_magnitude, lucas_kanade_flow, motion_mask
from .sampler import MotiveDistributedSampler, MotiveSampler
from .sketch import PROJECTION_KIND, GradientSketcher, LayerProjection, normalize_sketches

__version__ = CLIENT_VERSION

__all__ = [
    "CLIENT_VERSION",
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
