"""Weighted sampling by the daemon's live sample weights."""

from __future__ import annotations

from typing import Dict, Iterator, Optional, Protocol, Sequence

import torch
from torch.utils.data import Sampler

__all__ = ["WeightSource", "MotiveSampler"]


class WeightSource(Protocol):
    """Anything that serves live weights: a :class:`~motive_hooks.MotiveClient` does."""

    def weights(self) -> Dict[str, float]: ...

    @property
    def weights_version(self) -> int: ...


class MotiveSampler(Sampler[int]):
    """Draws dataset indices with probability proportional to the daemon's weight of each sample.

    Args:
        ids: sample id of every dataset index (``ids[i]`` is the id of ``dataset[i]``).
        client: the weight source (a :class:`~motive_hooks.MotiveClient`); samples it does not
            list have weight 1.
        num_samples: indices drawn per epoch (per ``iter``).
        replacement: draw with replacement (default True).
        generator: torch generator for the draws (default: a fresh one seeded by ``seed``).
        seed: seed of the default generator.
        refresh_every: indices drawn between checks for a newer weight version; a new
            ``WeightUpdate`` changes the draws from the next check on, within the epoch.

    If every weight is 0 the draw falls back to uniform rather than failing.
    """

    def __init__(
        self,
        ids: Sequence[str],
        client: WeightSource,
        num_samples: int,
        replacement: bool = True,
        generator: Optional[torch.Generator] = None,
        seed: int = 0,
        refresh_every: int = 64,
    ) -> None:
        self.ids = [str(i) for i in ids]
        self.client = client
        self.num_samples = int(num_samples)
        self.replacement = bool(replacement)
        if not self.replacement and self.num_samples > len(self.ids):
            raise ValueError("num_samples exceeds the number of samples without replacement")
        if generator is None:
            generator = torch.Generator()
            generator.manual_seed(int(seed))
        self.generator = generator
        self.refresh_every = max(1, int(refresh_every))
        self._version = -1
        self._probs = torch.ones(len(self.ids), dtype=torch.float64)

    def current_weights(self) -> torch.Tensor:
        """The weight vector ``[len(ids)]`` (float64) the next draws use."""
        version = self.client.weights_version
        if version != self._version:
            live = self.client.weights()
            w = torch.tensor([live.get(i, 1.0) for i in self.ids], dtype=torch.float64).clamp_(min=0.0)
            if not torch.isfinite(w).all() or float(w.sum()) <= 0.0:
                w = torch.ones(len(self.ids), dtype=torch.float64)
            self._probs = w
            self._version = version
        return self._probs

    def __iter__(self) -> Iterator[int]:
        drawn = 0
        taken = torch.zeros(len(self.ids), dtype=torch.bool)
        while drawn < self.num_samples:
            n = min(self.refresh_every, self.num_samples - drawn)
            w = self.current_weights()
            if self.replacement:
                idx = torch.multinomial(w, n, replacement=True, generator=self.generator)
            else:
                idx = self._draw_without_replacement(w.masked_fill(taken, 0.0), taken, n)
                taken[idx] = True
            drawn += n
            yield from (int(i) for i in idx)

    def _draw_without_replacement(self, w: torch.Tensor, taken: torch.Tensor, n: int) -> torch.Tensor:
        """``n`` untaken indices: by weight while positive weight is left, then uniformly.

        Samples of weight 0 (e.g. quarantined) come last in an epoch without replacement and
        only when the epoch is longer than the number of samples of positive weight.
        """
        positive = int((w > 0).sum())
        first = min(n, positive)
        parts = []
        if first > 0:
            parts.append(torch.multinomial(w, first, replacement=False, generator=self.generator))
        if n > first:
            rest = (~taken & (w <= 0)).to(torch.float64)
            parts.append(torch.multinomial(rest, n - first, replacement=False, generator=self.generator))
        return torch.cat(parts)

    def __len__(self) -> int:
        return self.num_samples
