"""Sampling by the daemon's live sample weights: one process or several ranks, resumable.

The default draw (:class:`MotiveSampler` with ``replacement=None``) is an **epoch**: every clip
is visited once, in a seeded random order, unless the daemon has down-weighted it. A clip's
weight ``w`` (1 unless the daemon lists it; the daemon's policies push ``0 ≤ w ≤ 1``) is its
*inclusion probability*: when its turn comes the clip is taken with probability ``min(1, w)``
(one seeded coin per clip and pass), otherwise its slot is filled by a draw from all clips with
probability ∝ weight. So an epoch keeps its length (``num_samples`` indices, the same number of
steps on every rank), a clip of weight 1 is seen at least once, a quarantined clip (``w = 0``)
never, and over an epoch each clip's expected count is ``num_samples · w / Σw`` — the same
expectation as drawing ∝ weight with replacement, without the ~37 % of clips that such draws miss
in an epoch. ``num_samples`` beyond the dataset size runs several passes, each its own order.

``replacement=True`` (the former default) draws ∝ weight with replacement; ``replacement=False``
draws ∝ weight without replacement (weights order the epoch, zero-weight clips come last).

**Several ranks.** With ``rank`` / ``world_size`` (or :class:`MotiveDistributedSampler`, which
reads them from ``torch.distributed``) all ranks share the seed and the epoch's order, and rank
``r`` owns the slots ``r, r + W, r + 2W, …`` of it (``ceil(num_samples / W)`` each, the order
wrapping round to pad, as ``DistributedSampler`` does). Each rank decides inclusion and fills only
its own slots, from its own client's weights, so ranks that receive a ``WeightUpdate`` at
different moments still never share or lose a clip of the order; nothing is exchanged between
ranks.

**Weights arriving late** change the draws only from the next refresh: the weights are read at
the start of each block of ``refresh_every`` slots and used for the whole block.

**Resume.** ``state_dict()`` holds the epoch, the position in it and the weights of the current
block; after ``load_state_dict`` the next ``iter`` continues the epoch with exactly the indices an
uninterrupted run would have drawn, whatever weights the client holds by then (they take effect
from the next block). ``iter`` continues where the last one stopped (a new epoch starts only when
one was completed; ``set_epoch`` starts a given one). With a prefetching ``DataLoader``
(``num_workers > 0``) the sampler runs ahead of training: pass the number of indices the loop has
actually consumed, ``state_dict(position=...)``.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Dict, Iterator, List, Optional, Protocol, Sequence, Tuple

import torch
from torch.utils.data import Sampler

__all__ = ["WeightSource", "MotiveSampler", "MotiveDistributedSampler"]

_STATE_VERSION = 1


class WeightSource(Protocol):
    """Anything that serves live weights: a :class:`~motive_hooks.MotiveClient` does."""

    def weights(self) -> Dict[str, float]: ...

    @property
    def weights_version(self) -> int: ...


def _seed(*parts: Any) -> int:
    h = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


def _generator(*parts: Any) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(_seed(*parts))
    return g


class MotiveSampler(Sampler[int]):
    """Draws dataset indices by the daemon's weight of each sample (see the module doc).

    Args:
        ids: sample id of every dataset index (``ids[i]`` is the id of ``dataset[i]``).
        client: the weight source (a :class:`~motive_hooks.MotiveClient`); samples it does not
            list have weight 1.
        num_samples: indices per epoch over all ranks (default ``len(ids)``).
        replacement: ``None`` (default): the epoch draw; ``True``: ∝ weight with replacement;
            ``False``: ∝ weight without replacement.
        generator: torch generator for ``replacement=True`` / ``False`` (default: one seeded by
            ``seed``); the epoch draw derives its randomness from ``seed`` and the epoch alone.
        seed: the seed (the same on every rank).
        refresh_every: slots (on this rank) between reads of the weights.
        rank, world_size: this rank and the number of ranks (the epoch draw only).

    If every weight is 0 (or one is not finite) the draw falls back to uniform rather than failing.
    """

    def __init__(
        self,
        ids: Sequence[str],
        client: WeightSource,
        num_samples: Optional[int] = None,
        replacement: Optional[bool] = None,
        generator: Optional[torch.Generator] = None,
        seed: int = 0,
        refresh_every: int = 64,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.ids = [str(i) for i in ids]
        self.client = client
        self.num_samples = len(self.ids) if num_samples is None else int(num_samples)
        self.replacement = replacement
        if replacement is False and self.num_samples > len(self.ids):
            raise ValueError("num_samples exceeds the number of samples without replacement")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
        if world_size > 1 and replacement is not None:
            raise ValueError("several ranks need the epoch draw (replacement=None)")
        self.seed = int(seed)
        if generator is None:
            generator = torch.Generator()
            generator.manual_seed(self.seed)
        self.generator = generator
        self.refresh_every = max(1, int(refresh_every))
        self.rank, self.world_size = int(rank), int(world_size)
        self.epoch = 0
        self._position = 0
        self._version = -1
        self._probs = torch.ones(len(self.ids), dtype=torch.float64)
        self._blocks: Dict[int, torch.Tensor] = {}  # weights used by each recent block
        self._pass: Optional[Tuple[int, int, torch.Tensor, torch.Tensor]] = None

    # -- weights --------------------------------------------------------------------------------

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

    # -- the epoch draw ---------------------------------------------------------------------------

    def __len__(self) -> int:
        if self.replacement is None:
            return math.ceil(self.num_samples / self.world_size)
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Starts epoch ``epoch`` from its beginning at the next ``iter`` (as ``DistributedSampler``)."""
        if int(epoch) != self.epoch or self._position:
            self.epoch = int(epoch)
            self._position = 0
            self._blocks = {}

    def _pass_of(self, p: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """The order and the inclusion coins of pass ``p`` of the current epoch."""
        if self._pass is None or self._pass[:2] != (self.epoch, p):
            g = _generator("motive-sampler", self.seed, self.epoch, p)
            order = torch.randperm(len(self.ids), generator=g)
            coins = torch.rand(len(self.ids), generator=g, dtype=torch.float64)
            self._pass = (self.epoch, p, order, coins)
        return self._pass[2], self._pass[3]

    def _block_weights(self, block: int) -> torch.Tensor:
        w = self._blocks.get(block)
        if w is None:
            w = self.current_weights().clone()
            self._blocks[block] = w
            for old in [b for b in self._blocks if b < block - 8]:
                del self._blocks[old]
        return w

    def _block(self, block: int) -> List[int]:
        """The indices of this rank's slots in block ``block`` of the epoch."""
        n, per = len(self.ids), len(self)
        lo, hi = block * self.refresh_every, min(per, (block + 1) * self.refresh_every)
        w = self._block_weights(block)
        fill = _generator("motive-sampler-fill", self.seed, self.epoch, self.rank, block)
        slots = torch.arange(lo, hi, dtype=torch.long) * self.world_size + self.rank  # in the shared order
        passes = torch.div(slots, n, rounding_mode="floor")
        clips = torch.empty(hi - lo, dtype=torch.long)
        for p in torch.unique(passes).tolist():
            at = passes == p
            order, coins = self._pass_of(int(p))
            clips[at] = order[slots[at] - p * n]
        taken = self._pass_coins(passes, clips) < w[clips]
        left = int((~taken).sum())
        if left:
            clips[~taken] = torch.multinomial(w, left, replacement=True, generator=fill)
        return clips.tolist()

    def _pass_coins(self, passes: torch.Tensor, clips: torch.Tensor) -> torch.Tensor:
        coins = torch.empty(len(clips), dtype=torch.float64)
        for p in torch.unique(passes).tolist():
            at = passes == p
            coins[at] = self._pass_of(int(p))[1][clips[at]]
        return coins

    def __iter__(self) -> Iterator[int]:
        if self.replacement is not None:
            yield from self._iter_weighted()
            return
        per = len(self)
        if self._position >= per:
            self.set_epoch(self.epoch + 1)
        while self._position < per:
            block = self._position // self.refresh_every
            indices = self._block(block)
            skip = self._position - block * self.refresh_every
            for idx in indices[skip:]:
                self._position += 1
                yield idx
        self._blocks = {}

    # -- resume ---------------------------------------------------------------------------------

    def state_dict(self, position: Optional[int] = None) -> Dict[str, Any]:
        """Where the epoch draw stands: epoch, position (default: indices yielded so far in this
        epoch; pass the number the loop consumed when a ``DataLoader`` prefetches) and the
        weights of the block the position is in (sparse: entries other than 1)."""
        if self.replacement is not None:
            raise ValueError("state_dict needs the epoch draw (replacement=None)")
        pos = self._position if position is None else int(position)
        if pos > self._position:
            raise ValueError(f"position {pos} is ahead of the sampler ({self._position})")
        block = pos // self.refresh_every
        state: Dict[str, Any] = {
            "version": _STATE_VERSION,
            "seed": self.seed,
            "rank": self.rank,
            "world_size": self.world_size,
            "num_samples": self.num_samples,
            "refresh_every": self.refresh_every,
            "n": len(self.ids),
            "epoch": self.epoch,
            "position": pos,
        }
        w = self._blocks.get(block)
        if w is not None:
            idx = torch.nonzero(w != 1.0).flatten()
            state["block_weights"] = (idx.clone(), w[idx].clone())
        return state

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Continues the epoch recorded by :meth:`state_dict` (same ids, seed, ranks, sizes)."""
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"unknown sampler state version {state.get('version')}")
        mine = (self.seed, self.rank, self.world_size, self.num_samples, self.refresh_every, len(self.ids))
        theirs = tuple(state[k] for k in ("seed", "rank", "world_size", "num_samples", "refresh_every", "n"))
        if mine != theirs:
            raise ValueError(f"sampler state is for (seed, rank, world_size, num_samples, refresh_every, n) = {theirs}, this sampler is {mine}")
        self.epoch = int(state["epoch"])
        self._position = int(state["position"])
        self._blocks = {}
        if "block_weights" in state:
            idx, vals = state["block_weights"]
            w = torch.ones(len(self.ids), dtype=torch.float64)
            w[idx] = vals.to(torch.float64)
            self._blocks[self._position // self.refresh_every] = w

    # -- the weighted draws ---------------------------------------------------------------------

    def _iter_weighted(self) -> Iterator[int]:
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


class MotiveDistributedSampler(MotiveSampler):
    """:class:`MotiveSampler`'s epoch draw with ``rank`` / ``world_size`` from ``torch.distributed``
    (when not given). Use it as the ``DataLoader``'s sampler on every rank; under accelerate, do not
    hand that loader to ``accelerator.prepare`` (it would shard the rank's part again): see the
    trainer-hooks README."""

    def __init__(
        self,
        ids: Sequence[str],
        client: WeightSource,
        num_samples: Optional[int] = None,
        seed: int = 0,
        refresh_every: int = 64,
        rank: Optional[int] = None,
        world_size: Optional[int] = None,
    ) -> None:
        import torch.distributed as dist

        ready = dist.is_available() and dist.is_initialized()
        if rank is None:
            rank = dist.get_rank() if ready else 0
        if world_size is None:
            world_size = dist.get_world_size() if ready else 1
        super().__init__(ids, client, num_samples, None, None, seed, refresh_every, rank, world_size)
