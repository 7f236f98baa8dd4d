"""The training-loop hook: motion-loss sketches of each batch and of the queries, streamed live.

:class:`MotionAttributor` runs an *attribution pass* next to the training step: a second forward
of the batch at ``t_fix`` with the seeded noise, the motion loss per sample, and the sketch
backward. With several objectives (``objectives=[...]``) each one is sketched with the same
projection, L2-normalised, and the rows are concatenated (scaled by ``1/sqrt(n)``, so the row stays
unit-norm); each query is sent once per objective, non-zero only in that objective's block, in a
query group named after the objective. The daemon's cosine score of a clip is then the sum over
objectives of its mean cosine with that objective's queries, and the per-query sums
(``querySums``) keep each objective's evidence apart for rank or vote combinations.

The pass leaves the training step as it was: the model's train/eval flags, parameters'
``requires_grad`` and ``.grad``, the optimizer and the global (CPU and CUDA) RNG states are
restored or untouched.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, List, Optional, Sequence, Tuple

import hashlib
import math
import time

import torch
import torch.nn as nn

from .client import MotiveClient
from .layers import LayerSpec, resolve_layers, unwrap_model
from .loss import MotionObjective, PredictFn, flow_matching_predict
from .motion_check import FEATURE_NAMES, clip_features
from .presets import DEFAULT_RECIPE, default_layers
from .presets import recipe_objectives
from .reversal_check import REVERSAL_FEATURE, reversal_check, reversal_terms
from .sketch import GradientSketcher, normalize_sketches

__all__ = ["MotionAttributor", "SketchIdentity", "isolated_pass"]


class SketchIdentity:
    """The projection identity a composite (several-objective) sketch announces in ``Hello``.

    Duck-types the attributes :class:`MotiveClient` reads from a sketcher: ``dim`` (the wire sketch
    length, objectives × per-objective dim), ``seed``, ``kind`` and ``fingerprint`` (the
    sketcher's fingerprint hashed with the ordered objective names, so runs with different
    objectives are refused as incompatible).
    """

    def __init__(self, sketcher: GradientSketcher, names: Sequence[str]) -> None:
        self.dim = sketcher.dim * len(names)
        self.seed = sketcher.seed
        self.kind = sketcher.kind + "+concat"
        blob = (sketcher.fingerprint + "|" + "|".join(names)).encode()
        self.fingerprint = hashlib.sha256(blob).hexdigest()[:32]


@contextmanager
def isolated_pass(model: nn.Module, keep: Sequence[nn.Module] = (), freeze_others: bool = True) -> Iterator[None]:
    """Eval mode, frozen non-``keep`` parameters and saved RNG state for the length of a block.

    Freezing the parameters outside the sketched layers means autograd builds the graph only from
    the first sketched layer on, so the attribution backward is shorter than a training backward.
    Everything is restored on exit, also after an exception.
    """
    modes = [(m, m.training) for m in model.modules()]
    frozen: List[torch.nn.Parameter] = []
    if freeze_others:
        keep_ids = {id(p) for m in keep for p in m.parameters()}
        for p in model.parameters():
            if p.requires_grad and id(p) not in keep_ids:
                frozen.append(p)
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    try:
        model.eval()
        for p in frozen:
            p.requires_grad_(False)
        yield
    finally:
        for p in frozen:
            p.requires_grad_(True)
        for m, mode in modes:
            m.training = mode
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)


class MotionAttributor:
    """Sketches training batches and query clips with the motion loss and streams them.

    Args:
        model: the model being trained (the attribution pass calls it through ``predict``).
        layers: the layers to sketch: names in ``model.named_modules()``, glob patterns over
            them, ``"lora"`` (every LoRA adapter factor), ``(name, module)`` pairs, or a mapping
            (see :func:`motive_hooks.layers.resolve_layers`). Default (None):
            :func:`~motive_hooks.presets.default_layers`: the LoRA factors when the model has
            adapters, else its last three linear or convolution layers.
        predict: ``predict(model, batch, t, noise) -> (pred, target)`` (see :mod:`motive_hooks.loss`);
            default :func:`~motive_hooks.loss.flow_matching_predict` (rectified flow, as Wan,
            HunyuanVideo and LTX-Video train).
        dim: sketch length k (default 512).
        seed: projection seed (default 0).
        client: where sketches go (None: :meth:`step` only returns them).
        every: attribute every ``every``-th optimizer step (default 1).
        query_every: recompute and publish the query sketches every ``query_every`` optimizer
            steps (and on the first attributed step). Default (None): whenever the hook has
            attributed ``query_ratio`` times as many training clips as there are query clips
            since the last refresh, so the queries follow the model while their sketches cost at
            most ``1 / query_ratio`` of the attribution work (docs/results.md: queries sketched
            once, on the starting model, lose most of the signal in a short run).
        query_ratio: see ``query_every`` (default 4).
        t_fix: given, the objective is the paper's masked loss at this one timestep (of 1000)
            instead of ``recipe``.
        noise_seed: seed of the shared noise (default 0).
        frame_dim: frame axis of the latents (default 2, ``[B, C, F, h, w]``).
        freeze_others: see :func:`isolated_pass` (default True).
        objectives: the attribution objective(s) (:class:`MotionObjective`); default the named
            ``recipe`` built from ``predict``, ``noise_seed`` and ``frame_dim``. With more than one,
            ``dim`` is the length per objective and the wire sketch is ``len(objectives) * dim``
            long (see the module doc).
        recipe: the named recipe (:data:`~motive_hooks.presets.RECIPES`, default
            :data:`~motive_hooks.presets.DEFAULT_RECIPE`) when ``objectives`` is not given.
        motion_check: send the model-free motion checks of each clip
            (:mod:`motive_hooks.motion_check`) beside its sketch (default True); the daemon fuses
            them with the attribution score.
        reversal_check: send the model-based reversal check of each clip
            (:mod:`motive_hooks.reversal_check`, feature ``reversal_gap``) beside the motion
            checks (default True): how much the model's loss on the clip exceeds its loss on the
            clip played backwards, relative to that loss, ``4 × 2`` forwards of the clip under
            ``no_grad``. A batch the
            hook cannot reverse (not a latent tensor, or one frame) sends 0.
        budget: given (e.g. ``0.1``), the most the hook may add to the training time, as a
            fraction of it: a step that ``every`` makes due is attributed only while the hook's
            own wall time so far is at most ``budget`` times the training time so far (the wall
            time between :meth:`step` calls, less the hook's). The overhead is then bounded by
            construction (within one attribution pass) whatever the model and the machine, and
            the hook attributes about ``budget × step time / pass time`` of the steps. The
            decision is taken once per optimizer step (all its micro-batches alike) and depends
            on wall time, so which steps are attributed differs between runs and ranks. Default
            None: every ``every``-th step, whatever it costs (docs/performance.md).

    Hand the attributor itself to :class:`MotiveClient` as its ``sketcher``: it announces the
    projection identity and the motion-check names in ``Hello``.
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Optional[LayerSpec] = None,
        predict: Optional[PredictFn] = None,
        dim: int = 512,
        seed: int = 0,
        client: Optional[MotiveClient] = None,
        every: int = 1,
        query_every: Optional[int] = None,
        query_ratio: float = 4.0,
        t_fix: Optional[int] = None,
        noise_seed: int = 0,
        frame_dim: int = 2,
        freeze_others: bool = True,
        objectives: Optional[Sequence[MotionObjective]] = None,
        recipe: str = DEFAULT_RECIPE,
        motion_check: bool = True,
        budget: Optional[float] = None,
        reversal_check: bool = True,
    ) -> None:
        self.model = model = unwrap_model(model)
        if predict is None:
            predict = flow_matching_predict()
        if layers is None:
            layers = default_layers(model)
        self.sketcher = GradientSketcher(resolve_layers(model, layers), dim=dim, seed=seed)
        if objectives:
            self.objectives: List[MotionObjective] = list(objectives)
        elif t_fix is not None:
            self.objectives = [MotionObjective(predict, t_fix=t_fix, noise_seed=noise_seed, frame_dim=frame_dim)]
        else:
            self.objectives = recipe_objectives(recipe, predict, frame_dim=frame_dim, noise_seed=noise_seed)
        self.objective = self.objectives[0]
        names = [o.name for o in self.objectives]
        if len(set(names)) != len(names):
            raise ValueError(f"objective names must differ: {names}")
        self.identity: Any = self.sketcher if len(self.objectives) == 1 else SketchIdentity(self.sketcher, names)
        self.client = client
        self.frame_dim = int(frame_dim)
        self._model_free = bool(motion_check)
        self._reversal = bool(reversal_check)
        self.feature_names: Tuple[str, ...] = (FEATURE_NAMES if motion_check else ()) + ((REVERSAL_FEATURE,) if reversal_check else ())
        """The per-clip check names announced in ``Hello`` (empty: none sent)."""
        self.every = max(1, int(every))
        self.query_every = None if query_every is None else max(1, int(query_every))
        self.query_ratio = float(query_ratio)
        self._since_refresh = 0
        self.freeze_others = freeze_others
        self._queries: List[Tuple[List[str], Any, Optional[torch.Tensor], Optional[List[str]]]] = []
        self._query_step: Optional[int] = None
        if budget is not None and not budget > 0:
            raise ValueError(f"budget must be a positive fraction of the training time, got {budget!r}")
        self.budget = None if budget is None else float(budget)
        self.clock = time.perf_counter
        """The wall clock the budget is measured with (seconds)."""
        self.hook_seconds = 0.0
        """Wall time spent inside :meth:`step` on attributed steps (counted when ``budget`` is set)."""
        self.train_seconds = 0.0
        """Wall time between :meth:`step` calls, the training itself (counted when ``budget`` is set)."""
        self._mark: Optional[float] = None
        self._decided: Tuple[Optional[int], bool] = (None, False)

    @property
    def fingerprint(self) -> str:
        """The projection fingerprint (``Hello.projection.fingerprint``)."""
        return str(self.identity.fingerprint)

    @property
    def dim(self) -> int:
        """The wire sketch length (``Hello.projection.dim``)."""
        return int(self.identity.dim)

    @property
    def seed(self) -> int:
        """The projection seed (``Hello.projection.seed``)."""
        return int(self.identity.seed)

    @property
    def kind(self) -> str:
        """The projection kind (``Hello.projection.kind``)."""
        return str(self.identity.kind)

    def features(self, batch: Any) -> Optional[torch.Tensor]:
        """The per-clip checks ``[B, len(feature_names)]`` of a batch, or None when switched off."""
        if not self.feature_names:
            return None
        parts: List[torch.Tensor] = []
        if self._model_free:
            parts.append(clip_features(self.objective.latents(batch), frame_dim=self.frame_dim))
        if self._reversal:
            parts.append(reversal_check(*self.reversal_terms(batch)).view(-1, 1))
        return torch.cat(parts, dim=1)

    def reversal_terms(self, batch: Any) -> Tuple[torch.Tensor, torch.Tensor]:
        """The reversal gap ``[B]`` of a batch and the mean loss it is made of
        (:func:`~motive_hooks.reversal_check.reversal_terms`), with the model in eval mode and the
        RNG state restored, through the first objective's ``predict``. Zeros for a batch that is
        not the latent tensor itself (a structured batch cannot be reversed here)."""
        lat = self.objective.latents(batch)
        if not isinstance(batch, torch.Tensor) or lat is not batch:
            zero = torch.zeros(int(lat.shape[0]), dtype=torch.float32)
            return zero, zero.clone()
        with isolated_pass(self.model, (), freeze_others=False):
            return reversal_terms(self.model, self.objective.predict, batch.detach(), frame_dim=self.frame_dim)

    def sketch(
        self, batch: Any, masks: Optional[torch.Tensor], noise: Optional[torch.Tensor] = None, query: bool = False
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """L2-normalised sketches ``[B, self.dim]`` and losses ``[B]`` (first objective's) of a batch."""
        parts: List[torch.Tensor] = []
        first: Optional[torch.Tensor] = None
        for obj in self.objectives:
            raw, losses = self.raw_sketch(batch, masks, noise, objective=obj, query=query)
            parts.append(normalize_sketches(raw))
            first = losses if first is None else first
        assert first is not None
        if len(parts) == 1:
            return parts[0], first
        return torch.cat(parts, dim=1) / math.sqrt(len(parts)), first

    def raw_sketch(
        self,
        batch: Any,
        masks: Optional[torch.Tensor],
        noise: Optional[torch.Tensor] = None,
        objective: Optional[MotionObjective] = None,
        query: bool = False,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Projected gradients ``[B, sketcher.dim]`` of one objective (default the first) per sample
        before normalisation, and the losses."""
        obj = objective if objective is not None else self.objective
        with isolated_pass(self.model, [m for _, m in self.sketcher._modules], self.freeze_others):
            with torch.enable_grad():
                with self.sketcher.capture():
                    losses = obj.per_sample_losses(self.model, batch, masks, noise, query=query)
                raw = self.sketcher.sketch(losses, keep_grads=self.model.parameters())
        return raw, losses.detach()

    def add_queries(
        self, ids: Sequence[str], batch: Any, masks: Optional[torch.Tensor], groups: Optional[Sequence[str]] = None
    ) -> None:
        """Registers query clips (the motion to attribute); sketched at the next refresh."""
        self._queries.append(([str(i) for i in ids], batch, masks, list(groups) if groups is not None else None))
        self._query_step = None

    def query_sketches(self) -> Tuple[List[str], torch.Tensor, List[str]]:
        """Current sketches of all registered queries: ids, ``[m, self.dim]``, groups.

        With several objectives every query appears once per objective, id ``"<objective>/<id>"``,
        group ``"<objective>"`` (or ``"<objective>/<group>"`` when the query has a group).
        """
        ids: List[str] = []
        groups: List[str] = []
        rows: List[torch.Tensor] = []
        n = len(self.objectives)
        k = self.sketcher.dim
        for qids, batch, masks, grp in self._queries:
            if n == 1:
                s, _ = self.sketch(batch, masks, query=True)
                ids.extend(qids)
                groups.extend(grp if grp is not None else ["motion"] * len(qids))
                rows.append(s)
                continue
            for i, obj in enumerate(self.objectives):
                raw, _ = self.raw_sketch(batch, masks, objective=obj, query=True)
                block = torch.zeros(raw.shape[0], n * k)
                block[:, i * k : (i + 1) * k] = normalize_sketches(raw)
                ids.extend(f"{obj.name}/{q}" for q in qids)
                groups.extend(obj.name if grp is None else f"{obj.name}/{g}" for g in (grp or qids))
                rows.append(block)
        return ids, torch.cat(rows) if rows else torch.zeros(0, self.dim), groups

    def _query_due(self, step: int) -> bool:
        if self._query_step is None:
            return True
        if self.query_every is not None:
            return step - self._query_step >= self.query_every
        clips = sum(len(ids) for ids, _, _, _ in self._queries)
        return self._since_refresh >= self.query_ratio * clips

    def _accrue(self) -> None:
        now = self.clock()
        if self._mark is not None:
            self.train_seconds += max(0.0, now - self._mark)
        self._mark = now

    def due(self, step: int) -> bool:
        """Whether :meth:`step` attributes optimizer step ``step`` (with ``budget``, decided at
        the first call for that step and kept for its other micro-batches)."""
        if self.budget is None:
            return step % self.every == 0
        self._accrue()
        if self._decided[0] != step:
            ok = step % self.every == 0 and self.hook_seconds <= self.budget * self.train_seconds
            self._decided = (step, ok)
        return self._decided[1]

    def step(
        self, step: int, lr: float, ids: Sequence[str], batch: Any, masks: Optional[torch.Tensor]
    ) -> Optional[torch.Tensor]:
        """Attributes one training batch at optimizer step ``step`` (if due) and streams it.

        Refreshes and publishes the query sketches first when due (see ``query_every``).
        Call it before ``optimizer.step()`` so the gradients are those of the weights the step
        starts from. Returns the normalised sketches ``[B, dim]``, or None when not due.
        """
        if not self.due(step):
            return None
        start = self.clock()
        try:
            return self._attribute(step, lr, ids, batch, masks)
        finally:
            if self.budget is not None:
                self.hook_seconds += max(0.0, self.clock() - start)
                self._mark = self.clock()

    def _attribute(
        self, step: int, lr: float, ids: Sequence[str], batch: Any, masks: Optional[torch.Tensor]
    ) -> torch.Tensor:
        if self._queries and self._query_due(step):
            qids, qsk, groups = self.query_sketches()
            if self.client is not None:
                self.client.set_queries(qids, qsk, step=step, groups=groups)
            self._query_step = step
            self._since_refresh = 0
        sketches, losses = self.sketch(batch, masks)
        self._since_refresh += int(sketches.shape[0])
        if self.client is not None:
            # a client made without the motion-check names (e.g. with sketcher=attr.sketcher)
            # announced none, so it sends sketches alone
            feats = self.features(batch) if list(getattr(self.client, "feature_names", ())) == list(self.feature_names) else None
            if feats is None:
                self.client.send(step, lr, ids, sketches, losses)
            else:
                self.client.send(step, lr, ids, sketches, losses, features=feats)
        return sketches
