"""THE generator loop: train a network against a fixed loss network, or a learned one (a discriminator).

Feed-forward style (Johnson et al.), super-resolution and pix2pix are each a `Task`: where batches come from
and which named loss terms the generator (and, for a GAN, the discriminator) minimises. The loop owns
everything else: optimisers, learning-rate schedule, progress bar, a CSV loss log, sample images, non-finite
checks, and checkpoints that make a killed run resume exactly where it was (same step, same optimiser state,
same random stream: batches are a function of the step, and the RNG state is saved).
"""
from __future__ import annotations

import contextlib
import csv
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .data import prefetched
from .errors import LossnetError, check_finite
from .io import save_image
from .distributed import Distributed
from .precision import announce, resolve as resolve_precision
from .progress import progress
from .weights import load_state_dict, notice, save_state_dict

Losses = dict[str, torch.Tensor]


class Task:
    """What a method gives the loop (subclass it): `generator`, `discriminator` (None, the default, for a fixed
    loss network), where batches come from and which named loss terms each network minimises. A trained
    method's task also says what its model file stores (`model_config`, for `lossnet.registry.train_model`)."""
    generator: nn.Module
    discriminator: nn.Module | None = None

    def batch(self, step: int) -> dict[str, torch.Tensor]:  # deterministic in (seed, step): resume is exact
        raise NotImplementedError

    def forward(self, batch: dict) -> torch.Tensor:
        """The generator's output for a batch (override to pass it more than the input, e.g. a style)."""
        return self.generator(batch["input"])

    def generator_loss(self, batch: dict, output: torch.Tensor) -> Losses:
        raise NotImplementedError

    def discriminator_loss(self, batch: dict, output: torch.Tensor) -> Losses:
        """The discriminator's terms on a detached output (a GAN's; with no discriminator, never called)."""
        return {}

    def samples(self, batch: dict, output: torch.Tensor) -> torch.Tensor:  # an image grid (1, 3, H, W)
        raise NotImplementedError

    def model_config(self) -> dict:
        """What rebuilds the trained generator (its constructor's config, the method's facts about it)."""
        raise NotImplementedError


@dataclass
class TrainConfig:
    iters: int = 2000
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    decay_from: int | None = None  # linear decay of the lr to 0 from this step on (pix2pix); None: constant
    checkpoint_every: int = 100
    sample_every: int = 100
    seed: int = 0
    device: str = "cpu"
    workers: int = 2  # threads that make the next batches while a step runs (0: in the loop itself)
    precision: str = "auto"  # lossnet.precision: auto, fp32, bf16, fp16 (CUDA)
    progress: bool = True
    desc: str = "train"
    meta: dict = field(default_factory=dict)  # method config, saved with checkpoints

    def lr_factor(self, step: int) -> float:
        if self.decay_from is None or step < self.decay_from:
            return 1.0
        return max(0.0, 1.0 - (step - self.decay_from) / max(1, self.iters - self.decay_from))


