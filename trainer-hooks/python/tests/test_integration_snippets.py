"""Every python snippet of docs/integrations.md runs, as written, inside a plain-torch loop shaped
like the trainer it is written for, against the real daemon.

The snippets are read from the markdown at test time, so an edit to the doc is what gets run. Each
harness below reproduces the shape of one trainer's loop (the names the snippet uses, where the
trainer calls backward and steps, how it counts optimizer steps and what a batch looks like) with
the miniature DiT and the project's LoRA layouts; the trainers themselves are not installed here.
A harness records, independently of the hook, which clip ids it trained at which optimizer step;
the daemon's per-sample ``seen`` and ``lastStep`` must be exactly the attributed subset of them
(every 4th optimizer step, all its micro-batches). A python block the test does not know fails it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tempfile
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import pytest
import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from test_interop import MOTIVED, REPO, Daemon

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))
from accelerate_loop import Clips, LocalAccelerator, collate  # noqa: E402

from motive_hooks import flow_matching_predict  # noqa: E402
from motive_hooks.dit import WanMiniDiT, wan_mini_latents  # noqa: E402
from motive_hooks.lora import inject_kohya_lora, inject_peft_lora  # noqa: E402

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not os.path.exists(MOTIVED),
    reason="needs node and bin/motived.js (the daemon) in this checkout",
)

DOC = os.path.join(REPO, "docs", "integrations.md")
EVERY = 4  # the cadence the common snippet asks for (`every=4`)
IDS = [f"clip-{i:02d}" for i in range(16)]

# each python block of the doc, recognised by a line it must contain
KINDS = {
    "common": "# 1. after the LoRA is applied",
    "diffsynth": "def diffsynth_predict(",
    "diffsynth_loop": "for data in tqdm(dataloader):",
    "musubi_predict": "def musubi_predict(",
    "musubi_loss": "client.loss_weights(batch_ids)",
    "diffusion_pipe": "get_data_iterator_for_step(train_dataloader, model_engine)",
}


def python_blocks(text: str) -> List[str]:
    """The fenced ```python blocks of a markdown text, dedented (list-item blocks are indented)."""
    blocks: List[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)```python\s*$", lines[i])
        if not m:
            i += 1
            continue
        indent = len(m.group(1))
        body: List[str] = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
            i += 1
        blocks.append("\n".join(body) + "\n")
        i += 1
    return blocks


def doc_snippets(text: Optional[str] = None) -> Dict[str, str]:
    """The doc's snippets by kind; fails on a python block no harness runs."""
    if text is None:
        with open(DOC, encoding="utf-8") as f:
            text = f.read()
    out: Dict[str, str] = {}
    for block in python_blocks(text):
        kinds = [k for k, marker in KINDS.items() if marker in block]
        assert len(kinds) == 1, f"docs/integrations.md has a python block no test runs (or runs twice):\n{block}"
        assert kinds[0] not in out, f"two {kinds[0]} blocks in docs/integrations.md"
        out[kinds[0]] = block
    assert sorted(out) == sorted(KINDS), f"docs/integrations.md lost blocks: {sorted(set(KINDS) - set(out))}"
    return out


def common_parts(block: str) -> Dict[int, str]:
    """The common block cut at its ``# N.`` comments; part 0 is the imports before ``# 1.``."""
    parts: Dict[int, List[str]] = {0: []}
    cur = 0
    for line in block.splitlines():
        m = re.match(r"^# (\d)\. ", line)
        if m:
            cur = int(m.group(1))
            parts[cur] = []
        parts[cur].append(line)
    assert sorted(parts) == [0, 1, 2, 3, 4], f"the common block's numbered parts changed: {sorted(parts)}"
    return {k: "\n".join(v) + "\n" for k, v in parts.items()}


def run_snippet(src: str, ns: Dict[str, Any], label: str) -> None:
    exec(compile(src, f"docs/integrations.md[{label}]", "exec"), ns)


class Record:
    """What a harness trained, step by step, and so what the hook must have attributed."""

    def __init__(self) -> None:
        self.expected: Dict[str, Tuple[int, int]] = {}  # id -> (seen, lastStep)
        self.trained = 0

    def micro_batch(self, step: int, ids: Sequence[str]) -> None:
        self.trained += len(ids)
        if step % EVERY:
            return
        for sid in ids:
            seen, _ = self.expected.get(str(sid), (0, -1))
            self.expected[str(sid)] = (seen + 1, step)


