"""Tables from study JSON files: AUC per family, pooled, for every signal (mean ± std over seeds).

    /usr/bin/python3 examples/motion-bench/analyze.py out/study-dev-0.json out/study-dev-1.json ...
"""

from __future__ import annotations

import json
import statistics
import sys
from typing import Dict, List, Sequence

import torch

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import data as bd  # noqa: E402
from study import auc, fused  # noqa: E402


def signals(r: dict) -> Dict[str, List[float]]:
    """Every signal of one run, low = harmful."""
    out: Dict[str, List[float]] = {}
    checks = torch.tensor(r["checks"])
    for name, s in r["scores"].items():
        out[f"attr:{name}"] = s
        for floor in (0.0, 1.0, 2.0, 3.0):
            out[f"fused:{name}|f{floor:g}"] = fused(torch.tensor(s), checks, floor).tolist()
    for name in ("absratio", "ratio2", "ratio4", "jump2", "lowfrac1"):
        out[f"free:{name}"] = [-f[name] for f in r["feats"]]
    for j, name in enumerate(("accel_ratio", "still_fraction")):
        out[f"check:{name}"] = [-float(v) for v in checks[:, j]]
    out["check:max-z"] = (-torch.stack([_rz(checks[:, j]) for j in range(checks.shape[1])], 1).max(1).values).tolist()
    g = torch.Generator()
    g.manual_seed(int(r["seed"]))
    out["random"] = torch.rand(len(checks), generator=g).tolist()
    return out


def _rz(v: torch.Tensor) -> torch.Tensor:
    from study import robust_z

    return robust_z(v)


def table(runs: Sequence[dict]) -> None:
    per: Dict[str, Dict[str, List[float]]] = {}
    for r in runs:
        kinds, contents = r["kinds"], r["contents"]
        harm = [k for k in sorted(set(kinds)) if k in bd.HARMFUL]
        dec = [k for k in sorted(set(kinds)) if k in bd.DECOYS]
        for sig, v in signals(r).items():
            row = per.setdefault(sig, {})

            def pick(pred) -> List[float]:  # type: ignore[no-untyped-def]
                return [v[i] for i in range(len(v)) if pred(i)]

            clean = pick(lambda i: kinds[i] == "clean")
            for k in harm + dec:
                ref = clean
                if k in bd.INVISIBLE:
                    src = bd.SOURCE[k]
                    row.setdefault(k + "/same", []).append(auc(pick(lambda i: kinds[i] == k), pick(lambda i: kinds[i] == "clean" and contents[i] == src)))
                row.setdefault(k, []).append(auc(pick(lambda i: kinds[i] == k), ref))
            row.setdefault("HARM", []).append(auc(pick(lambda i: kinds[i] in bd.HARMFUL), clean))
            row.setdefault("DECOY", []).append(auc(pick(lambda i: kinds[i] in bd.DECOYS), clean))
            n = len(v)
            order = sorted(range(n), key=lambda i: v[i])[: max(1, n // 10)]
            row.setdefault("P@10%", []).append(sum(1 for i in order if kinds[i] in bd.HARMFUL) / len(order))
    cols = list(next(iter(per.values())).keys())
    print(f"{'signal':34s}" + "".join(f"{c:>13s}" for c in cols))
    for sig, row in per.items():
        cells = []
        for c in cols:
            xs = row[c]
            m = statistics.mean(xs)
            sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
            cells.append(f"{m:6.3f}±{sd:5.3f}")
        print(f"{sig:34s}" + "".join(f"{x:>13s}" for x in cells))


if __name__ == "__main__":
    table([json.load(open(p)) for p in sys.argv[1:]])