@contextlib.contextmanager
def seeded(seed: int):
    """Build networks under this seed (a task's fresh generator), leaving the global RNG as it was: the same
    command and seed then start from the same weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


# ----------------------------------------------------------------------------- checkpoints
def _flatten_optimizer(prefix: str, opt: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    sd = opt.state_dict()
    for index, state in sd["state"].items():
        for name, value in state.items():
            tensors[f"{prefix}.state.{index}.{name}"] = torch.as_tensor(value)
    meta[prefix] = sd["param_groups"]


def _unflatten_optimizer(prefix: str, opt: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith(prefix + ".state."):
            index, name = key[len(prefix) + 7:].split(".", 1)
            state.setdefault(int(index), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": meta[prefix]})


def previous_checkpoint(path: Path) -> Path:
    return path.with_name(path.stem + ".previous" + path.suffix)


def save_checkpoint(path: Path, step: int, modules: dict[str, nn.Module], optimizers: dict, cfg: TrainConfig) -> None:
    """Write `path` atomically, keeping the one before as `*.previous.safetensors`: a kill at any moment, or a
    full disk, leaves at least one whole checkpoint."""
    if path.is_file():
        os.replace(path, previous_checkpoint(path))
    tensors = {f"{name}.{k}": v for name, m in modules.items() for k, v in m.state_dict().items()}
    meta: dict = {"step": step, "config": cfg.meta}
    for name, opt in optimizers.items():
        _flatten_optimizer(f"optim_{name}", opt, tensors, meta)
    tensors["rng.torch"] = torch.get_rng_state()
    save_state_dict(tensors, path, metadata={"lossnet_checkpoint": json.dumps(meta)})


def resume_checkpoint(path: Path, modules: dict[str, nn.Module], optimizers: dict) -> int | None:
    """Restore the newest whole checkpoint (`path`, else the previous one); None where there is none. A damaged
    checkpoint (a truncated file, a failed write) is said in one warning line and the previous one used."""
    import warnings
    candidates = [p for p in (path, previous_checkpoint(path)) if p.is_file()]
    for i, candidate in enumerate(candidates):
        try:
            return load_checkpoint(candidate, modules, optimizers)
        except LossnetError:
            raise  # a whole checkpoint of another network: not damage, the user's mistake
        except Exception as e:  # safetensors' and json's errors for a damaged file
            if i + 1 == len(candidates):
                raise LossnetError(f"checkpoint {candidate} is damaged ({str(e).splitlines()[0]}) and no earlier "
                                   "one is whole: start without --resume") from None
            warnings.warn(f"checkpoint {candidate} is damaged ({str(e).splitlines()[0]}): "
                          f"resuming from {candidates[i + 1]}", stacklevel=2)
    return None


def load_checkpoint(path: Path, modules: dict[str, nn.Module], optimizers: dict) -> int:
    """Restore modules, optimisers and the RNG; returns the step to continue from."""
    from safetensors import safe_open
    with safe_open(str(path), "pt") as f:
        meta = json.loads((f.metadata() or {}).get("lossnet_checkpoint", "null") or "null")
    if meta is None:
        raise LossnetError(f"{path} is not a lossnet training checkpoint")
    tensors = load_state_dict(path)
    for name, module in modules.items():
        own = {k[len(name) + 1:]: v for k, v in tensors.items() if k.startswith(name + ".")}
        try:
            module.load_state_dict(own, strict=True)
        except RuntimeError as e:
            raise LossnetError(f"checkpoint {path} does not fit this {name}: {str(e).splitlines()[0]}") from None
    for name, opt in optimizers.items():
        _unflatten_optimizer(f"optim_{name}", opt, tensors, meta)
    torch.set_rng_state(tensors["rng.torch"])
    return int(meta["step"])


# ----------------------------------------------------------------------------- the loop
class LossLog:
    """log.csv: one row per step with every loss term; on resume, rows past the checkpoint are dropped."""

    def __init__(self, path: Path, resume_step: int):
        self.path, self.fields = path, None
        rows = []
        if resume_step and path.is_file():
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        if rows:
            self.fields = list(rows[0].keys())
            self._rewrite(rows)
        else:
            path.unlink(missing_ok=True)

    def _rewrite(self, rows):
        with open(self.path, "w", newline="") as f:
            w = csv.DictWriter(f, self.fields)
            w.writeheader()
            w.writerows(rows)

    def write(self, row: dict) -> None:
        new = self.fields is None
        if new:
            self.fields = list(row.keys())
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, self.fields, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(row)


def _step(opt, scaler, losses: Losses) -> None:
    """One optimiser step on the sum of the losses (fp32; the backward pass runs outside autocast, as torch
    advises). `scaler` is fp16's loss scaling, a no-op in fp32 and bf16."""
    opt.zero_grad(set_to_none=True)
    total = sum(v.float() for v in losses.values())
    scaler.scale(total).backward()
    scaler.step(opt)
    scaler.update()


def train(task: Task, run_dir: str | Path, cfg: TrainConfig, resume: bool = False,
          on_checkpoint: Callable[[int], None] | None = None) -> list[dict]:
    """Train task.generator for cfg.iters steps; returns the loss rows. Resumes from run_dir/checkpoint.

    Under torchrun (`lossnet.distributed`) each process trains on its slice of every global batch, DDP
    averages the gradients, and rank 0 alone writes the log, samples, checkpoints and `on_checkpoint`'s files;
    a run resumes from its checkpoint with any number of processes."""
    run_dir = Path(run_dir)
    ddp = Distributed.from_env(cfg.device)
    device = ddp.device(cfg.device)
    before, steps = _existing(run_dir), []
    try:
        return _train(task, run_dir, cfg, resume, on_checkpoint, ddp, device, steps)
    except BaseException:
        if ddp.main and not steps:  # nothing ran: leave nothing this run made (its log and checkpoint stay)
            _remove_new(run_dir, before)
        raise
    finally:
        ddp.close()


def _existing(run_dir: Path) -> set[Path]:
    """Every path of the run folder, and every folder above it, that exists now."""
    return {p for p in (run_dir, *run_dir.parents) if p.exists()} | (set(run_dir.rglob("*")) if run_dir.is_dir() else set())


def _remove_new(run_dir: Path, before: set[Path]) -> None:
    """Remove what a run that failed before its first step made: the run folder's new files and folders, and
    the folders above it that it created."""
    made = ((set(run_dir.rglob("*")) if run_dir.is_dir() else set())
            | {p for p in (run_dir, *run_dir.parents) if p.exists()}) - before
    for path in sorted(made, key=lambda p: len(p.parts), reverse=True):  # files and inner folders first
        try:
            path.rmdir() if path.is_dir() and not path.is_symlink() else path.unlink()
        except OSError:  # something else was put there meanwhile: leave it
            pass