def check_daemon(daemon: Daemon, run: str, rec: Record) -> None:
    """The daemon's per-sample rows are exactly the attributed micro-batches at their steps."""
    assert rec.expected, "the harness attributed nothing: the loop is too short for the cadence"
    got = {s["id"]: (s["seen"], s["lastStep"]) for s in daemon.get(f"/v1/runs/{run}/samples?limit=1000")["samples"]}
    assert got == rec.expected


def finish(ns: Dict[str, Any]) -> None:
    client = ns["client"]
    assert client.flush(60.0)
    st = client.stats()
    client.close(10.0)
    assert st.dropped_rows == 0 and st.rejected_batches == 0


def lora_dit(layout: str) -> Tuple[WanMiniDiT, Any, List[nn.Parameter]]:
    dit = WanMiniDiT.tiny(seed=1)
    if layout == "peft":
        inject_peft_lora(dit, dit.lora_targets(), r=4, init_up_std=0.01)
        return dit, None, [p for p in dit.parameters() if p.requires_grad]
    network = inject_kohya_lora(dit, dit.lora_targets(), r=4, init_up_std=0.01)
    return dit, network, list(network.parameters())


def flow_loss(model: Callable[..., torch.Tensor], latents: torch.Tensor) -> torch.Tensor:
    noise = torch.randn_like(latents)
    s = torch.rand(latents.shape[0])
    sv = s.view(-1, 1, 1, 1, 1)
    pred = model((1 - sv) * latents + sv * noise, s)
    return torch.nn.functional.mse_loss(pred, noise - latents)


def base_ns(daemon: Daemon, run: str, accelerator: Any, query_latents: Any) -> Dict[str, Any]:
    return dict(
        address=daemon.address,
        run_id=run,
        accelerator=accelerator,
        query_ids=["q-a", "q-b"],
        query_latents=query_latents,
        query_masks=None,
        ids=IDS,
        DataLoader=DataLoader,
        torch=torch,  # the trainers' modules import it
    )


# -- the accelerate loop of the common block ------------------------------------------------------


def accelerate_harness(daemon: Daemon, run: str, common: str, steps: int = 5, accum: int = 2) -> Record:
    """An accelerate loop (DiffSynth-Studio's and musubi-tuner's shape) with the common block's
    four parts where their comments place them."""
    parts = common_parts(common)
    torch.manual_seed(0)
    transformer, _, trainable = lora_dit("peft")
    acc = LocalAccelerator(accum)
    ns = base_ns(daemon, run, acc, wan_mini_latents(2, frames=3, size=4, seed=9))
    latents = wan_mini_latents(len(IDS), frames=3, size=4, seed=3)
    ns.update(transformer=transformer, layers="lora", predict=flow_matching_predict(), dataset=Clips(IDS, latents), collate=collate)
    run_snippet(parts[0] + parts[1], ns, "common 1")
    run_snippet(parts[2], ns, "common 2")
    optimizer = acc.prepare(torch.optim.AdamW(trainable, lr=1e-3))
    rec = Record()
    global_step = 0
    while global_step < steps:
        for batch in ns["loader"]:
            with acc.accumulate(transformer):
                acc.backward(flow_loss(transformer, batch["latents"]))
                ns.update(global_step=global_step, lr=optimizer.param_groups[0]["lr"], batch_ids=batch["ids"], latents=batch["latents"], masks=None)
                run_snippet(parts[3], ns, "common 3")
                rec.micro_batch(global_step, batch["ids"])
                optimizer.step()
                optimizer.zero_grad()
            if acc.sync_gradients:
                global_step += 1
                if global_step >= steps:
                    break
    ns["state"] = {}
    run_snippet(parts[4], ns, "common 4")
    state = ns["state"]["motive_sampler"]
    assert state["position"] == rec.trained  # the checkpointed position is what the loop drew
    finish(ns)
    return rec


# -- DiffSynth-Studio: launch_training_task with WanTrainingModule in cached (sft:train) mode ----


