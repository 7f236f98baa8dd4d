"""Motion mask (DESIGN §1): mass on what moves, zero for a static clip, custom flow sources."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from motive_hooks import motion_mask
from motive_hooks.toy import moving_square_clip


def test_moving_square_gets_the_mass() -> None:
    clip, path = moving_square_clip(frames=8, size=64, square=12, speed=(3.0, 0.0), start=(8, 20))
    mask = motion_mask(clip, (8, 8, 8))  # 8x spatial compression, like a video VAE
    assert mask.shape == (8, 8, 8) and not torch.isnan(mask).any()
    assert float(mask.min()) >= 0.0 and float(mask.max()) <= 1.0
    # latent cells the square's path touches
    cells = F.adaptive_max_pool2d(path.float()[None, None], (8, 8))[0, 0]
    frac = float((mask * cells).sum() / mask.sum())
    print(f"motion mask: {frac:.3f} of the mass inside the square's path")
    assert frac >= 0.9


def test_moving_square_diagonal_batch_and_temporal_resize() -> None:
    clip, path = moving_square_clip(frames=9, size=64, square=10, speed=(2.0, 2.0), start=(10, 10))
    masks = motion_mask(torch.stack([clip, clip]), (3, 16, 16))
    assert masks.shape == (2, 3, 16, 16)
    cells = F.adaptive_max_pool2d(path.float()[None, None], (16, 16))[0, 0]
    assert float((masks[0] * cells).sum() / masks[0].sum()) >= 0.9
    assert torch.equal(masks[0], masks[1])


def test_static_clip_is_zero_without_nan() -> None:
    frame = torch.rand(1, 3, 32, 32)
    mask = motion_mask(frame.repeat(8, 1, 1, 1), (4, 8, 8))
    assert not torch.isnan(mask).any()
    assert float(mask.abs().max()) == 0.0


def test_precomputed_flow_and_callable() -> None:
    flow = torch.zeros(7, 2, 16, 16)
    flow[:, 0, 4:8, 4:8] = 3.0
    m = motion_mask(None, (8, 4, 4), flow=flow)
    assert m.shape == (8, 4, 4)
    assert float(m[:, 1, 1]. min()) > 0.99 and float(m[:, 3, 3].max()) == 0.0
    calls = []

    def my_flow(frames: torch.Tensor) -> torch.Tensor:
        calls.append(frames.shape)
        return flow

    m2 = motion_mask(torch.zeros(8, 3, 16, 16), (4, 4), flow_fn=my_flow)
    assert calls == [(8, 3, 16, 16)] and torch.allclose(m2, m)
