"""Candidate motion checks on the development split, without a model: AUC per family of each
candidate statistic, on the clips as the benchmark's latents and on other latent spaces the hook
may be given (full resolution, 16 mixed channels at another scale and offset), so that a check is
chosen for what generalises. Development split only.

    /usr/bin/python3 examples/motion-bench/checks_study.py 0 1 2
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from typing import Dict, List

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "trainer-hooks", "python"))

import data as bd  # noqa: E402
import features as bf  # noqa: E402
from study import auc  # noqa: E402
from motive_hooks import motion_check as mc  # noqa: E402

torch.set_num_threads(1)


def views(frames: torch.Tensor, mix: torch.Tensor, bias: torch.Tensor) -> Dict[str, torch.Tensor]:
    """One clip ``[F, 3, H, W]`` in [0, 1] as latents ``[C, F, h, w]`` of several kinds."""
    lat = bd.to_latent(frames)
    full = (frames * 2 - 1).permute(1, 0, 2, 3).contiguous()
    mixed = torch.einsum("oc,cfhw->ofhw", mix, lat) + bias.view(-1, 1, 1, 1)
    return {"latent": lat, "full": full, "mix16": mixed}


VIEWS = os.environ.get("VIEWS", "latent,full,mix16").split(",")


def main(seeds: List[int]) -> None:
    gen = torch.Generator()
    gen.manual_seed(7)
    mix = torch.randn(16, 3, generator=gen) * 2.5
    bias = torch.randn(16, generator=gen) * 3
    rows = []
    cost: Dict[str, List[float]] = {}
    for seed in seeds:
        clips = bd.make_set(bd.training_counts(bd.DEV), 100 + seed, f"dev{seed}", bd.DEV)
        kinds = [c.kind for c in clips]
        vals: Dict[str, Dict[str, List[float]]] = {}
        for c in clips:
            for vname, x in views(c.frames, mix, bias).items():
                if vname not in VIEWS:
                    continue
                t0 = time.perf_counter()
                feats = mc.clip_features(x.unsqueeze(0))[0].tolist()
                cost.setdefault(vname, []).append(time.perf_counter() - t0)
                for j, name in enumerate(mc.FEATURE_NAMES):
                    vals.setdefault(vname, {}).setdefault(name, []).append(feats[j])
                vals[vname].setdefault("absratio", []).append(bf.baseline_features(x)["absratio"])
        rows.append({"seed": seed, "kinds": kinds, "vals": vals})
    os.makedirs(os.path.join(HERE, "out"), exist_ok=True)
    with open(os.path.join(HERE, "out", "checks-dev.json"), "w") as f:
        json.dump(rows, f)
    fams = [k for k in bd.DEV.harmful] + ["harmful", "decoys"] + list(bd.DEV.decoys)
    print("| view | check | " + " | ".join(fams) + " |")
    for vname in rows[0]["vals"]:
        for name in rows[0]["vals"][vname]:
            cells = []
            for fam in fams:
                a = []
                for r in rows:
                    v = r["vals"][vname][name]
                    ks = r["kinds"]
                    pred = (lambda k: k in bd.HARMFUL) if fam == "harmful" else (lambda k: k in bd.DECOYS) if fam == "decoys" else (lambda k, fam=fam: k == fam)
                    a.append(auc([-v[i] for i in range(len(v)) if pred(ks[i])], [-v[i] for i in range(len(v)) if ks[i] == "clean"]))
                cells.append(f"{statistics.mean(a):.2f}")
            print(f"| {vname} | {name} | " + " | ".join(cells) + " |")
    load = os.getloadavg()
    for vname, ts in cost.items():
        print(f"clip_features, {vname}: {1000 * statistics.median(ts):.1f} ms per clip (median of {len(ts)}; load average {load[0]:.1f} / {load[1]:.1f}, 1 thread)")


if __name__ == "__main__":
    main([int(s) for s in sys.argv[1:]] or [0])
