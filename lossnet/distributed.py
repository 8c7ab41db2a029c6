"""The generator loop on several processes: torchrun + PyTorch DistributedDataParallel.

    torchrun --standalone --nproc-per-node 2 -m lossnet train-style ...                 # one machine
    torchrun --nnodes 2 --nproc-per-node 2 --rdzv-backend c10d --rdzv-endpoint HOST:29500 -m lossnet train-style ...

`train()` asks `Distributed.from_env()`: torchrun's WORLD_SIZE / RANK / LOCAL_RANK variables start a process
group (gloo on CPU, nccl on CUDA); without them it is one process and nothing changes. The batch stays a
function of (seed, step): every rank draws the same global batch and keeps its own slice, so a run gives the
same model on 1, 2 or N processes up to floating point (DDP averages the gradients of the slices, which is
the gradient of the global batch because every loss is a mean over its images). Rank 0 alone writes.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
from torch import nn

from .errors import LossnetError


def is_main_process() -> bool:
    """Rank 0 under torchrun, or a plain single process: the one that writes files."""
    return int(os.environ.get("RANK", "0")) == 0


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    started_here: bool = False  # this process group was created by us (and is ended by `close`)

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, device: str) -> "Distributed":
        """The torchrun environment, its process group started (or reused) for `device`."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        import torch.distributed as dist
        backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
        started = False
        if not dist.is_initialized():
            dist.init_process_group(backend)
            started = True
        return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")),
                   dist.get_backend(), started)

    def device(self, device: str) -> str:
        """One GPU per process: cuda -> cuda:LOCAL_RANK."""
        if self.active and device == "cuda":
            return f"cuda:{self.local_rank}"
        return device

    def wrap(self, module: nn.Module | None) -> nn.Module | None:
        """DDP around a trained module (the generator, the discriminator); the frozen loss network is not."""
        if module is None or not self.active:
            return module
        from torch.nn.parallel import DistributedDataParallel
        param = next(module.parameters())
        if param.device.type != "cuda":
            return DistributedDataParallel(module)
        # On GPUs batch norm (pix2pix) takes its statistics over the global batch, as one process would; the
        # conversion is in place and keeps the state dict. torch's SyncBatchNorm runs on GPUs only: on CPU each
        # process normalises its own slice (the style and SR nets use instance norm, which is per image anyway).
        module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
        return DistributedDataParallel(module, device_ids=[param.device.index])

    def no_sync(self, module):
        """No gradient reduction for `module` in this block: the discriminator during the generator's step,
        where its parameters are frozen and get no gradient."""
        if self.active and hasattr(module, "no_sync"):
            return module.no_sync()
        return contextlib.nullcontext()

    def shard(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """This rank's slice of every image batch (N, C, H, W) of the global batch; other entries (e.g. a
        style condition vector) are the same for all."""
        if not self.active:
            return batch
        n = batch["input"].shape[0]
        if n % self.world_size:
            raise LossnetError(f"the batch size {n} is not a multiple of the {self.world_size} processes: "
                               f"--batch-size is the global batch, e.g. {max(1, n // self.world_size) * self.world_size}")
        k = n // self.world_size
        return {key: (v[self.rank * k:(self.rank + 1) * k] if v.dim() == 4 and v.shape[0] == n else v)
                for key, v in batch.items()}

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """The mean of each value over the ranks (losses of the global batch, for the log and the finite
        check: a non-finite value on any rank is non-finite on all, so all stop together)."""
        if not self.active or not values:
            return values
        import torch.distributed as dist
        device = "cuda" if self.backend == "nccl" else "cpu"
        t = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return dict(zip(values, (t / self.world_size).tolist()))

    def barrier(self) -> None:
        if self.active:
            import torch.distributed as dist
            dist.barrier()

    def close(self) -> None:
        if self.started_here:
            import torch.distributed as dist
            dist.destroy_process_group()
            self.started_here = False
