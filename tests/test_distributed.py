"""The generator loop under torchrun (gloo, CPU): 2 processes give the model 1 process gives for the same
global batch and seed, and a 2-process run killed after a checkpoint resumes on 1 process to the same result.

Tolerance, measured: DDP averages the two slices' gradients where one process averages the whole batch's, so
they agree to float rounding, not bit for bit. The logged loss of the global batch agrees to ~1e-7 relative at
every step (asserted: 1e-6). The weights: Adam divides each gradient by its running size, so an element whose
gradient is itself at rounding level takes a full-size step in a direction set by the
rounding (0.1 % of the style net's weights); the rest agree within 1e-6. pix2pix runs here without a norm:
its instance-norm variant keeps, as the reference does, conv biases that the norm cancels, whose gradients
are pure rounding that Adam turns into steps (0.6 % of the weights, 13 % of two steps' movement), and batch
norm is per process on CPU (torch's SyncBatchNorm needs a GPU; lossnet uses it there). Asserted: >= 99 % of the weights within 1e-5, and the
whole difference under a tenth of what the last two steps of the same run moved the weights (measured: 1-3 %).
A wrong slice or a missing average changes the loss at step 1 and most of the weights.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from lossnet.io import bundled_photo, resize_longest, save_image
from lossnet.weights import load_state_dict

@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Four small photos, a style image, and four A|B pairs (the facades layout)."""
    from lossnet.procedural import make_style
    root = tmp_path_factory.mktemp("ddp")
    (root / "photos").mkdir()
    (root / "pairs").mkdir()
    for i, name in enumerate(["astronaut", "coffee", "chelsea", "rocket"]):
        photo = resize_longest(bundled_photo(name), 48)
        save_image(photo, root / "photos" / f"{i}.png")
        a = photo[..., :32, :32]
        save_image(torch.cat([a, 1 - a], -1), root / "pairs" / f"{i}.png")
    save_image(make_style("swirls", 48), root / "style.png")
    return root


def lossnet(args, processes: int, cwd):
    """`lossnet ARGS` in 1 process, or under `torchrun --standalone --nproc-per-node N`."""
    runner = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"] \
        if processes > 1 else [sys.executable]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LOSSNET_OFFLINE": "1"}
    out = subprocess.run([*runner, "-m", "lossnet", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def style_args(data, run, iters, *extra):
    run.mkdir(parents=True, exist_ok=True)
    return ["train-style", "--style", data / "style.png", "--data", data / "photos", "--arch", "lite",
            "--crop", 32, "--batch-size", 2, "--style-size", 48, "--iters", iters, "--lr", 1e-3,
            "--checkpoint-every", 2, "--sample-every", 0, "--precision", "fp32", "--quiet",
            "-o", run / "model.safetensors", "--run-dir", run / "run", *extra]


def pix2pix_args(data, run, iters, *extra):
    return ["pix2pix", "train", "--data", data / "pairs", "--netG", "resnet_6blocks", "--ngf", 4, "--ndf", 4,
            "--n-layers-D", 1, "--norm", "none", "--no-dropout", "--load-size", 0, "--crop-size", 32,
            "--batch-size", 2, "--iters", iters, "--checkpoint-every", 2, "--sample-every", 0,
            "--precision", "fp32", "--quiet", "-o", run, *extra]


def checkpoint(folder):
    return {k: v.float() for k, v in load_state_dict(folder / "checkpoint.safetensors").items()
            if k.startswith(("generator.", "discriminator."))}


def losses(folder):
    import csv
    with open(folder / "log.csv") as f:
        return [{k: float(v) for k, v in row.items() if k not in ("seconds", "lr")} for row in csv.DictReader(f)]


def assert_same_run(a_dir, b_dir, two_steps_earlier):
    for ra, rb in zip(losses(a_dir), losses(b_dir), strict=True):
        for k in ra:
            assert abs(ra[k] - rb[k]) <= 1e-6 * max(1.0, abs(ra[k])), (ra, rb)
    a, b = checkpoint(a_dir), checkpoint(b_dir)
    assert a.keys() == b.keys()
    diff = torch.cat([(a[k] - b[k]).abs().flatten() for k in a])
    earlier = checkpoint(two_steps_earlier)
    moved = torch.cat([(a[k] - earlier[k]).flatten() for k in a]).norm()
    assert float((diff <= 1e-5).float().mean()) >= 0.99
    assert float(diff.norm()) < 0.1 * float(moved), (float(diff.norm()), float(moved))


def test_two_processes_train_the_style_network_one_process_trains(data, tmp_path):
    lossnet(style_args(data, tmp_path / "short", 2), 1, tmp_path)
    lossnet(style_args(data, tmp_path / "one", 4), 1, tmp_path)
    two = lossnet(style_args(data, tmp_path / "two", 4), 2, tmp_path)
    assert "distributed training: 2 processes, backend gloo" in two.stderr
    assert two.stdout.count("wrote ") == 1  # rank 0 alone reports (and writes)
    assert_same_run(tmp_path / "one" / "run", tmp_path / "two" / "run", tmp_path / "short" / "run")
    import json
    config = json.loads((tmp_path / "two" / "run" / "config.json").read_text())
    assert config["world_size"] == 2 and config["backend"] == "gloo"
    log = (tmp_path / "two" / "run" / "log.csv").read_text().splitlines()
    assert len(log) == 5  # one header, one row per step: no rank wrote twice


def test_pix2pix_with_a_discriminator_on_two_processes_matches_one(data, tmp_path):
    lossnet(pix2pix_args(data, tmp_path / "short", 2, "--decay-from", 4), 1, tmp_path)
    lossnet(pix2pix_args(data, tmp_path / "one", 4, "--decay-from", 4), 1, tmp_path)
    lossnet(pix2pix_args(data, tmp_path / "two", 4, "--decay-from", 4), 2, tmp_path)
    assert any(k.startswith("discriminator.") for k in checkpoint(tmp_path / "one"))
    assert_same_run(tmp_path / "one", tmp_path / "two", tmp_path / "short")


def test_a_two_process_run_resumes_on_one_process(data, tmp_path):
    lossnet(style_args(data, tmp_path / "whole", 4), 1, tmp_path)
    lossnet(style_args(data, tmp_path / "split", 2), 2, tmp_path)  # stopped after its step-2 checkpoint
    lossnet(style_args(data, tmp_path / "split2", 2), 1, tmp_path)
    lossnet(style_args(data, tmp_path / "split", 4, "--resume"), 1, tmp_path)
    assert_same_run(tmp_path / "whole" / "run", tmp_path / "split" / "run", tmp_path / "split2" / "run")


def test_a_global_batch_that_does_not_split_is_refused(data, tmp_path):
    args = style_args(data, tmp_path / "odd", 2)
    args[args.index("--batch-size") + 1] = 3
    runner = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    out = subprocess.run([*runner, "-m", "lossnet", *map(str, args)], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "OMP_NUM_THREADS": "1", "LOSSNET_OFFLINE": "1"}, timeout=300)
    assert out.returncode != 0
    assert "error: the batch size 3 is not a multiple of the 2 processes" in out.stderr
