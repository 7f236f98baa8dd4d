"""Per-sample gradient sketches without per-sample gradients (LoGra-style Kronecker projection).

For a linear map ``y = W a (+ b)`` applied at positions ``t`` (tokens, pixels, voxels), one sample's
weight gradient is ``G = Σ_t δ_t a_tᵀ`` with ``δ_t = ∂L/∂y_t``. Its projection with the Kronecker
factor pair ``(P_out [k_o × d_out], P_in [k_i × d_in])`` is

    P_out · G · P_inᵀ = Σ_t (P_out δ_t)(P_in a_t)ᵀ,

so projecting the layer's input and output gradient first and contracting over ``t`` afterwards
gives the k_o·k_i numbers without ever forming the d_out × d_in gradient of a sample.

Layout of ``G`` (what the projection acts on): rows = output features / output channels; columns =
``nn.Linear``: input features, then one column for the bias; ``nn.Conv2d`` / ``nn.Conv3d``: the
weight's ``(C_in, *kernel)`` flattened in row-major order, then one column for the bias. A layer
without bias has no bias column.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Callable, ContextManager, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["PROJECTION_KIND", "GradientSketcher", "LayerProjection", "normalize_sketches"]

#: ``Hello.projection.kind`` of this sketcher: Kronecker-factored (row-orthogonalised) Gaussian
#: projection per layer.
PROJECTION_KIND: str = "logra-gaussian"

_FINGERPRINT_VERSION = 1

SupportedLayer = Union[nn.Linear, nn.Conv2d, nn.Conv3d]
ModulesArg = Union[Mapping[str, nn.Module], Sequence[Tuple[str, nn.Module]], Sequence[nn.Module]]


@dataclass(frozen=True)
class LayerProjection:
    """The projection of one layer: its name, kind and the shapes involved."""

    name: str
    kind: str  # "linear" | "conv2d" | "conv3d"
    d_out: int
    d_in: int  # columns of G, bias column included
    k_out: int
    k_in: int
    offset: int  # first column of this layer in the concatenated sketch

    @property
    def k(self) -> int:
        return self.k_out * self.k_in


def _split_dim(dim: int, n: int) -> List[int]:
    base, rem = divmod(dim, n)
    return [base + (1 if i < rem else 0) for i in range(n)]


def _factor(k: int, d_out: int, d_in: int) -> Tuple[int, int]:
    """k = k_out · k_in, as balanced as possible without exceeding the layer's own dimensions."""
    best: Optional[Tuple[Tuple[int, float], Tuple[int, int]]] = None
    for ko in range(1, k + 1):
        if k % ko:
            continue
        ki = k // ko
        overshoot = max(0, ko - d_out) + max(0, ki - d_in)
        key = (overshoot, abs(math.log(ko) - math.log(ki)))
        if best is None or key < best[0]:
            best = (key, (ko, ki))
    assert best is not None
    return best[1]


def _factor_matrix(k: int, d: int, gen: torch.Generator) -> torch.Tensor:
    """A ``k × d`` Kronecker factor with ``E[PᵀP] = I``.

    Drawn Gaussian; when ``k <= d`` its rows are orthogonalised (QR of the Gaussian draw, with the
    sign fix that makes it Haar-distributed) and scaled by ``sqrt(d / k)``: the same expectation as
    an i.i.d. Gaussian factor with lower variance, and exact (a rotation) when ``k == d``.
    """
    g = torch.randn(d, k, generator=gen, dtype=torch.float64)
    if k > d:
        return g.t() / math.sqrt(k)
    q, r = torch.linalg.qr(g)
    q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
    return q.t() * math.sqrt(d / k)


