"""MotiveSampler edge cases that need no daemon: any :class:`WeightSource` drives it."""

from __future__ import annotations

from collections import Counter
from typing import Dict

import pytest
import torch

from motive_hooks import MotiveSampler


class StaticWeights:
    """A fixed weight table at a settable version (a :class:`~motive_hooks.sampler.WeightSource`)."""

    def __init__(self, weights: Dict[str, float], version: int = 1) -> None:
        self.table = dict(weights)
        self.version = version

    def weights(self) -> Dict[str, float]:
        return dict(self.table)

    @property
    def weights_version(self) -> int:
        return self.version


def test_without_replacement_zero_weights_come_last() -> None:
    ids = [f"s{i}" for i in range(10)]
    src = StaticWeights({f"s{i}": 0.0 for i in range(6)})  # six quarantined, four left
    sampler = MotiveSampler(ids, src, num_samples=10, replacement=False, seed=3)
    for _ in range(5):
        order = list(sampler)
        assert sorted(order) == list(range(10))  # one epoch: every index exactly once
        assert set(order[:4]) == {6, 7, 8, 9}  # positive weight first


def test_without_replacement_fewer_than_positive() -> None:
    ids = [f"s{i}" for i in range(8)]
    src = StaticWeights({"s0": 0.0, "s1": 0.0})
    sampler = MotiveSampler(ids, src, num_samples=6, replacement=False, seed=0, refresh_every=2)
    for _ in range(5):
        order = list(sampler)
        assert len(set(order)) == 6 and not {0, 1} & set(order)


def test_all_zero_or_nonfinite_weights_fall_back_to_uniform() -> None:
    ids = ["a", "b", "c"]
    for table in ({"a": 0.0, "b": 0.0, "c": 0.0}, {"a": float("nan")}):
        sampler = MotiveSampler(ids, StaticWeights(table), num_samples=3000, seed=1)
        counts = Counter(sampler)
        assert all(800 < counts[i] < 1200 for i in range(3))


def test_new_version_changes_draws_within_an_epoch() -> None:
    ids = ["a", "b"]
    src = StaticWeights({}, version=0)
    sampler = MotiveSampler(ids, src, num_samples=2000, seed=2, refresh_every=100)
    it = iter(sampler)
    head = [next(it) for _ in range(1000)]
    src.table, src.version = {"a": 0.0}, 1
    tail = list(it)
    assert 300 < head.count(0) < 700
    assert tail.count(0) == 0 and len(tail) == 1000
    assert torch.equal(sampler.current_weights(), torch.tensor([0.0, 1.0], dtype=torch.float64))


def test_without_replacement_needs_enough_samples() -> None:
    with pytest.raises(ValueError):
        MotiveSampler(["a"], StaticWeights({}), num_samples=2, replacement=False)
