"""A run's checkpoints: everything an interrupted run needs to continue exactly where it stopped.

A checkpoint holds the weights, the optimiser, scheduler and grad-scaler states, the position (step,
epoch, micro-batches of the epoch done) and every RNG stream (Python, NumPy, torch, CUDA). Only the
latest is kept, written atomically.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["CHECKPOINT_DIR", "checkpoint_state", "latest_checkpoint", "restore_checkpoint", "save_checkpoint"]

#: the folder of the output directory that holds the checkpoints (removed at the end unless kept).
CHECKPOINT_DIR = "checkpoints"


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_state(
    model: Any, optimizer: Any, scheduler: Any, scaler: Any, step: int, epoch: int, micro_done: int
) -> dict[str, Any]:
    """What a checkpoint holds: the training objects' states, the position and the RNG streams now."""
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "step": step,
        "epoch": epoch,
        "micro_done": micro_done,
        "rng": _rng_state(),
    }


def save_checkpoint(out: Path, state: dict[str, Any]) -> Path:
    """Write ``state`` as the latest checkpoint under ``out`` (older ones removed); returns its path."""
    ckpt_dir = out / CHECKPOINT_DIR
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    path = ckpt_dir / f"step-{state['step']:07d}.pt"
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # atomic: a kill mid-write never leaves a half checkpoint as the latest
    for old in sorted(ckpt_dir.glob("step-*.pt"))[:-1]:
        old.unlink()
    return path


def latest_checkpoint(out: Path) -> Path | None:
    """The latest checkpoint of the run in ``out``, None when it has none."""
    found = sorted((out / CHECKPOINT_DIR).glob("step-*.pt"))
    return found[-1] if found else None


def restore_checkpoint(
    path: Path, device: torch.device, model: Any, optimizer: Any, scheduler: Any, scaler: Any
) -> tuple[int, int, int]:
    """Load the checkpoint at ``path`` into the training objects and the RNG streams.

    Returns its position: (step, epoch, micro-batches of the epoch done).
    """
    # weights_only=False: the RNG states are NumPy / Python objects; the file is this run's own
    state = torch.load(path, map_location=device, weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    _set_rng_state(state["rng"])
    return state["step"], state["epoch"], state["micro_done"]
