"""Data-parallel distillation under ``torchrun`` (``torch.distributed``; NCCL on GPUs, gloo on CPUs).

    torchrun --nproc-per-node 4 -m clir_ot distill --lang sw --method ot --out runs/distill/sw-ot
    torchrun --nnodes 2 --node-rank R --master-addr HOST --nproc-per-node 8 -m clir_ot distill ...

Every rank reads the same deterministic order of training examples; of each step's global batch
(``batch_size`` examples) rank ``r`` takes the ``r``-th of ``world_size`` equal slices and splits it into
``grad_accum`` micro-batches. Each micro-batch's loss (a mean over its pairs) is divided by
``grad_accum`` before its backward pass, and the gradients are then averaged over the ranks with one
``all_reduce`` — the reduction ``DistributedDataParallel`` performs, done after the backward passes so
that the encoder keeps its own interface. The update therefore follows the mean loss over the whole
global batch, whatever the world size: 2 ranks × 8 pairs and 1 process × 16 pairs give the same weights
up to floating-point summation order and two batch-level effects that a reader should know:

- each micro-batch is padded to its own longest text (padding is masked, so only rounding changes);
- Sinkhorn stops when the *batch*'s largest marginal error is below ``ot_stop_thr``, so a pair may get
  a few more or fewer iterations in a smaller batch (plans differ by at most about ``ot_stop_thr``).

Dropout draws its masks from each rank's own generator (seeded ``seed + rank``); only with dropout off
are the two set-ups comparable weight for weight. Rank 0 alone writes: logs, probes, snapshots,
checkpoints (with every rank's random state, so ``--resume`` continues each rank where it stopped) and
the final student.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..errors import ClirOtError


@dataclass(frozen=True)
class World:
    """This process's place among the ranks of a run (rank 0 of 1 outside ``torchrun``)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def launched_world() -> World:
    """The world ``torchrun`` describes in the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``)."""
    values = {}
    for name, default, least in (("RANK", "0", 0), ("WORLD_SIZE", "1", 1), ("LOCAL_RANK", "0", 0)):
        raw = os.environ.get(name, default)
        try:
            values[name] = int(raw)
        except ValueError:
            values[name] = None
        if values[name] is None or values[name] < least:
            raise ClirOtError(f"${name} is {raw!r}: torchrun sets it to a whole number ≥ {least}; unset it to train "
                              "in one process")
    if values["RANK"] >= values["WORLD_SIZE"]:
        raise ClirOtError(f"$RANK {values['RANK']} is not below $WORLD_SIZE {values['WORLD_SIZE']}")
    return World(values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"])


def init(world: World, device_type: str) -> None:
    """Join the process group (NCCL for CUDA, gloo otherwise) once; nothing to do for one process."""
    import torch.distributed as dist

    if world.distributed and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")


def close(world: World) -> None:
    """Leave the process group at the end of a run (before the process exits)."""
    import torch.distributed as dist

    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(world: World) -> None:
    if world.distributed:
        torch.distributed.barrier()


def average_gradients(parameters: list[torch.nn.Parameter], world: World) -> None:
    """Replace every gradient by its mean over the ranks (one ``all_reduce`` over the flattened gradients)."""
    if not world.distributed:
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.distributed.all_reduce(flat)
    flat /= world.size
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def mean_over_ranks(values: dict[str, float], world: World) -> dict[str, float]:
    """The mean of each logged number over the ranks (what rank 0 writes to the log)."""
    if not world.distributed or not values:
        return values
    keys = sorted(values)
    tensor = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    torch.distributed.all_reduce(tensor)
    return {k: float(v) / world.size for k, v in zip(keys, tensor.tolist(), strict=True)}


def gather(obj: object, world: World) -> list[object]:
    """Every rank's ``obj``, in rank order, on every rank."""
    if not world.distributed:
        return [obj]
    out: list[object] = [None] * world.size
    torch.distributed.all_gather_object(out, obj)
    return out


def micro_batches(examples: list, world: World, grad_accum: int) -> list[list]:
    """This rank's slice of a global batch, cut into ``grad_accum`` equal micro-batches."""
    per_rank = len(examples) // world.size
    mine = examples[world.rank * per_rank:(world.rank + 1) * per_rank]
    size = per_rank // grad_accum
    return [mine[i * size:(i + 1) * size] for i in range(grad_accum)]
