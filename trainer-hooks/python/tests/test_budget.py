"""``MotionAttributor(budget=…)``: the hook's own time stays within the budget fraction of the
training time (to within one pass), the attributed steps spread over the run, every
micro-batch of a step shares the decision, and without a budget the cadence is ``every`` alone."""

from __future__ import annotations

from typing import Any, List, Tuple

import pytest
import torch

from motive_hooks import MotionAttributor, MotionObjective, flow_matching_predict
from motive_hooks.dit import WanMiniDiT, wan_mini_latents

torch.set_num_threads(1)


class ManualClock:
    """Time that moves only when the test says so (training and the pass are given costs)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _attributor(clock: ManualClock, pass_s: float, **kw: Any) -> MotionAttributor:
    real = flow_matching_predict()

    def predict(model: Any, batch: Any, t: torch.Tensor, noise: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        clock.now += pass_s  # the attribution pass costs pass_s of wall time
        return real(model, batch, t, noise)

    model = WanMiniDiT.tiny(seed=1)
    attr = MotionAttributor(model, "head.head", dim=16, objectives=[MotionObjective(predict, t_fix=500)], motion_check=False, **kw)
    attr.clock = clock
    return attr


@pytest.mark.parametrize("budget, train_s, pass_s", [(0.1, 1.0, 2.0), (0.25, 0.5, 1.0), (0.05, 3.0, 1.0)])
def test_budget_bounds_the_hooks_share_of_the_time(budget: float, train_s: float, pass_s: float) -> None:
    clock = ManualClock()
    attr = _attributor(clock, pass_s, budget=budget)
    x = wan_mini_latents(1, frames=2, size=4, seed=1)
    steps = 200
    attributed: List[int] = []
    for step in range(steps):
        clock.now += train_s  # the training step
        if attr.step(step, 1e-3, ["c"], x, None) is not None:
            attributed.append(step)
    # the training before the first call is not seen: the clock starts there
    train_total, hook_total = (steps - 1) * train_s, len(attributed) * pass_s
    assert attr.train_seconds == pytest.approx(train_total)
    assert attr.hook_seconds == pytest.approx(hook_total)
    # within the budget, and not more than one pass under it (it attributes whenever it may)
    assert hook_total <= budget * train_total + pass_s
    assert hook_total >= budget * train_total - pass_s
    # spread over the run: no gap much longer than the steady-state spacing
    spacing = pass_s / (budget * train_s)
    gaps = [b - a for a, b in zip(attributed, attributed[1:])]
    assert attributed[0] == 0 and max(gaps) <= spacing + 1


def test_micro_batches_of_a_step_share_the_decision_and_every_still_applies() -> None:
    clock = ManualClock()
    attr = _attributor(clock, 1.0, budget=0.5, every=2)
    x = wan_mini_latents(1, frames=2, size=4, seed=1)
    decisions: List[Tuple[int, bool, bool]] = []
    for step in range(40):
        got = []
        for _ in range(2):  # two micro-batches per optimizer step
            clock.now += 0.5
            got.append(attr.step(step, 1e-3, ["c"], x, None) is not None)
        decisions.append((step, got[0], got[1]))
    assert all(a == b for _, a, b in decisions)
    assert all(not a for s, a, _ in decisions if s % 2)
    assert sum(a for _, a, _ in decisions) < 20  # the budget, not only `every`, held some back


def test_without_budget_the_cadence_is_every_alone() -> None:
    clock = ManualClock()
    attr = _attributor(clock, 100.0, every=3)
    x = wan_mini_latents(1, frames=2, size=4, seed=1)
    got = [s for s in range(12) if attr.step(s, 1e-3, ["c"], x, None) is not None]
    assert got == [0, 3, 6, 9]
    with pytest.raises(ValueError, match="budget"):
        _attributor(clock, 1.0, budget=0.0)
