"""A LoRA fine-tune loop shaped like DiffSynth-Studio's and musubi-tuner's (accelerate), with Motive.

The loop is the trainers' own: ``accelerator.accumulate``, ``accelerator.backward``, the
optimizer stepping inside the accumulate block and ``accelerator.sync_gradients`` counting
optimizer steps. The lines marked ``# Motive`` are what docs/integrations.md adds to each
trainer. With accelerate installed it runs under ``accelerate launch`` on any number of
processes; without it, a small stand-in with the same surface (one process) runs the same code.

    npm start                                                      # the daemon, 127.0.0.1:50051
    python3 trainer-hooks/python/examples/accelerate_loop.py [--steps 12] [--accum 2] [--lora peft|kohya]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import Any, Dict, Iterator, List, Optional, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from motive_hooks import MotionAttributor, MotiveClient, MotiveDistributedSampler, flow_matching_predict  # noqa: E402
from motive_hooks.dit import WanMiniDiT, wan_mini_latents  # noqa: E402
from motive_hooks.layers import resolve_layers  # noqa: E402
from motive_hooks.lora import inject_kohya_lora, inject_peft_lora  # noqa: E402

try:  # accelerate-only lines stay behind this guard
    from accelerate import Accelerator
except ImportError:
    Accelerator = None


class LocalAccelerator:
    """The part of ``accelerate.Accelerator`` the loop uses, for one process without accelerate."""

    def __init__(self, gradient_accumulation_steps: int = 1) -> None:
        self.gradient_accumulation_steps = gradient_accumulation_steps
        self.sync_gradients = True
        self.process_index, self.num_processes = 0, 1
        self.is_main_process = True
        self.device = torch.device("cpu")
        self._micro = 0

    def prepare(self, *objs: Any) -> Any:
        out = [self._wrap(o) for o in objs]
        return out[0] if len(out) == 1 else out

    def _wrap(self, obj: Any) -> Any:
        if isinstance(obj, torch.optim.Optimizer):
            return _AcceleratedOptimizer(obj, self)
        if isinstance(obj, _LR_SCHEDULER):
            return _AcceleratedScheduler(obj, self)
        return obj

    @contextlib.contextmanager
    def accumulate(self, model: torch.nn.Module) -> Iterator[None]:
        self._micro += 1
        self.sync_gradients = self._micro % self.gradient_accumulation_steps == 0
        yield

    def backward(self, loss: torch.Tensor) -> None:
        (loss / self.gradient_accumulation_steps).backward()

    def unwrap_model(self, model: torch.nn.Module) -> torch.nn.Module:
        return model


class _AcceleratedOptimizer:
    """Steps and zeroes only on the micro-batch that ends an accumulation, as accelerate's does."""

    def __init__(self, opt: torch.optim.Optimizer, acc: LocalAccelerator) -> None:
        self.optimizer, self.acc = opt, acc
        self.param_groups = opt.param_groups

    def step(self) -> None:
        if self.acc.sync_gradients:
            self.optimizer.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        if self.acc.sync_gradients:
            self.optimizer.zero_grad(set_to_none=set_to_none)


_LR_SCHEDULER: Any = getattr(torch.optim.lr_scheduler, "LRScheduler", torch.optim.lr_scheduler._LRScheduler)


class _AcceleratedScheduler:
    """Steps only with the optimizer (on the micro-batch that ends an accumulation), as accelerate's does."""

    def __init__(self, scheduler: Any, acc: LocalAccelerator) -> None:
        self.scheduler, self.acc = scheduler, acc

    def step(self) -> None:
        if self.acc.sync_gradients:
            self.scheduler.step()

    def get_last_lr(self) -> List[float]:
        return list(self.scheduler.get_last_lr())


class Clips(Dataset):
    """Latent clips with ids (what a trainer's cached-latent dataset yields)."""

    def __init__(self, ids: Sequence[str], latents: torch.Tensor) -> None:
        self.ids, self.latents = list(ids), latents

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> Dict[str, Any]:
        return {"id": self.ids[i], "latents": self.latents[i]}