def train_to_file(task: Task, run_dir: str | Path, cfg: TrainConfig, resume: bool,
                  write_model: Callable[[int], Path]) -> Path:
    """`train`, with the model file written at every checkpoint by `write_model(step)` (rank 0), so a long run
    always has a usable model that says the step it reached; returns its path (None on the other ranks). The last
    step always checkpoints, so the model is written once more only when a resumed run had nothing left to do."""
    from .distributed import is_main_process
    written: list[Path] = []
    rows = train(task, run_dir, cfg, resume=resume, on_checkpoint=lambda step: written.append(write_model(step)))
    if not is_main_process():
        return None
    return written[-1] if rows else write_model(cfg.iters)


def _train(task, run_dir: Path, cfg: TrainConfig, resume: bool, on_checkpoint, ddp: Distributed,
           device: str, steps: list[int]) -> list[dict]:
    """The loop of `train`; `steps` gets each step this call completes."""
    if ddp.main:
        (run_dir / "samples").mkdir(parents=True, exist_ok=True)
    ckpt = run_dir / "checkpoint.safetensors"
    torch.manual_seed(cfg.seed)
    gen, disc = task.generator.to(device), task.discriminator
    modules = {"generator": gen}
    optimizers = {"g": torch.optim.Adam(gen.parameters(), lr=cfg.lr, betas=cfg.betas)}
    if disc is not None:
        modules["discriminator"] = disc.to(device)
        optimizers["d"] = torch.optim.Adam(disc.parameters(), lr=cfg.lr, betas=cfg.betas)
    precision = announce(resolve_precision(cfg.precision, device))  # one stderr line, like the weights notice
    scalers = {k: torch.amp.GradScaler(precision.device_type, enabled=precision.name == "fp16") for k in optimizers}
    step = (resume_checkpoint(ckpt, modules, optimizers) if resume else None)  # every rank reads the same one
    if step is not None and ddp.main:
        notice(f"resuming from {run_dir} at step {step}")
    elif resume and ddp.main:
        notice(f"no checkpoint in {run_dir}: starting from step 0")
    step = step or 0
    if ddp.active and ddp.main:
        notice(f"distributed training: {ddp.world_size} processes, backend {ddp.backend}")
    if ddp.main:
        (run_dir / "config.json").write_text(json.dumps(
            {"train": asdict(cfg), "world_size": ddp.world_size, "backend": ddp.backend}, indent=1, default=str))
    log = LossLog(run_dir / "log.csv", step) if ddp.main else None
    rows, start = [], time.time()
    for m in modules.values():
        m.train()
    # The task calls its networks through these attributes: under DDP they are the wrappers for the run.
    task.generator, task.discriminator = ddp.wrap(gen), ddp.wrap(disc)
    bar = progress(cfg.iters, cfg.desc, cfg.progress and ddp.main, initial=step,
                   faster="fewer --iters, a smaller --crop or --batch-size")
    batches = prefetched(task.batch, range(step, cfg.iters), cfg.workers)
    try:
        while step < cfg.iters:
            for opt in optimizers.values():
                for group in opt.param_groups:
                    group["lr"] = cfg.lr * cfg.lr_factor(step)
            batch = {k: v.to(device) for k, v in ddp.shard(next(batches)).items()}
            with precision.autocast():
                output = task.forward(batch)
            local = {}
            if disc is not None:  # learned loss: the discriminator first sees this output, detached
                disc.requires_grad_(True)
                with precision.autocast():
                    d_losses = task.discriminator_loss(batch, output.detach())
                _step(optimizers["d"], scalers["d"], d_losses)
                local.update({f"d_{k}": float(v.detach()) for k, v in d_losses.items()})
                disc.requires_grad_(False)
            with precision.autocast(), ddp.no_sync(task.discriminator):
                g_losses = task.generator_loss(batch, output)
            _step(optimizers["g"], scalers["g"], g_losses)
            local.update({k: float(v.detach()) for k, v in g_losses.items()})
            terms = ddp.mean(local)  # the global batch's losses: every rank sees the same values
            d_terms = {k[2:]: v for k, v in terms.items() if k.startswith("d_")}
            g_terms = {k: v for k, v in terms.items() if not k.startswith("d_")}
            check_finite(d_terms, f"at step {step}", "discriminator")
            check_finite(g_terms, f"at step {step}", "generator")
            row = ({"d_total": sum(d_terms.values())} if d_terms else {}) | {"total": sum(g_terms.values())} | terms
            step += 1
            steps.append(step)
            rows.append({"step": step, "seconds": round(time.time() - start, 2), "lr": cfg.lr * cfg.lr_factor(step - 1), **row})
            bar.update(1, row)
            if not ddp.main:
                continue
            log.write(rows[-1])
            if cfg.sample_every and (step % cfg.sample_every == 0 or step == cfg.iters):
                with torch.no_grad():
                    save_image(task.samples(batch, output.detach().float()), run_dir / "samples" / f"step{step:06d}.png")
            if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or step == cfg.iters:  # 0: at the end only
                save_checkpoint(ckpt, step, modules, optimizers, cfg)
                if on_checkpoint:
                    on_checkpoint(step)
    finally:
        batches.close()
        task.generator, task.discriminator = gen, disc
        bar.close()
    ddp.barrier()  # no rank leaves before rank 0 has written the last checkpoint
    gen.eval()
    return rows