def _layer_seed(seed: int, index: int, name: str) -> int:
    h = hashlib.sha256(f"{int(seed)}:{index}:{name}".encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


def _columns(module: nn.Module) -> Tuple[str, int, int]:
    has_bias = getattr(module, "bias", None) is not None
    if isinstance(module, nn.Linear):
        return "linear", module.out_features, module.in_features + int(has_bias)
    if isinstance(module, (nn.Conv2d, nn.Conv3d)):
        if module.groups != 1:
            raise ValueError(f"grouped convolutions (groups={module.groups}) are not supported")
        kind = "conv2d" if isinstance(module, nn.Conv2d) else "conv3d"
        fan_in = module.in_channels * int(math.prod(module.kernel_size))
        return kind, module.out_channels, fan_in + int(has_bias)
    raise TypeError(f"unsupported layer type {type(module).__name__} (nn.Linear, nn.Conv2d, nn.Conv3d)")


def _no_autocast(device: torch.device) -> ContextManager[None]:
    """Autocast off for the projection algebra (it stays float32 under a caller's autocast)."""
    if device.type in ("cpu", "cuda"):
        return torch.autocast(device_type=device.type, enabled=False)
    return nullcontext()


def normalize_sketches(sketches: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Row-wise L2 normalisation ``[B, k] -> [B, k]``; an all-zero row stays zero (never NaN)."""
    norms = torch.linalg.vector_norm(sketches, dim=1, keepdim=True)
    return sketches / norms.clamp_min(eps)


class _Capture:
    __slots__ = ("inputs", "outputs")

    def __init__(self) -> None:
        self.inputs: List[torch.Tensor] = []
        self.outputs: List[torch.Tensor] = []


class GradientSketcher:
    """Projected per-sample weight gradients of chosen layers, ``[B, dim]``.

    Args:
        modules: the layers to sketch (``nn.Linear``, ``nn.Conv2d``, ``nn.Conv3d`` with groups=1):
            a mapping name → module, a sequence of ``(name, module)`` pairs (e.g. a filtered
            ``model.named_modules()``), or a sequence of modules (named ``"0"``, ``"1"``, ...).
            The names enter the fingerprint: use the same names on every rank and for queries.
        dim: sketch length k, split as evenly as possible over the layers (each layer gets
            ``k_l = k_out · k_in`` columns).
        seed: seed of the projection; with the names and shapes it fixes every ``P``.

    Usage::

        with sketcher.capture():
            losses = per_sample_loss(model(x))      # [B], graph kept
        g = sketcher.sketch(losses)                 # [B, dim]; parameters' .grad untouched

    Precision: the projection runs in float32 with autocast disabled, whatever dtype the layers
    compute in (under ``torch.autocast`` the captured activations and output gradients are bf16
    or fp16 and are cast up first). Layers whose parameters are float16 are refused: without a
    loss scale their per-sample gradients underflow (see docs/performance.md for the bf16
    figures).

    Activation checkpointing: with ``use_reentrant=False`` the recorded outputs stay in the graph
    and the recomputation during the backward is ignored. With reentrant checkpointing the first
    forward of a checkpointed block runs without autograd; the sketcher notices and instead runs
    a full ``backward`` with gradient hooks on the outputs recomputed during it, restoring every
    ``.grad`` it may have written (the parameters of the sketched layers and ``keep_grads``).

    The sample axis of a layer's input is its leading axis. When the model folds frames into it
    (``[B·F, C, H, W]`` for an ``nn.Conv2d``), the leading size is a multiple of B and is read
    sample-major (``(b f)``). Samples must not interact in the forward pass (no BatchNorm in
    training mode).
    """

    def __init__(self, modules: ModulesArg, dim: int, seed: int = 0) -> None:
        named = self._named(modules)
        if not named:
            raise ValueError("GradientSketcher needs at least one layer")
        half = [n for n, m in named if any(p.dtype == torch.float16 for p in m.parameters(recurse=False))]
        if half:
            raise ValueError(
                f"layers {half[:3]} have float16 parameters: per-sample gradients of fp16 weights underflow "
                "without a loss scale and the scores would be noise; keep the trained weights in float32 or "
                "bfloat16 (autocast to fp16 is fine)"
            )
        if dim < len(named):
            raise ValueError(f"dim={dim} is smaller than the number of layers ({len(named)})")
        self.dim = int(dim)
        self.seed = int(seed)
        self.kind = PROJECTION_KIND
        self._modules: List[Tuple[str, nn.Module]] = named
        self._layers: List[LayerProjection] = []
        offset = 0
        for (name, mod), k in zip(named, _split_dim(self.dim, len(named))):
            kind, d_out, d_in = _columns(mod)
            ko, ki = _factor(k, d_out, d_in)
            self._layers.append(LayerProjection(name, kind, d_out, d_in, ko, ki, offset))
            offset += k
        self._cpu: Dict[str, Tuple[torch.Tensor, torch.Tensor]] = {}
        for i, lp in enumerate(self._layers):
            gen = torch.Generator(device="cpu")
            gen.manual_seed(_layer_seed(self.seed, i, lp.name))
            p_out = _factor_matrix(lp.k_out, lp.d_out, gen)
            p_in = _factor_matrix(lp.k_in, lp.d_in, gen)
            self._cpu[lp.name] = (p_out.to(torch.float32), p_in.to(torch.float32))
        self._on_device: Dict[Tuple[str, torch.device], Tuple[torch.Tensor, torch.Tensor]] = {}
        self._captures: Dict[str, _Capture] = {}
        self._armed = False
        self._ungraded = False  # a captured forward ran without autograd (reentrant checkpointing)
        self._replay: Optional[Callable[[str, torch.Tensor, torch.Tensor], None]] = None
        self._warned_fp16 = False
        self._handles = [
            mod.register_forward_hook(self._make_hook(name)) for name, mod in self._modules
        ]
        self.fingerprint = self._fingerprint()

    @staticmethod
    def _named(modules: ModulesArg) -> List[Tuple[str, nn.Module]]:
        if isinstance(modules, Mapping):
            return [(str(k), v) for k, v in modules.items()]
        out: List[Tuple[str, nn.Module]] = []
        for i, item in enumerate(modules):
            if isinstance(item, nn.Module):
                out.append((str(i), item))
            else:
                name, mod = item
                out.append((str(name), mod))
        return out

    # -- identity -------------------------------------------------------------------------------

    def _fingerprint(self) -> str:
        desc = {
            "v": _FINGERPRINT_VERSION,
            "kind": self.kind,
            "seed": self.seed,
            "dim": self.dim,
            "layers": [[lp.name, lp.kind, lp.d_out, lp.d_in, lp.k_out, lp.k_in] for lp in self._layers],
        }
        blob = json.dumps(desc, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:32]

    @property
    def layers(self) -> List[LayerProjection]:
        """The per-layer projection descriptors, in sketch-column order."""
        return list(self._layers)

    def layer_slices(self) -> Dict[str, slice]:
        """Columns of each layer in the concatenated ``[B, dim]`` sketch."""
        return {lp.name: slice(lp.offset, lp.offset + lp.k) for lp in self._layers}

    def projections(self) -> Dict[str, Tuple[torch.Tensor, torch.Tensor]]:
        """``{name: (P_out [k_out × d_out], P_in [k_in × d_in])}`` (float32, CPU copies).

        A layer's sketch columns are ``(P_out · G · P_inᵀ).flatten()`` (row-major, k_out × k_in).
        """
        return {name: (p.clone(), q.clone()) for name, (p, q) in self._cpu.items()}

    def _proj(self, name: str, device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
        key = (name, device)
        got = self._on_device.get(key)
        if got is None:
            p, q = self._cpu[name]
            got = (p.to(device), q.to(device))
            self._on_device[key] = got
        return got

    # -- capture --------------------------------------------------------------------------------

    def _make_hook(self, name: str):  # type: ignore[no-untyped-def]
        def hook(module: nn.Module, inputs: Tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            if self._replay is not None:
                if torch.is_grad_enabled():
                    self._replay(name, inputs[0].detach(), output)
                return
            if not self._armed:
                return
            if not torch.is_grad_enabled():
                self._ungraded = True
                return
            cap = self._captures.setdefault(name, _Capture())
            cap.inputs.append(inputs[0].detach())
            cap.outputs.append(output)

        return hook

    @contextmanager
    def capture(self) -> Iterator["GradientSketcher"]:
        """Records the chosen layers' inputs and outputs during the forward pass in this block."""
        self._captures = {}
        self._ungraded = False
        self._armed = True
        try:
            yield self
        finally:
            self._armed = False

    def clear(self) -> None:
        """Drops recorded activations (and the graph they keep alive)."""
        self._captures = {}

    def remove(self) -> None:
        """Removes the forward hooks from the layers."""
        for h in self._handles:
            h.remove()
        self._handles = []
        self._captures = {}

    # -- sketch ---------------------------------------------------------------------------------

    def sketch(self, per_sample_losses: torch.Tensor, keep_grads: Iterable[torch.Tensor] = ()) -> torch.Tensor:
        """Runs the backward of ``per_sample_losses`` [B] and returns ``[B, dim]`` float32 sketches.

        One projected gradient per sample, before any normalisation. Uses ``torch.autograd.grad``
        with respect to the recorded layer outputs only: no parameter's ``.grad`` is written and no
        weight gradient is computed. Consumes the recorded activations. Under reentrant activation
        checkpointing (see the class doc) a full backward runs instead; ``.grad`` of the sketched
        layers' parameters and of ``keep_grads`` (e.g. ``model.parameters()``) is restored after it.
        """
        if per_sample_losses.dim() != 1:
            raise ValueError("per_sample_losses must be a [B] tensor, one loss per sample")
        b = per_sample_losses.shape[0]
        caps = self._captures
        self._captures = {}
        if self._ungraded:
            return self._sketch_by_backward(per_sample_losses, caps, keep_grads)
        order: List[Tuple[LayerProjection, int]] = []
        outs: List[torch.Tensor] = []
        for lp in self._layers:
            cap = caps.get(lp.name)
            if cap is None:
                continue
            for j, o in enumerate(cap.outputs):
                if o.requires_grad:
                    order.append((lp, j))
                    outs.append(o)
        if not outs:
            raise RuntimeError(
                "no recorded layer output requires grad: run the forward inside sketcher.capture() "
                "with autograd enabled and at least the chosen layers trainable"
            )
        grads = torch.autograd.grad(per_sample_losses.sum(), outs, allow_unused=True)
        pairs = [(lp, caps[lp.name].inputs[j], g) for (lp, j), g in zip(order, grads) if g is not None]
        return self._accumulate(pairs, b, per_sample_losses.device)

    def _accumulate(
        self, pairs: Sequence[Tuple[LayerProjection, torch.Tensor, torch.Tensor]], b: int, device: torch.device
    ) -> torch.Tensor:
        self._warn_precision(pairs)
        result = torch.zeros(b, self.dim, dtype=torch.float32, device=device)
        with _no_autocast(device):
            for lp, a, g in pairs:
                part = self._project(lp, a, g, b)
                result[:, lp.offset : lp.offset + lp.k] += part.to(device)
        return result

    def _warn_precision(self, pairs: Sequence[Tuple[LayerProjection, torch.Tensor, torch.Tensor]]) -> None:
        if any(g.dtype == torch.float16 for _, _, g in pairs) and not self._warned_fp16:
            self._warned_fp16 = True
            warnings.warn(
                "motive: output gradients are float16 (fp16 autocast): per-sample gradients of small motion "
                "losses lose precision or underflow; prefer bfloat16 autocast (docs/performance.md)",
                RuntimeWarning,
                stacklevel=3,
            )

    def _sketch_by_backward(
        self, losses: torch.Tensor, caps: Dict[str, _Capture], keep_grads: Iterable[torch.Tensor]
    ) -> torch.Tensor:
        """Output gradients by hooks during a full backward (reentrant checkpointing recomputes
        the checkpointed blocks' outputs inside it), with every ``.grad`` it writes restored."""
        by_name = {lp.name: lp for lp in self._layers}
        pairs: List[Tuple[LayerProjection, torch.Tensor, torch.Tensor]] = []

        def watch(name: str, a: torch.Tensor, out: torch.Tensor) -> None:
            if out.requires_grad:
                lp = by_name[name]
                out.register_hook(lambda g: pairs.append((lp, a, g)))

        for name, cap in caps.items():
            for a, out in zip(cap.inputs, cap.outputs):
                watch(name, a, out)
        params = {id(p): p for _, m in self._modules for p in m.parameters()}
        params.update({id(p): p for p in keep_grads})
        saved = [(p, p.grad) for p in params.values()]
        for p, _ in saved:
            p.grad = None
        self._replay = watch
        try:
            torch.autograd.backward(losses.sum())
        finally:
            self._replay = None
            self._ungraded = False
            for p, g in saved:
                p.grad = g
        if not pairs:
            raise RuntimeError("no sketched layer received a gradient: at least the chosen layers must be trainable")
        # the hooks fire in backward order; sum per layer in forward order as the default path does
        order = {lp.name: i for i, lp in enumerate(self._layers)}
        pairs.sort(key=lambda t: order[t[0].name])
        return self._accumulate(pairs, losses.shape[0], losses.device)

    def _project(self, lp: LayerProjection, a: torch.Tensor, delta: torch.Tensor, b: int) -> torch.Tensor:
        mod = dict(self._modules)[lp.name]
        p_out, p_in = self._proj(lp.name, a.device)
        has_bias = getattr(mod, "bias", None) is not None
        a = a.float()
        delta = delta.float()
        n = a.shape[0]
        if n % b:
            raise ValueError(f"layer {lp.name}: leading size {n} is not a multiple of the batch size {b}")
        w_in = p_in[:, : lp.d_in - 1] if has_bias else p_in
        if lp.d_out <= lp.k_in and not isinstance(getattr(mod, "padding", 0), str):
            # Few output features: forming G per sample (cost ~ T·d_out·d_in, like the layer's own
            # weight gradient) is cheaper than projecting every input position (T·k_in·d_in).
            g = self._per_sample_grad(lp, mod, a, delta, b, has_bias)  # [B, d_out, d_in]
            return torch.einsum("ko,boi,ji->bkj", p_out, g, p_in).reshape(b, lp.k)
        if lp.kind == "linear":
            a_p = F.linear(a.reshape(-1, a.shape[-1]), w_in, p_in[:, -1] if has_bias else None)
            d_p = F.linear(delta.reshape(-1, delta.shape[-1]), p_out)
            # [B, k_out, T] @ [B, T, k_in]
            s = torch.bmm(d_p.reshape(b, -1, lp.k_out).transpose(1, 2), a_p.reshape(b, -1, lp.k_in))
        else:
            conv = F.conv2d if lp.kind == "conv2d" else F.conv3d
            assert isinstance(mod, (nn.Conv2d, nn.Conv3d))
            weight = w_in.reshape(lp.k_in, mod.in_channels, *mod.kernel_size)
            padding = mod.padding
            if mod.padding_mode != "zeros":
                a = F.pad(a, mod._reversed_padding_repeated_twice, mode=mod.padding_mode)
                padding = 0  # type: ignore[assignment]
            a_p = conv(a, weight, None, mod.stride, padding, mod.dilation)  # [N, k_in, *S]
            if has_bias:
                a_p = a_p + p_in[:, -1].reshape(1, -1, *([1] * (a_p.dim() - 2)))
            d_p = torch.einsum("oc,nc...->no...", p_out, delta)  # [N, k_out, *S]
            r = n // b
            a_p = a_p.reshape(b, r, lp.k_in, -1).transpose(1, 2).reshape(b, lp.k_in, -1)
            d_p = d_p.reshape(b, r, lp.k_out, -1).transpose(1, 2).reshape(b, lp.k_out, -1)
            s = torch.einsum("bot,bit->boi", d_p, a_p)
        return s.reshape(b, lp.k)

    @staticmethod
    def _per_sample_grad(
        lp: LayerProjection, mod: nn.Module, a: torch.Tensor, delta: torch.Tensor, b: int, has_bias: bool
    ) -> torch.Tensor:
        """Explicit per-sample gradient ``[B, d_out, d_in]`` in the layout of the module docs."""
        if lp.kind == "linear":
            a3 = a.reshape(b, -1, a.shape[-1])
            d3 = delta.reshape(b, -1, delta.shape[-1])
            g = torch.bmm(d3.transpose(1, 2), a3)
            if has_bias:
                g = torch.cat([g, d3.sum(dim=1).unsqueeze(2)], dim=2)
            return g
        assert isinstance(mod, (nn.Conv2d, nn.Conv3d))
        r = a.shape[0] // b
        if mod.padding_mode != "zeros":
            a = F.pad(a, mod._reversed_padding_repeated_twice, mode=mod.padding_mode)
            padding = (0,) * (a.dim() - 2)
        else:
            padding = tuple(mod.padding)  # type: ignore[arg-type]
        c_in, c_out = mod.in_channels, mod.out_channels
        # samples become convolution groups; the folded axis r becomes the batch and is summed
        a_g = a.reshape(b, r, c_in, *a.shape[2:]).transpose(0, 1).reshape(r, b * c_in, *a.shape[2:])
        d_g = delta.reshape(b, r, c_out, *delta.shape[2:]).transpose(0, 1).reshape(r, b * c_out, *delta.shape[2:])
        wgrad = torch.nn.grad.conv2d_weight if lp.kind == "conv2d" else torch.nn.grad.conv3d_weight
        g = wgrad(a_g, (b * c_out, c_in, *mod.kernel_size), d_g, mod.stride, padding, mod.dilation, groups=b)
        g = g.reshape(b, c_out, -1)
        if has_bias:
            g = torch.cat([g, delta.reshape(b, r, c_out, -1).sum(dim=(1, 3)).unsqueeze(2)], dim=2)
        return g
