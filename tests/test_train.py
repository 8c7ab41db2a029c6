"""THE generator loop (lossnet.train.train) on a 1-conv generator and a 1-conv discriminator: no pretrained
weights, a few seconds. Exact resume, log truncation, the lr schedule, non-finite errors, checkpoints, samples."""
from __future__ import annotations

import csv
import math

import pytest
import torch
from torch import nn

from lossnet.errors import LossnetError
from lossnet.train import Task, TrainConfig, seeded, train


class TinyTask(Task):
    """Learn to double the input's red channel; with `gan`, a 1-conv critic adds an adversarial term."""

    def __init__(self, gan: bool = False, blow_up: bool = False, seed: int = 0):
        with seeded(seed):
            self.generator = nn.Conv2d(3, 3, 3, padding=1)
            self.discriminator = nn.Conv2d(3, 1, 3) if gan else None
        self.blow_up = blow_up

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(1000 + step)  # a function of the step: resume sees the same batches
        x = torch.rand(2, 3, 12, 12, generator=g)
        target = x.clone()
        target[:, 0] *= 2
        return {"input": x, "target": target}

    def generator_loss(self, batch, output):
        losses = {"l1": (output - batch["target"]).abs().mean()}
        if self.discriminator is not None:
            losses["gan"] = 0.1 * nn.functional.softplus(-self.discriminator(output)).mean()
        if self.blow_up:
            losses["l1"] = losses["l1"] * float("inf")
        return losses

    def discriminator_loss(self, batch, output):
        real, fake = self.discriminator(batch["target"]), self.discriminator(output)
        return {"real": nn.functional.softplus(-real).mean(), "fake": nn.functional.softplus(fake).mean()}

    def samples(self, batch, output):
        return torch.cat([batch["input"][0], output[0].clamp(0, 1)], -1)[None]


def config(**kw) -> TrainConfig:
    return TrainConfig(**{"iters": 12, "lr": 1e-2, "checkpoint_every": 4, "sample_every": 6, "progress": False,
                          "precision": "fp32", **kw})


def weights(task) -> list[torch.Tensor]:
    nets = [task.generator] + ([task.discriminator] if task.discriminator is not None else [])
    return [p.detach().clone() for n in nets for p in n.parameters()]


def log_rows(run_dir) -> list[dict]:
    with open(run_dir / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("gan", [False, True], ids=["fixed loss", "with discriminator"])
def test_training_lowers_the_loss_and_writes_log_samples_checkpoint(tmp_path, gan):
    task = TinyTask(gan)
    rows = train(task, tmp_path, config(iters=40))
    assert rows[-1]["l1"] < 0.5 * rows[0]["l1"]
    assert [r["step"] for r in rows] == list(range(1, 41))
    assert ("d_total" in rows[0]) == gan and ("gan" in rows[0]) == gan
    assert len(log_rows(tmp_path)) == 40
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == [f"step{s:06d}.png" for s in range(6, 41, 6)] + ["step000040.png"]
    assert (tmp_path / "checkpoint.safetensors").is_file() and (tmp_path / "checkpoint.previous.safetensors").is_file()
    assert not task.generator.training  # handed back in eval mode


@pytest.mark.parametrize("gan", [False, True], ids=["fixed loss", "with discriminator"])
def test_resume_after_an_interruption_equals_the_uninterrupted_run(tmp_path, gan):
    whole = TinyTask(gan)
    train(whole, tmp_path / "whole", config())
    first = TinyTask(gan)
    train(first, tmp_path / "parts", config(iters=8))  # as if killed after the step-8 checkpoint
    (tmp_path / "parts" / "log.csv").open("a").write("9,1.0,0.01,9.9,9.9\n")  # a row past the checkpoint
    second = TinyTask(gan, seed=99)  # another start: resume must restore everything
    rows = train(second, tmp_path / "parts", config(), resume=True)
    assert rows[0]["step"] == 9
    for a, b in zip(weights(whole), weights(second)):
        assert torch.equal(a, b)
    logged = log_rows(tmp_path / "parts")
    assert [int(r["step"]) for r in logged] == list(range(1, 13))  # the stale step-9 row is gone
    assert [r["total"] for r in logged] == [r["total"] for r in log_rows(tmp_path / "whole")]


def test_resume_without_a_checkpoint_starts_at_step_zero_and_says_so(tmp_path, caplog):
    import logging
    logging.getLogger("lossnet").propagate = True  # the notices, seen by pytest's log capture
    with caplog.at_level(logging.INFO, logger="lossnet"):
        rows = train(TinyTask(), tmp_path, config(iters=3), resume=True)
    assert rows[0]["step"] == 1 and "no checkpoint in" in caplog.text


def test_the_lr_decays_linearly_to_zero_from_decay_from(tmp_path):
    rows = train(TinyTask(), tmp_path, config(iters=10, decay_from=6))
    assert [r["lr"] for r in rows[:6]] == [1e-2] * 6
    assert [round(r["lr"], 6) for r in rows[6:]] == [0.01, 0.0075, 0.005, 0.0025]
    cfg = config(iters=10, decay_from=6)
    assert cfg.lr_factor(10) == 0.0 and cfg.lr_factor(5) == 1.0


def test_a_non_finite_loss_stops_with_the_term_named(tmp_path):
    task = TinyTask(blow_up=True)
    with pytest.raises(LossnetError, match=r"generator loss term l1 became non-finite at step 0"):
        train(task, tmp_path, config())
    assert not (tmp_path / "checkpoint.safetensors").exists()


def test_a_checkpoint_of_another_network_is_refused_in_one_line(tmp_path):
    train(TinyTask(), tmp_path, config(iters=4))
    other = TinyTask()
    other.generator = nn.Conv2d(3, 3, 5, padding=2)
    with pytest.raises(LossnetError, match="does not fit this generator"):
        train(other, tmp_path, config(iters=8), resume=True)


def test_a_damaged_checkpoint_falls_back_to_the_previous_one(tmp_path):
    train(TinyTask(), tmp_path, config(iters=8))
    (tmp_path / "checkpoint.safetensors").write_bytes(b"\0" * 100)  # a write cut short
    with pytest.warns(UserWarning, match="damaged"):
        rows = train(TinyTask(), tmp_path, config(iters=10), resume=True)
    assert rows[0]["step"] == 5  # from the step-4 checkpoint


def test_the_same_seed_gives_the_same_run(tmp_path):
    a = train(TinyTask(), tmp_path / "a", config(iters=5))
    b = train(TinyTask(), tmp_path / "b", config(iters=5))
    assert [r["total"] for r in a] == [r["total"] for r in b] and all(math.isfinite(r["total"]) for r in a)