def collate(items: List[Dict[str, Any]]) -> Dict[str, Any]:
    return {"ids": [it["id"] for it in items], "latents": torch.stack([it["latents"] for it in items])}


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    p = argparse.ArgumentParser(description="accelerate-shaped LoRA loop with Motive")
    p.add_argument("--address", default="127.0.0.1:50051")
    p.add_argument("--run", default="accelerate-loop")
    p.add_argument("--steps", type=int, default=12, help="optimizer steps")
    p.add_argument("--accum", type=int, default=2, help="micro-batches per optimizer step")
    p.add_argument("--micro-batch", type=int, default=1)
    p.add_argument("--lora", choices=["peft", "kohya"], default="peft")
    p.add_argument("--tiny", action="store_true", help="the test-sized DiT")
    p.add_argument("--checkpoint", default=None, help="save the sampler state here at the end")
    args = p.parse_args(argv)

    accelerator: Any = Accelerator(gradient_accumulation_steps=args.accum) if Accelerator else LocalAccelerator(args.accum)
    torch.manual_seed(0)
    transformer = WanMiniDiT.tiny(seed=1) if args.tiny else WanMiniDiT(seed=1)
    ids = [f"clip-{i:03d}" for i in range(24)]
    size = 4 if args.tiny else 8
    dataset = Clips(ids, wan_mini_latents(len(ids), frames=3, size=size, seed=3))
    queries = wan_mini_latents(2, frames=3, size=size, seed=9)

    if args.lora == "peft":  # DiffSynth-Studio: PEFT's inject_adapter_in_model
        inject_peft_lora(transformer, transformer.lora_targets(), r=4, init_up_std=0.0)
        trainable = [p for p in transformer.parameters() if p.requires_grad]
        layers: Any = "lora"  # Motive
    else:  # musubi-tuner: a separate LoRANetwork applied to the transformer
        network = inject_kohya_lora(transformer, transformer.lora_targets(), r=4, init_up_std=0.0)
        trainable = list(network.parameters())
        layers = resolve_layers(network, "lora")  # Motive
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)

    # Motive: attributor, client (one per rank) and the weighted sampler; the loader is not
    # handed to accelerator.prepare (it would shard each rank's part again)
    attr = MotionAttributor(transformer, layers, flow_matching_predict(), dim=256, every=1, query_every=50)
    client = MotiveClient(
        args.address, args.run, attr.dim, rank=accelerator.process_index, world_size=accelerator.num_processes, sketcher=attr, policy="drop"
    )
    attr.client = client
    attr.add_queries(["q-drift-a", "q-drift-b"], queries, None)
    sampler = MotiveDistributedSampler(ids, client, seed=0, rank=accelerator.process_index, world_size=accelerator.num_processes)
    loader = DataLoader(dataset, batch_size=args.micro_batch, sampler=sampler, collate_fn=collate)

    transformer, optimizer = accelerator.prepare(transformer, optimizer)
    global_step = 0
    micro_batches = 0
    while global_step < args.steps:
        for batch in loader:
            latents = batch["latents"].to(accelerator.device)
            with accelerator.accumulate(transformer):
                noise = torch.randn_like(latents)
                s = torch.rand(latents.shape[0], device=latents.device)
                sv = s.view(-1, 1, 1, 1, 1)
                pred = transformer((1 - sv) * latents + sv * noise, s)
                loss = torch.nn.functional.mse_loss(pred.float(), (noise - latents).float())
                accelerator.backward(loss)
                # Motive: every micro-batch, at the optimizer step it belongs to, before the step
                attr.step(global_step, optimizer.param_groups[0]["lr"], batch["ids"], latents, None)
                optimizer.step()
                optimizer.zero_grad()
            micro_batches += 1
            if accelerator.sync_gradients:
                global_step += 1
                if global_step >= args.steps:
                    break
    if args.checkpoint:  # Motive: the sampler's position goes into the checkpoint
        torch.save({"sampler": sampler.state_dict(), "step": global_step}, args.checkpoint)
    client.flush(30.0)
    client.close(10.0)
    st = client.stats()
    if accelerator.is_main_process:
        print(f"{global_step} optimizer steps, {micro_batches} micro-batches; sent {st.sent_batches} batches, acked {st.acked_batches}, dropped {st.dropped_rows} rows")
    return {"steps": global_step, "micro_batches": micro_batches, "stats": st, "sampler": sampler}


if __name__ == "__main__":
    main()
