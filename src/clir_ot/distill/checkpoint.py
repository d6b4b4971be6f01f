"""Checkpoints of a distillation run and the saved student: written atomically
(:func:`clir_ot.artifacts.atomic_dir`), so that ``--resume`` after a kill at any moment continues from one
complete ``checkpoint/`` and ends with the same weights as an uninterrupted run.

A checkpoint holds tensors and plain values only (the random states too: numpy's as a tensor and numbers), and
is read with ``torch.load(..., weights_only=True)``: a file that would need arbitrary objects unpickled (a
crafted ``trainer.pt`` in a run folder) is refused with one line, never run."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..artifacts import atomic_dir, recover_dir, write_text_atomic
from ..errors import ClirOtError
from . import distributed

if TYPE_CHECKING:
    from ..models import Encoder
    from .components import Models


def trainable_state(models: Models) -> dict[str, torch.Tensor]:
    """A CPU copy of the student's trained parameters (what a checkpoint keeps of the student)."""
    return {k: v.detach().cpu().clone() for k, v in models.student.model.named_parameters() if v.requires_grad}


def save_checkpoint(out: Path, models: Models, optimizer, scheduler, step: int, consumed: int,
                    world: distributed.World = distributed.World()) -> None:
    """Write ``out/checkpoint`` atomically; every rank's random state is gathered into it, and rank 0 writes
    it. A checkpoint is complete once its ``trainer.pt``, written last, is there."""
    rng = {"torch_rng": torch.get_rng_state(),
           "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
           "python_rng": random.getstate(), "numpy_rng": _numpy_state_to_plain(np.random.get_state())}
    ranks_rng = distributed.gather(rng, world)
    if not world.is_main:
        distributed.barrier(world)
        return
    with atomic_dir(out / "checkpoint") as tmp:
        torch.save(trainable_state(models), tmp / "student_trainable.pt")
        if models.teacher_map is not None:
            torch.save(models.teacher_map.state_dict(), tmp / "teacher_map.pt")
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "step": step,
                    "consumed": consumed, "world_size": world.size, "ranks_rng": ranks_rng}, tmp / "trainer.pt")
    distributed.barrier(world)


def _numpy_state_to_plain(state: tuple) -> dict:
    """numpy's legacy random state (``np.random.get_state()``) as a tensor and plain numbers."""
    name, keys, pos, has_gauss, cached = state
    return {"name": str(name), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}


def _numpy_state_from_plain(state: dict) -> tuple:
    return (state["name"], state["keys"].numpy().astype(np.uint32), state["pos"], state["has_gauss"],
            state["cached_gaussian"])


class UnreadableCheckpointError(ClirOtError):
    """A checkpoint that is not made of the tensors and plain values clir-ot writes (older, altered or crafted)."""


def _load(path: Path, map_location=None):
    """A checkpoint file read without unpickling arbitrary objects; one line where it cannot be."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError or others for a file it refuses
        raise UnreadableCheckpointError(f"{path} cannot be read as a clir-ot checkpoint of tensors and plain values "
                          f"({' '.join(str(exc).split())[:160]}); it was not written by this version of clir-ot "
                          "or was altered: start the run again with --overwrite") from None


def _trainer_state_ok(trainer: object) -> bool:
    """Whether ``trainer`` has the shape :func:`save_checkpoint` writes."""
    if not isinstance(trainer, dict) or not {"optimizer", "scheduler", "step", "consumed", "world_size",
                                             "ranks_rng"} <= trainer.keys():
        return False
    counts = all(isinstance(trainer[k], int) and not isinstance(trainer[k], bool) for k in ("step", "consumed",
                                                                                         "world_size"))
    ranks = trainer["ranks_rng"]
    return counts and isinstance(ranks, list | tuple) and len(ranks) == trainer["world_size"] and all(
        isinstance(r, dict) and {"torch_rng", "python_rng", "numpy_rng"} <= r.keys() for r in ranks)


def has_checkpoint(out: Path) -> bool:
    """Whether ``out`` holds a complete checkpoint to resume, or one that :func:`recover_checkpoint` restores."""
    return any(_complete(p) for p in (out / "checkpoint", out / "checkpoint.old"))


def recover_checkpoint(out: Path) -> None:
    """Bring ``out`` back to one complete ``checkpoint/`` from whatever a kill left while
    :func:`save_checkpoint` swapped it (:func:`clir_ot.artifacts.recover_dir`)."""
    recover_dir(out / "checkpoint", _complete)


def _complete(checkpoint: Path) -> bool:
    return (checkpoint / "trainer.pt").is_file()


def save_student(student: Encoder, target: Path, card: str | None = None) -> None:
    """Save ``student`` as a complete model folder at ``target``, atomically."""
    was_training = student.model.training
    with atomic_dir(target) as tmp:
        student.save(tmp)
        student.model.train(was_training)
        if card is not None:
            write_text_atomic(tmp / "README.md", card)


def discard_unresumable(out: Path, resume: bool, world: distributed.World) -> None:
    """After a failure: a fresh run (not ``resume``) that wrote no checkpoint leaves nothing behind (rank 0
    removes ``out``), so that the corrected command simply runs again; a run with a checkpoint is kept."""
    if not resume and world.is_main and not (out / "checkpoint").is_dir():
        shutil.rmtree(out, ignore_errors=True)


def truncate_log(log_path: Path, step: int) -> None:
    """Drop log records after the checkpoint's ``step``: the resumed run writes them again."""
    if not log_path.is_file():
        return
    lines = [line for line in log_path.read_text(encoding="utf-8").splitlines()
             if line.strip() and json.loads(line)["step"] <= step]
    write_text_atomic(log_path, "".join(f"{line}\n" for line in lines))


def load_checkpoint(out: Path, models: Models, optimizer, scheduler,
                    world: distributed.World = distributed.World()) -> tuple[int, int]:
    """Restore the student's trained weights, the teacher map, optimiser, schedule and this rank's random
    state from ``out/checkpoint``; return the step and the number of examples consumed."""
    ckpt = out / "checkpoint"
    if not (ckpt / "trainer.pt").is_file():
        raise ClirOtError(f"no checkpoint to resume in {out}; start without --resume")
    trainer = _load(ckpt / "trainer.pt")
    state = _load(ckpt / "student_trainable.pt", map_location=models.student.device)
    if not _trainer_state_ok(trainer) or not isinstance(state, dict):
        raise UnreadableCheckpointError(f"{ckpt} does not hold the states clir-ot writes (trainer.pt: optimiser, "
                                        "schedule, step, examples consumed, ranks' random states; "
                                        "student_trainable.pt: named tensors); start the run again with --overwrite")
    missing = models.student.model.load_state_dict(state, strict=False)
    if missing.unexpected_keys:
        raise ClirOtError(f"checkpoint in {ckpt} does not match the student model")
    if models.teacher_map is not None:
        models.teacher_map.load_state_dict(_load(ckpt / "teacher_map.pt", map_location=models.student.device))
    if trainer["world_size"] != world.size:
        raise ClirOtError(f"the checkpoint in {ckpt} was written by {trainer['world_size']} rank(s); resume "
                          f"it with as many (this run has {world.size}): each rank continues its own random state")
    optimizer.load_state_dict(trainer["optimizer"])
    scheduler.load_state_dict(trainer["scheduler"])
    rng = trainer["ranks_rng"][world.rank]
    torch.set_rng_state(rng["torch_rng"])
    if rng["cuda_rng"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda_rng"])
    random.setstate(rng["python_rng"])
    np.random.set_state(_numpy_state_from_plain(rng["numpy_rng"]))
    return trainer["step"], trainer["consumed"]
