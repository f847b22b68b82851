"""The trainer's parts on their own: checkpoints (save, keep the latest, restore), the dev set, batches."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from colsplade.training import TrainExample
from colsplade.training._checkpoints import (
    checkpoint_state,
    latest_checkpoint,
    restore_checkpoint,
    save_checkpoint,
)
from colsplade.training._dev_eval import DevSet, dev_set
from colsplade.training._inputs import make_batch


def _objects() -> tuple:
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LinearLR(optimizer)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    return model, optimizer, scheduler, scaler


def test_a_checkpoint_restores_weights_position_and_random_streams(tmp_path: Path) -> None:
    model, optimizer, scheduler, scaler = _objects()
    assert latest_checkpoint(tmp_path) is None
    save_checkpoint(tmp_path, checkpoint_state(model, optimizer, scheduler, scaler, 1, 0, 2))
    random.seed(7), np.random.seed(7), torch.manual_seed(7)
    path = save_checkpoint(tmp_path, checkpoint_state(model, optimizer, scheduler, scaler, 12, 3, 4))
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    assert latest_checkpoint(tmp_path) == path and path.name == "step-0000012.pt"
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # only the latest is kept

    fresh, f_optimizer, f_scheduler, f_scaler = _objects()
    position = restore_checkpoint(path, torch.device("cpu"), fresh, f_optimizer, f_scheduler, f_scaler)
    assert position == (12, 3, 4)
    assert torch.equal(fresh.weight, model.weight)
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected


def test_the_dev_set_holds_every_positive_and_hard_negative() -> None:
    corpus = {f"d{i}": f"text {i}" for i in range(50)}
    dev = [TrainExample("q1", "query one", ["d3"], ["d40"]), TrainExample("q2", "query two", ["d7", "d8"])]
    picked = dev_set(dev, corpus, size=10, seed=0)
    assert picked.queries == {"q1": "query one", "q2": "query two"}
    assert picked.qrels == {"q1": {"d3": 1}, "q2": {"d7": 1, "d8": 1}}
    assert len(picked.corpus) == 10 and {"d3", "d7", "d8", "d40"} <= set(picked.corpus)
    assert picked.corpus == dev_set(dev, corpus, size=10, seed=0).corpus  # seeded
    assert dev_set([], corpus, size=10, seed=0) == DevSet()


def test_a_batch_puts_each_positive_first_in_its_group() -> None:
    corpus = {f"d{i}": f"text {i}" for i in range(6)}
    examples = [
        TrainExample("q1", "one", ["d0"], ["d1", "d2"]),
        TrainExample("q2", "two", ["d3", "d0"], ["d4"]),
    ]
    batch = make_batch(examples, corpus, list(corpus), 1, random.Random(0))
    assert batch.queries == ["one", "two"] and len(batch.docs) == 4
    assert batch.labels == [0, 2] and batch.groups == [[0, 1], [2, 3]]
    for i, e in enumerate(examples):
        assert batch.docs[batch.labels[i]] in {corpus[d] for d in e.positives}
    assert batch.teacher is None
