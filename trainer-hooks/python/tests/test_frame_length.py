"""Frame-length fix: the same content repeated to 8 and to 16 frames gives the same normalised sketch."""

from __future__ import annotations

import torch
import torch.nn as nn

from motive_hooks import MotionAttributor, flow_matching_predict


class PeriodicNet(nn.Module):
    """Temporal mixing with circular padding: a clip tiled in time stays tiled through the net."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(3, 8, 3, padding=1, padding_mode="circular")
        self.frame = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        b, _, f, h, w = x.shape
        y = torch.tanh(self.conv(x))
        y = y.permute(0, 2, 1, 3, 4).reshape(b * f, 8, h, w)
        y = torch.tanh(self.frame(y)).reshape(b, f, 8, h, w)
        return self.head(y.permute(0, 1, 3, 4, 2)).permute(0, 4, 1, 2, 3)


def test_repeated_content_matches() -> None:
    """The 1/F fix of the paper's loss (a clip repeated in time is the same clip per frame); the
    temporal recipes see the seam where the repeat starts, so the test pins the paper's recipe."""
    torch.manual_seed(0)
    model = PeriodicNet()
    attr = MotionAttributor(model, ["conv", "frame", "head"], flow_matching_predict(), dim=96, seed=5, recipe="paper")
    x8 = torch.randn(1, 3, 8, 6, 6)
    n8 = torch.randn_like(x8)
    m8 = torch.rand(1, 8, 6, 6)
    x16, n16, m16 = x8.repeat(1, 1, 2, 1, 1), n8.repeat(1, 1, 2, 1, 1), m8.repeat(1, 2, 1, 1)
    s8, _ = attr.sketch(x8, m8, noise=n8)
    s16, _ = attr.sketch(x16, m16, noise=n16)
    err = float((s8 - s16).norm() / s8.norm())
    print(f"frame-length fix: 8 vs 16 frames, normalised sketch relative difference {err:.2e}")
    assert err < 1e-4
    # dot-mode consistency: the 1/F in L_mot makes F·(raw sketch) the length-free quantity
    r8, _ = attr.raw_sketch(x8, m8, noise=n8)
    r16, _ = attr.raw_sketch(x16, m16, noise=n16)
    assert torch.allclose(8 * r8, 16 * r16, rtol=1e-4, atol=1e-7)
