"""The messages a :class:`~motive_hooks.client.MotiveClient` puts on the ``Attach`` stream.

Pure functions: sketch rows and features checked and encoded for the wire (docs/wire.md), query
sets built, and queued rows coalesced into ``SketchBatch`` messages. The client calls them from
the caller's thread (encoding) and from its sender thread (coalescing), under its lock where the
queue is involved; none of them touches a socket or a lock.
"""

from __future__ import annotations

from typing import Deque, List, Optional, Sequence, Union

import numpy as np
import torch

from ._client_state import Queries, Rows
from ._proto import motive_pb2 as pb

__all__ = ["ArrayLike", "encode_rows", "check_features", "query_set", "take_group", "sketch_batch"]

ArrayLike = Union[torch.Tensor, np.ndarray, Sequence[Sequence[float]]]


def encode_rows(sketches: ArrayLike, n: int, dim: int, np_dtype: np.dtype) -> "tuple[bytes, int]":
    """``[n x dim]`` rows as little-endian ``np_dtype`` bytes, and how many rows were non-finite.

    A non-finite row (after the cast: float16 overflows to Inf) is zeroed rather than refused,
    so one bad sample never drops its step's batch; the caller counts it.
    """
    if isinstance(sketches, torch.Tensor):
        arr = sketches.detach().to(device="cpu", dtype=torch.float32).numpy()
    else:
        arr = np.asarray(sketches, dtype=np.float32)
    if arr.shape != (n, dim):
        raise ValueError(f"sketches must be [{n} x {dim}], got {list(arr.shape)}")
    out = arr.astype(np_dtype)
    bad = ~np.isfinite(out).all(axis=1)
    if bad.any():
        out[bad] = 0
    return np.ascontiguousarray(out).tobytes(), int(bad.sum())


def check_features(features: Optional[ArrayLike], n: int, names: Sequence[str]) -> Optional[List[float]]:
    """``[n x len(names)]`` finite motion checks, row-major; ValueError when malformed."""
    if features is None:
        return None
    nf = len(names)
    if nf == 0:
        raise ValueError("features given, but the client was made without feature_names")
    if isinstance(features, torch.Tensor):
        features = features.detach().to("cpu", torch.float64).numpy()
    arr = np.asarray(features, dtype=np.float64)
    if arr.shape != (n, nf):
        raise ValueError(f"features have shape {arr.shape}, expected ({n}, {nf})")
    if not np.isfinite(arr).all():
        raise ValueError("features hold NaN or Inf")
    return [float(v) for v in arr.reshape(-1)]


def query_set(version: int, step: int, ids: List[str], groups: List[str], data: bytes) -> Queries:
    """A query set to queue; ``version`` is provisional until the sender settles it."""
    msg = pb.TrainerMessage(
        queries=pb.QuerySet(version=version, step=max(0, step), query_ids=ids, groups=groups, sketches=data)
    )
    return Queries(msg)


def _joins(head: Rows, nxt: Rows, rows: int, max_rows: int) -> bool:
    """Whether ``nxt`` may travel in the batch that ``head`` starts (now ``rows`` rows long)."""
    if nxt.step != head.step or nxt.lr != head.lr:
        return False
    # A batch carries features for all of its rows or for none.
    if (nxt.features is None) != (head.features is None):
        return False
    # Reports, worker rows (of one snapshot) and sketches travel apart.
    if nxt.deferred != head.deferred or nxt.snapshot_step != head.snapshot_step:
        return False
    if (nxt.job_ids is None) != (head.job_ids is None):
        return False
    return rows + len(nxt.ids) <= max_rows


def take_group(pending: "Deque[Union[Rows, Queries]]", max_rows: int) -> List[Rows]:
    """Takes the rows at the head of ``pending`` that make one batch (at least the head).

    The caller holds the client's lock and has checked that the head is ``Rows``.
    """
    head = pending.popleft()
    assert isinstance(head, Rows)
    group = [head]
    rows = len(head.ids)
    while pending:
        nxt = pending[0]
        if not isinstance(nxt, Rows) or not _joins(head, nxt, rows, max_rows):
            break
        pending.popleft()
        group.append(nxt)
        rows += len(nxt.ids)
    return group


def sketch_batch(seq: int, group: List[Rows]) -> "pb.TrainerMessage":
    """The ``SketchBatch`` numbered ``seq`` carrying ``group``'s rows in order."""
    ids: List[str] = []
    losses: List[float] = []
    have_losses = all(g.losses is not None for g in group)
    features: List[float] = []
    job_ids: List[int] = []
    for g in group:
        ids.extend(g.ids)
        if g.job_ids is not None:
            job_ids.extend(g.job_ids)
        if g.features is not None:
            features.extend(g.features)
        if have_losses and g.losses is not None:
            losses.extend(g.losses)
    return pb.TrainerMessage(
        batch=pb.SketchBatch(
            seq=seq,
            step=group[0].step,
            lr=group[0].lr,
            sample_ids=ids,
            sketches=b"".join(g.data for g in group),
            losses=losses if have_losses else [],
            features=features,
            deferred=group[0].deferred,
            job_ids=job_ids,
            snapshot_step=group[0].snapshot_step,
        )
    )
