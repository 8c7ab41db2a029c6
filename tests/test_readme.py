"""Every `lossnet` command in README.md runs as written, at small sizes, so the README stays true.

The commands are read from the README's sh blocks; each gets the files it names (real small images, a tiny
video, folders) in a fresh folder, plus options appended that make it fast (argparse takes the last value of an
option, so `--iters 2` appended overrides the README's). Commands that serve or launch (serve, torchrun, curl)
are tested elsewhere (tests/test_studio*.py, tests/test_distributed.py).
"""
from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

from lossnet.cli import main

from conftest import REPO, photo

# Options appended to the commands that start with these words: the README's command, made small.
FAST = {
    ("stylize", "--model"): ["--size", "48"],
    ("stylize",): ["--size", "40", "--iters", "2"],
    ("texture",): ["--size", "40", "--iters", "2"],
    ("invert",): ["--size", "40", "--iters", "2"],
    ("viz", "occlusion"): ["--stride", "64", "--patch", "64"],
    ("viz", "class-model"): ["--iters", "2"],
    ("viz", "fool"): ["--iters", "2"],
    ("viz", "deepdream"): ["--iters", "1", "--octaves", "1", "--size", "64"],
    ("viz", "embedding"): [],
    ("train-style",): ["--iters", "2", "--crop", "32", "--batch-size", "1", "--checkpoint-every", "1", "--quiet"],
    ("train-sr",): ["--iters", "2", "--crop", "32", "--batch-size", "1", "--checkpoint-every", "1", "--quiet"],
    ("pix2pix", "train"): ["--iters", "2", "--netG", "unet_128", "--ngf", "4", "--ndf", "4", "--load-size", "128",
                           "--crop-size", "128", "--checkpoint-every", "1", "--quiet"],
    ("pix2pix", "test"): ["--limit", "2"],
}
ELSEWHERE = ("serve", "demo")  # the studio's own tests; `make demo` (tests/test_style.py runs the demo)


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith("lossnet ") and line.split()[1] not in ELSEWHERE:
                lines.append(line)
    return list(dict.fromkeys(lines))


def fast_options(words: list[str]) -> list[str]:
    best = max((k for k in FAST if tuple(words[:len(k)]) == k or (k[0] == words[0] and set(k[1:]) <= set(words))),
               key=len, default=None)
    return FAST[best] if best else []


@pytest.fixture(scope="module")
def world(tmp_path_factory, shared_data):
    """A folder with every file the README's commands name; ../shared/data beside it as in the repository."""
    from lossnet.io import save_image
    root = tmp_path_factory.mktemp("readme") / "work"
    root.mkdir()
    os.symlink(shared_data.parent, root.parent / "shared")
    for name, picture in [("photo.jpg", "astronaut"), ("painting.jpg", "coffee"), ("a.jpg", "coffee"),
                          ("b.jpg", "chelsea"), ("query.jpg", "chelsea"), ("small.png", "astronaut"),
                          ("labels.png", "astronaut")]:
        save_image(photo(picture, 32 if name == "small.png" else 96), root / name)
    for folder in ("FOLDER", "photos"):
        (root / folder).mkdir()
        for i, picture in enumerate(["astronaut", "coffee", "chelsea", "rocket", "cat", "astronaut"]):
            save_image(photo(picture, 80 - 4 * i), root / folder / f"{i}_{picture}.jpg")
    (root / "frames").mkdir()  # a folder of frames: one size, in order
    for i in range(3):
        save_image(photo("astronaut", 64)[..., :, 4 * i:4 * i + 48], root / "frames" / f"frame{i + 1}.png")
    import imageio.v2 as imageio
    import numpy as np
    frames = (photo("astronaut", 64)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    with imageio.get_writer(str(root / "clip.mp4"), fps=4, codec="libx264", macro_block_size=1) as writer:
        for k in range(3):
            writer.append_data(np.roll(frames, 4 * k, axis=1))
    return root


@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_runs(world, command, monkeypatch, capsys):
    monkeypatch.chdir(world)
    words = shlex.split(command)[1:]
    code = main(words + fast_options(words))
    captured = capsys.readouterr()
    assert code == 0, f"{command}: {captured.err.strip()}"
    if "-o" in words:
        assert Path(words[words.index("-o") + 1]).exists()


def test_the_readme_has_the_commands_this_test_expects():
    commands = readme_commands()
    assert len(commands) >= 30 and any(c.startswith("lossnet pix2pix train") for c in commands)