class FlowMatchScheduler:
    """DiffSynth-Studio's ``FlowMatchScheduler`` (Wan template, training): the timestep grid, and
    ``add_noise`` / ``training_target`` as in ``diffsynth/diffusion/flow_match.py``."""

    num_train_timesteps = 1000

    def __init__(self, shift: float = 5.0) -> None:
        sigmas = torch.linspace(1.0, 0.0, 1001)[:-1]
        self.sigmas = shift * sigmas / (1 + (shift - 1) * sigmas)
        self.timesteps = self.sigmas * self.num_train_timesteps

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        timestep_id = torch.argmin((self.timesteps - timestep.cpu()).abs())
        sigma = self.sigmas[timestep_id]
        return (1 - sigma) * original_samples + sigma * noise

    def training_target(self, sample: torch.Tensor, noise: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        return noise - sample


def model_fn_wan_video(dit: nn.Module, motion_controller: Any = None, vace: Any = None, latents: Any = None, timestep: Any = None, **kwargs: Any) -> torch.Tensor:
    """``pipe.model_fn`` of DiffSynth's Wan pipeline: the DiT on ``latents`` at ``timestep`` (of
    1000); the cached inputs' other keys arrive as keyword arguments."""
    return dit(latents, (timestep.float() / 1000.0).reshape(-1))


class WanPipe:
    def __init__(self, dit: nn.Module) -> None:
        self.dit, self.motion_controller, self.vace = dit, None, None
        self.in_iteration_models = ("dit", "motion_controller", "vace")
        self.scheduler = FlowMatchScheduler()
        self.device, self.torch_dtype = torch.device("cpu"), torch.float32
        self.model_fn = model_fn_wan_video


class WanTrainingModule(nn.Module):
    """``forward({}, inputs=data)`` is ``FlowMatchSFTLoss`` on one cached clip."""

    def __init__(self, dit: nn.Module) -> None:
        super().__init__()
        self.pipe = WanPipe(dit)
        self.dit = dit

    def forward(self, data: Dict[str, Any], inputs: Dict[str, Any]) -> torch.Tensor:
        pipe = self.pipe
        timestep = pipe.scheduler.timesteps[torch.randint(0, 1000, (1,))]
        noise = torch.randn_like(inputs["input_latents"])
        latents = pipe.scheduler.add_noise(inputs["input_latents"], noise, timestep)
        models = {name: getattr(pipe, name) for name in pipe.in_iteration_models}
        pred = pipe.model_fn(**models, **{**inputs, "latents": latents}, timestep=timestep)
        return torch.nn.functional.mse_loss(pred.float(), pipe.scheduler.training_target(inputs["input_latents"], noise, timestep).float())


class CachedClips(torch.utils.data.Dataset):
    """Cached pipeline-unit outputs, one clip per item (``collate_fn=lambda x: x[0]``)."""

    def __init__(self, latents: torch.Tensor) -> None:
        self.latents = latents

    def __len__(self) -> int:
        return len(IDS)

    def __getitem__(self, i: int) -> Dict[str, Any]:
        return {"data_id": IDS[i], "input_latents": self.latents[i : i + 1]}


def without_attr_line(part: str) -> str:
    """Block 1 less its ``attr = MotionAttributor(...)`` line, which the trainer's block replaces."""
    lines = [line for line in part.splitlines() if not line.startswith("attr = MotionAttributor(")]
    assert len(lines) == len(part.splitlines()) - 1
    return "\n".join(lines) + "\n"


class CountingAdamW(torch.optim.AdamW):
    """AdamW that counts the optimizer steps that really happen, independently of the loop."""

    steps = 0

    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        self.steps += 1
        return super().step(closure)


def diffsynth_harness(daemon: Daemon, run: str, snippets: Dict[str, str], accum: int = 2) -> Record:
    """``launch_training_task`` of one epoch: the loop itself is the doc's block."""
    parts = common_parts(snippets["common"])
    torch.manual_seed(0)
    dit, _, trainable = lora_dit("peft")
    model = WanTrainingModule(dit)
    acc = LocalAccelerator(accum)
    ns = base_ns(daemon, run, acc, {"input_latents": wan_mini_latents(2, frames=3, size=4, seed=9)})
    dataset = CachedClips(wan_mini_latents(len(IDS), frames=3, size=4, seed=3))
    ns.update(model=model, dataset=dataset, collate=lambda x: x[0])
    run_snippet(parts[0] + snippets["diffsynth"], ns, "diffsynth")
    run_snippet(without_attr_line(parts[1]), ns, "common 1")
    run_snippet(parts[2], ns, "common 2")
    optimizer = counter = CountingAdamW(trainable, lr=1e-3)
    rec = Record()
    forward = model.forward

    def recorded(data: Dict[str, Any], inputs: Dict[str, Any]) -> torch.Tensor:
        rec.micro_batch(counter.steps, [inputs["data_id"]])
        return forward(data, inputs)

    model.forward = recorded  # type: ignore[method-assign]
    ns.update(
        optimizer=optimizer,
        scheduler=torch.optim.lr_scheduler.ConstantLR(optimizer),
        num_workers=0,
        num_epochs=1,
        tqdm=lambda it: it,
    )
    run_snippet(snippets["diffsynth_loop"], ns, "diffsynth loop")
    assert rec.trained == len(IDS) and counter.steps == len(IDS) // accum
    finish(ns)
    return rec


# -- musubi-tuner: NetworkTrainer.train with a kohya LoRA network and bucket batches ---------------


class WanModelCall(nn.Module):
    """musubi-tuner's ``WanModel`` call: ``model(x, t=, context=, clip_fea=, seq_len=, y=)`` with
    ``t`` of 1000, returning one prediction per clip (a list). The miniature DiT keeps its own
    fixed text embeddings, so ``context`` is not used."""

    def __init__(self, dit: WanMiniDiT) -> None:
        super().__init__()
        self.dit = dit

    def forward(self, x: Any, t: torch.Tensor, context: Any = None, clip_fea: Any = None, seq_len: Any = None, y: Any = None) -> List[torch.Tensor]:
        x = torch.stack(list(x)) if isinstance(x, (list, tuple)) else x
        return list(self.dit(x, t.float() / 1000.0).unbind(0))


class MusubiAccelerator(LocalAccelerator):
    def autocast(self) -> Any:
        return contextlib.nullcontext()


def musubi_harness(daemon: Daemon, run: str, snippets: Dict[str, str], steps: int = 5, accum: int = 2) -> Record:
    parts = common_parts(snippets["common"])
    torch.manual_seed(0)
    dit, network, trainable = lora_dit("kohya")
    transformer = WanModelCall(dit)
    acc = MusubiAccelerator(accum)
    ns = base_ns(daemon, run, acc, wan_mini_latents(2, frames=3, size=4, seed=9))
    ns.update(transformer=transformer, network=network, context=None, seq_len=12)
    run_snippet(parts[0] + snippets["musubi_predict"], ns, "musubi predict")
    run_snippet(parts[1], ns, "common 1")
    optimizer = acc.prepare(torch.optim.AdamW(trainable, lr=1e-3))
    data = wan_mini_latents(len(IDS), frames=3, size=4, seed=3)
    # the bucket manager's batches: each dataset item is a whole batch of same-sized clips
    buckets = [{"latents": data[i : i + 2], "item_key": IDS[i : i + 2]} for i in range(0, len(IDS), 2)]
    rec = Record()
    global_step = 0
    while global_step < steps:
        for batch in DataLoader(buckets, batch_size=1, shuffle=True, collate_fn=lambda x: x[0]):
            latents, batch_ids = batch["latents"], batch["item_key"]
            with acc.accumulate(network):
                noise = torch.randn_like(latents)
                t = torch.randint(0, 1000, (latents.shape[0],))
                s = t.float().view(-1, 1, 1, 1, 1) / 1000.0
                model_pred = torch.stack(transformer((1 - s) * latents + s * noise, t=t.float()), dim=0)
                ns.update(loss=torch.nn.functional.mse_loss(model_pred, noise - latents, reduction="none"), batch_ids=batch_ids)
                run_snippet(snippets["musubi_loss"], ns, "musubi loss")
                assert ns["loss"].shape == (latents.shape[0],)
                acc.backward(ns["loss"].mean())
                ns.update(global_step=global_step, lr=optimizer.param_groups[0]["lr"], latents=latents, masks=None)
                run_snippet(parts[3], ns, "common 3")
                rec.micro_batch(global_step, batch_ids)
                optimizer.step()
                optimizer.zero_grad()
            if acc.sync_gradients:
                global_step += 1
                if global_step >= steps:
                    break
    finish(ns)
    return rec


# -- diffusion-pipe: DeepSpeed's train_batch over the micro-batches of one step ------------------


class PipelineEngine:
    """The part of DeepSpeed's ``PipelineEngine`` the loop uses, one stage: ``train_batch`` runs
    ``micro_batches`` forwards and backwards and one optimizer step."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, micro_batches: int) -> None:
        self.model, self.optimizer, self.micro_batches = model, optimizer, micro_batches

    def is_first_stage(self) -> bool:
        return True

    def is_last_stage(self) -> bool:
        return True

    def train_batch(self, data_iter: Iterator[Dict[str, Any]]) -> torch.Tensor:
        total = torch.zeros(())
        for _ in range(self.micro_batches):
            micro = next(data_iter)
            loss = flow_loss(self.model, micro["latents"])
            (loss / self.micro_batches).backward()
            total += loss.detach() / self.micro_batches
        self.optimizer.step()
        self.optimizer.zero_grad()
        return total


def get_data_iterator_for_step(dataloader: Any, engine: PipelineEngine, num_micro_batches: Optional[int] = None) -> Any:
    """diffusion-pipe's ``train.py``: the micro-batches of one step, preloaded."""
    num_micro_batches = num_micro_batches or engine.micro_batches
    if not (engine.is_first_stage() or engine.is_last_stage()):
        return None
    dataloader_iter = iter(dataloader)
    items = [next(dataloader_iter) for _ in range(num_micro_batches)]
    return iter(items)


class PipelineDataLoader:
    """An endless loader that keeps its place between steps, as diffusion-pipe's does; each
    micro-batch carries its clip ids and clean latents beside the prepared inputs."""

    def __init__(self, data: torch.Tensor, batch: int) -> None:
        self.data, self.batch, self.pos = data, batch, 0

    def __iter__(self) -> "PipelineDataLoader":
        return self

    def __next__(self) -> Dict[str, Any]:
        idx = [(self.pos + j) % len(IDS) for j in range(self.batch)]
        self.pos += self.batch
        return {"ids": [IDS[i] for i in idx], "latents": self.data[idx]}


def diffusion_pipe_harness(daemon: Daemon, run: str, snippets: Dict[str, str], steps: int = 8, accum: int = 2) -> Record:
    parts = common_parts(snippets["common"])
    torch.manual_seed(0)
    dit, _, trainable = lora_dit("peft")
    ns = base_ns(daemon, run, LocalAccelerator(1), wan_mini_latents(2, frames=3, size=4, seed=9))
    ns.update(transformer=dit, layers="lora", predict=flow_matching_predict())
    run_snippet(parts[0] + parts[1], ns, "common 1")
    engine = PipelineEngine(dit, torch.optim.AdamW(trainable, lr=1e-3), accum)
    loader = PipelineDataLoader(wan_mini_latents(len(IDS), frames=3, size=4, seed=3), batch=2)
    ns.update(
        train_dataloader=loader,
        model_engine=engine,
        get_data_iterator_for_step=get_data_iterator_for_step,
        ids_of=lambda micro: micro["ids"],
        latents_of=lambda micro: micro["latents"],
    )
    rec = Record()
    for step in range(1, steps + 1):  # diffusion-pipe counts steps from 1
        before = loader.pos
        ns.update(step=step, lr=engine.optimizer.param_groups[0]["lr"])
        run_snippet(snippets["diffusion_pipe"], ns, "diffusion-pipe")
        assert loader.pos - before == accum * 2  # train_batch consumed the attributed micro-batches
        for j in range(before, loader.pos):
            rec.micro_batch(step, [IDS[j % len(IDS)]])
        assert torch.isfinite(torch.tensor(ns["loss"]))
    finish(ns)
    return rec


# -- the tests -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    tmp = tempfile.mkdtemp(prefix="motive-snip-")
    d = Daemon(os.path.join(tmp, "data"))
    try:
        yield d
    finally:
        d.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def test_every_python_block_has_a_harness() -> None:
    snippets = doc_snippets()
    assert set(common_parts(snippets["common"])) == {0, 1, 2, 3, 4}


def test_common_block_in_an_accelerate_loop(daemon: Daemon) -> None:
    check_daemon(daemon, "snip-acc", accelerate_harness(daemon, "snip-acc", doc_snippets()["common"]))


def test_diffsynth_block(daemon: Daemon) -> None:
    check_daemon(daemon, "snip-diffsynth", diffsynth_harness(daemon, "snip-diffsynth", doc_snippets()))


def test_musubi_blocks(daemon: Daemon) -> None:
    check_daemon(daemon, "snip-musubi", musubi_harness(daemon, "snip-musubi", doc_snippets()))


def test_diffusion_pipe_block(daemon: Daemon) -> None:
    check_daemon(daemon, "snip-dpipe", diffusion_pipe_harness(daemon, "snip-dpipe", doc_snippets()))


def test_an_edited_snippet_fails(daemon: Daemon) -> None:
    """The check is sharp: a common block that stamps micro-batches with the wrong step, or a
    block nobody runs, is caught."""
    common = doc_snippets()["common"]
    broken = common.replace("attr.step(global_step,", "attr.step(global_step + 1,")
    assert broken != common
    rec = accelerate_harness(daemon, "snip-broken", broken)
    with pytest.raises(AssertionError):
        check_daemon(daemon, "snip-broken", rec)
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    with pytest.raises(AssertionError, match="no test runs"):
        doc_snippets(text + "\n```python\nprint('an unexercised snippet')\n```\n")
