"""The pieces every training command shares (promptseg.train.loop)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from promptseg.errors import InputError, PromptsegError
from promptseg.train.loop import (
    DecodedImages,
    LrSchedule,
    TrainRun,
    holdout_split,
    make_optimizer,
    progress_bar,
    train_epoch,
)


def test_holdout_split_is_seeded_disjoint_and_complete():
    train, val = holdout_split(50, 0.2, seed=3)
    assert len(val) == 10 and len(train) == 40
    assert sorted(train + val) == list(range(50))
    assert train == sorted(train) and val == sorted(val)
    assert holdout_split(50, 0.2, seed=3) == (train, val)
    assert holdout_split(50, 0.2, seed=4)[1] != val


@pytest.mark.parametrize("n,fraction,min_train", [(3, 0.1, 1), (2, 0.5, 2), (4, 1.0, 1)])
def test_holdout_split_refuses_an_empty_side(n, fraction, min_train):
    with pytest.raises(InputError, match="--val-fraction"):
        holdout_split(n, fraction, seed=0, min_train=min_train)


def test_train_epoch_steps_once_per_batch_and_returns_the_mean_loss():
    torch.manual_seed(0)
    weight = torch.nn.Parameter(torch.tensor([2.0]))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    seen = []

    def loss_of(batch):
        seen.append(batch)
        return (weight ** 2).sum()

    with progress_bar(False) as bar:
        mean = train_epoch(bar, 1, 1, [0, 1, 2], loss_of, optimizer)
    # w <- w - 0.1 * 2w = 0.8 w each step: losses 4, 2.56, 1.6384
    assert seen == [0, 1, 2]
    assert mean == pytest.approx((4.0 + 2.56 + 1.6384) / 3)
    assert weight.item() == pytest.approx(2.0 * 0.8 ** 3)


def test_train_epoch_stops_on_a_non_finite_loss_with_advice():
    weight = torch.nn.Parameter(torch.tensor([1.0]))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    with progress_bar(False) as bar, pytest.raises(PromptsegError, match="lower --lr"):
        train_epoch(bar, 2, 3, [0], lambda b: weight * math.inf, optimizer)


def test_cosine_schedule_warms_up_then_decays_to_zero():
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = make_optimizer([weight], "adamw", lr=1.0)
    schedule = LrSchedule(optimizer, "cosine", total_steps=12, warmup_steps=2)
    rates = [schedule.lr]
    for _ in range(12):
        optimizer.step()  # (no gradients: only the order torch expects)
        schedule.step_batch()
        rates.append(schedule.lr)
    assert rates[0] == pytest.approx(0.5) and rates[1] == pytest.approx(1.0)
    assert rates[6] == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.4)))
    assert rates[12] == pytest.approx(0.0, abs=1e-12)


def test_decoded_images_resize_and_keep_within_budget(tmp_path):
    paths = []
    for k in range(3):
        path = tmp_path / f"{k}.png"
        Image.fromarray(np.full((20, 30, 3), 40 * k, np.uint8)).save(path)
        paths.append(path)
    images = DecodedImages(budget_bytes=2 * 8 * 8 * 3, size=8)
    got = [images.get(p) for p in paths]
    assert all(g.shape == (8, 8, 3) and g.dtype == np.uint8 for g in got)
    assert int(got[2][0, 0, 0]) == 80
    assert len(images.images) == 2 and images.used <= images.budget
    assert DecodedImages().get(paths[0]).shape == (20, 30, 3)


def test_train_run_restores_model_optimizer_and_epoch(tmp_path):
    model = torch.nn.Linear(2, 1)
    optimizer = make_optimizer(model.parameters(), "adamw", lr=0.1)
    model(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    run = TrainRun(tmp_path / "run", {"lr": 0.1})
    run.save_state({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "epoch": 3, "best": 0.5})
    with pytest.raises(InputError, match="--resume"):
        TrainRun(tmp_path / "run", {"lr": 0.1})
    again = TrainRun(tmp_path / "run", {"lr": 0.1}, resume=True)
    fresh = torch.nn.Linear(2, 1)
    fresh_opt = make_optimizer(fresh.parameters(), "adamw", lr=0.1)
    start, best = again.restore(again.load_state(), fresh, fresh_opt)
    assert (start, best) == (4, 0.5)
    assert torch.equal(fresh.weight, model.weight)
    assert fresh_opt.state_dict()["state"][0]["step"] == 1


def test_train_run_folder_appears_with_the_first_record(tmp_path):
    run = TrainRun(tmp_path / "run", {"lr": 0.1})
    assert not (tmp_path / "run").exists()  # a run that fails on its inputs leaves nothing
    run.log({"epoch": 0, "val_loss": 1.0})
    assert json.loads((tmp_path / "run" / "train_config.json").read_text()) == {"lr": 0.1}
    assert run.metrics() == [{"epoch": 0, "val_loss": 1.0}]
