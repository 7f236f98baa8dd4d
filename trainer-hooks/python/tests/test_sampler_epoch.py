"""The sampler's epoch draw: every clip once unless down-weighted, expected counts ∝ weight,
ranks owning disjoint parts of one shared order, late weights from the next refresh only, and
bit-for-bit resume from ``state_dict``."""

from __future__ import annotations

from collections import Counter
from typing import Dict, List

import pytest
import torch

from motive_hooks.sampler import MotiveDistributedSampler, MotiveSampler


class Weights:
    """A weight table at a settable version (a :class:`~motive_hooks.sampler.WeightSource`)."""

    def __init__(self, table: Dict[str, float], version: int = 1) -> None:
        self.table, self.version = dict(table), version

    def weights(self) -> Dict[str, float]:
        return dict(self.table)

    @property
    def weights_version(self) -> int:
        return self.version


IDS = [f"c{i}" for i in range(40)]


def test_default_epoch_sees_every_clip_once() -> None:
    sampler = MotiveSampler(IDS, Weights({}))
    first, second = list(sampler), list(sampler)
    assert sorted(first) == list(range(40)) and sorted(second) == list(range(40))
    assert first != second and len(sampler) == 40
    # the former default misses about a third of the clips in an epoch
    old = set(MotiveSampler(IDS, Weights({}), replacement=True, seed=1))
    assert len(old) < 34


def test_down_weighted_clips_are_included_with_their_weight() -> None:
    table = {"c0": 0.0, "c1": 0.0, "c2": 0.25, "c3": 0.25, "c4": 0.5}
    sampler = MotiveSampler(IDS, Weights(table), seed=4)
    epochs = 400
    counts: Counter = Counter()
    for _ in range(epochs):
        order = list(sampler)
        assert len(order) == 40 and {0, 1}.isdisjoint(order)
        assert set(range(5, 40)) <= set(order)  # weight 1: at least once every epoch
        counts.update(order)
    w = torch.tensor([table.get(i, 1.0) for i in IDS], dtype=torch.float64)
    expected = epochs * 40 * w / w.sum()  # E[count] = num_samples · w / Σw
    for i in (2, 3, 4, 10, 30):
        sd = float(expected[i]) ** 0.5
        assert abs(counts[i] - float(expected[i])) < 5 * sd + 2, (i, counts[i], float(expected[i]))


def test_ranks_own_disjoint_parts_of_one_order() -> None:
    src = Weights({})
    parts = [MotiveSampler(IDS, src, seed=3, rank=r, world_size=3) for r in range(3)]
    got = [list(p) for p in parts]
    assert [len(g) for g in got] == [14, 14, 14]  # ceil(40 / 3), padded by wrapping round
    flat = [i for g in got for i in g]
    assert set(flat) == set(range(40)) and len(flat) == 42
    # the same slots as one process's order, dealt round-robin
    single = []
    one = MotiveSampler(IDS, src, seed=3, num_samples=42)
    single = list(one)
    assert all(got[r] == single[r::3] for r in range(3))
    # a rank that sees a down-weighting earlier never takes another rank's clip of the order
    late = MotiveSampler(IDS, Weights({"c5": 0.0, "c6": 0.0}), seed=3, rank=1, world_size=3)
    mine = list(late)
    assert {5, 6}.isdisjoint(mine)
    kept = [i for i, j in zip(mine, got[1]) if i == j]
    assert len(kept) >= len(got[1]) - 2
    with pytest.raises(ValueError):
        MotiveSampler(IDS, src, rank=2, world_size=2)
    with pytest.raises(ValueError):
        MotiveSampler(IDS, src, rank=0, world_size=2, replacement=True)
    assert MotiveDistributedSampler(IDS, src).world_size == 1  # no process group: one rank


def _run(arrive_at: int, stop_at: int = -1) -> List[int]:
    """200 slots, refresh every 64; the weights change when ``arrive_at`` indices were drawn. At
    ``stop_at`` the run saves its state and a fresh sampler (a restarted process with its own
    client, holding whatever weights have arrived by then) continues from it."""
    src = Weights({}, version=0)
    sampler = MotiveSampler(IDS, src, num_samples=200, seed=9, refresh_every=64)
    it = iter(sampler)
    out: List[int] = []
    while len(out) < 200:
        out.append(next(it))
        if len(out) == arrive_at:
            src.table, src.version = {f"c{i}": 0.0 for i in range(20)}, 1
        if len(out) == stop_at:
            state = sampler.state_dict()
            src = Weights(src.table, src.version)
            sampler = MotiveSampler(IDS, src, num_samples=200, seed=9, refresh_every=64)
            sampler.load_state_dict(state)
            it = iter(sampler)
    return out


def test_late_weights_change_draws_from_the_next_refresh_only() -> None:
    never = _run(arrive_at=10**9)
    late = _run(arrive_at=150)
    assert late[:192] == never[:192]  # the block that was under way keeps its weights
    assert late[192:] != never[192:] and all(i >= 20 for i in late[192:])


@pytest.mark.parametrize("stop", [30, 64, 150, 170, 199])
def test_resume_is_bit_for_bit(stop: int) -> None:
    uninterrupted = _run(arrive_at=150)
    assert _run(arrive_at=150, stop_at=stop) == uninterrupted


def test_resume_refuses_a_different_sampler() -> None:
    a = MotiveSampler(IDS, Weights({}), seed=1)
    it = iter(a)
    next(it)
    state = a.state_dict()
    with pytest.raises(ValueError, match="sampler state is for"):
        MotiveSampler(IDS, Weights({}), seed=2).load_state_dict(state)
    with pytest.raises(ValueError, match="ahead"):
        a.state_dict(position=5)
