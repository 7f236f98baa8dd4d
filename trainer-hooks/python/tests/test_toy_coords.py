"""``SmallVideoDenoiser(coords=True)``: the position channels are the pixel grid, and the default
model is unchanged by the option's existence."""

from __future__ import annotations

import torch

from motive_hooks.toy import SmallVideoDenoiser


def test_default_has_no_position_input() -> None:
    model = SmallVideoDenoiser(channels=3, width=8)
    assert tuple(model.conv_in.weight.shape) == (8, 3, 3, 3, 3)
    assert not model.coords


def test_coords_equal_a_model_fed_the_grid_by_hand() -> None:
    torch.manual_seed(0)
    b, c, f, h, w = 2, 3, 5, 6, 7
    with_coords = SmallVideoDenoiser(channels=c, width=8, coords=True)
    # the reference: a plain model with two more input channels, fed x and y in [-1, 1] written out here
    plain = SmallVideoDenoiser(channels=c + 2, width=8)
    shared = {k: v for k, v in with_coords.state_dict().items() if not k.startswith("conv_out.")}
    missing, unexpected = plain.load_state_dict(shared, strict=False)
    assert sorted(missing) == ["conv_out.bias", "conv_out.weight"] and not unexpected
    with torch.no_grad():
        plain.conv_out.weight.copy_(torch.cat([with_coords.conv_out.weight, torch.zeros(2, 8, 3, 3, 3)]))
        plain.conv_out.bias.copy_(torch.cat([with_coords.conv_out.bias, torch.zeros(2)]))
    x = torch.randn(b, c, f, h, w)
    xs = torch.tensor([[-1 + 2 * j / (w - 1) for j in range(w)] for _ in range(h)])
    ys = torch.tensor([[-1 + 2 * i / (h - 1) for _ in range(w)] for i in range(h)])
    grid = torch.stack([xs, ys]).view(1, 2, 1, h, w).expand(b, 2, f, h, w)
    t = torch.tensor([0.3, 0.7])
    got = with_coords(x, t)
    want = plain(torch.cat([x, grid], dim=1), t)[:, :c]
    assert torch.allclose(got, want, atol=1e-5)
    # and the output depends on the grid: shifting it changes the prediction
    assert not torch.allclose(got, plain(torch.cat([x, grid.flip(-1)], dim=1), t)[:, :c], atol=1e-3)
