"""Fidelity of the projected cosines vs the exact (unprojected) train-query gradient cosines."""

from __future__ import annotations

from typing import Dict, List

import numpy as np
import torch

from motive_hooks import MotionAttributor, MotionObjective, flow_matching_predict, isolated_pass, motion_mask
from motive_hooks.toy import SmallVideoDenoiser, synthetic_latents


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    r = np.empty(len(x), dtype=np.float64)
    r[order] = np.arange(len(x), dtype=np.float64)
    for v in np.unique(x):  # average ranks of ties
        idx = np.nonzero(x == v)[0]
        if len(idx) > 1:
            r[idx] = r[idx].mean()
    return r


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = _ranks(a), _ranks(b)
    return float(np.corrcoef(ra, rb)[0, 1])


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a @ b.T).ravel()


def fidelity(ks: List[int], seeds: int = 3, n_train: int = 32, n_query: int = 4) -> Dict[int, float]:
    torch.manual_seed(0)
    model = SmallVideoDenoiser(channels=4, width=16)
    layers = model.sketch_layers()
    predict = flow_matching_predict()
    x = synthetic_latents(n_train + n_query, size=8, frames=8, seed=1)
    masks = torch.stack([motion_mask(c.permute(1, 0, 2, 3)[:, :3], (8, 8, 8)) for c in x])
    objective = MotionObjective(predict)
    mods = dict(model.named_modules())
    params = [p for n in layers for p in mods[n].parameters()]
    exact = []
    with isolated_pass(model, [mods[n] for n in layers]):
        for i in range(x.shape[0]):
            loss = objective.per_sample_losses(model, x[i : i + 1], masks[i : i + 1]).sum()
            g = torch.autograd.grad(loss, params)
            exact.append(torch.cat([t.flatten() for t in g]).double().numpy())
    ex = np.stack(exact)
    exact_cos = _cos(ex[:n_train], ex[n_train:])
    out: Dict[int, float] = {}
    for k in ks:
        vals = []
        for s in range(seeds):
            attr = MotionAttributor(model, layers, predict, dim=k, seed=100 + s, recipe="paper")
            sk, _ = attr.sketch(x, masks)
            attr.sketcher.remove()
            sk_np = sk.double().numpy()
            vals.append(spearman(exact_cos, _cos(sk_np[:n_train], sk_np[n_train:])))
        out[k] = float(np.mean(vals))
    return out


def test_spearman_rises_with_k() -> None:
    rho = fidelity([128, 512, 2048])
    print("fidelity (Spearman of projected vs exact cosines): " + ", ".join(f"k={k}: {v:.3f}" for k, v in rho.items()))
    assert rho[128] < rho[512] < rho[2048]
    assert rho[2048] > 0.9
