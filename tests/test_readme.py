"""Every `lossnet` command in README.md and on the documentation site's pages runs as written, at small sizes,
so they stay true.

The commands are read from the sh blocks of README.md and docs/*.md (in that order: a page trains before it
applies); each gets the files it names (real small images, a tiny
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
    ("stylize", "--method"): ["--size", "48"],
    ("train-decoder",): ["--iters", "2", "--crop", "32", "--batch-size", "1", "--width", "0.125", "--checkpoint-every",
                         "1", "--quiet"],
    ("train-sr",): ["--iters", "2", "--crop", "32", "--batch-size", "1", "--checkpoint-every", "1", "--quiet"],
    ("pix2pix", "train"): ["--iters", "2", "--netG", "unet_128", "--ngf", "4", "--ndf", "4", "--load-size", "128",
                           "--crop-size", "128", "--checkpoint-every", "1", "--quiet"],
    ("pix2pix", "test"): ["--limit", "2"],
}
# The studio's own tests; `make demo` (tests/test_style.py runs the demo); tests/test_weights_fetch.py (a download).
ELSEWHERE = ("serve", "demo", "weights")
# Pages whose commands are recipes with placeholders (an arm's flags, a 40,000-step run), not examples.
RECIPES = ("ARCHITECTURE.md", "style-study.md")


def commands_in(path: Path) -> list[str]:
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", path.read_text(), re.S):
        for line in block.splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith("lossnet ") and line.split()[1] not in ELSEWHERE:
                lines.append(line)
    return lines


def documented_commands() -> list[str]:
    pages = [REPO / "README.md"] + [p for p in sorted((REPO / "docs").glob("*.md")) if p.name not in RECIPES]
    return list(dict.fromkeys(line for page in pages for line in commands_in(page)))


def fast_options(words: list[str]) -> list[str]:
    best = max((k for k in FAST if tuple(words[:len(k)]) == k or (k[0] == words[0] and set(k[1:]) <= set(words))),
               key=len, default=None)
    return FAST[best] if best else []


@pytest.fixture(scope="module")
def world(tmp_path_factory, shared_data):
    """A folder with every file the documented commands name; ../shared/data beside it as in the repository,
    and its data sets under the names the docs use (facades/, Set5/, Set14/)."""
    from lossnet.io import save_image
    root = tmp_path_factory.mktemp("readme") / "work"
    root.mkdir()
    os.symlink(shared_data.parent, root.parent / "shared")
    for name, data in [("facades", "pix2pix/facades"), ("Set5", "sr/Set5"), ("Set14", "sr/Set14")]:
        os.symlink(shared_data / data, root / name)
    for name, picture in [("photo.jpg", "astronaut"), ("painting.jpg", "coffee"), ("a.jpg", "coffee"),
                          ("b.jpg", "chelsea"), ("query.jpg", "chelsea"), ("small.png", "astronaut"),
                          ("labels.png", "astronaut"), ("sky.jpg", "coffee"), ("ground.jpg", "chelsea")]:
        save_image(photo(picture, 32 if name == "small.png" else 96), root / name)
    mask = photo("astronaut", 96)[:, :1]
    save_image((mask > mask.mean()).float().expand(-1, 3, -1, -1), root / "mask.png")
    for folder in ("FOLDER", "photos", "paintings"):
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


@pytest.mark.parametrize("command", documented_commands())
def test_documented_command_runs(world, command, monkeypatch, capsys):
    monkeypatch.chdir(world)
    words = shlex.split(command)[1:]
    code = main(words + fast_options(words))
    captured = capsys.readouterr()
    assert code == 0, f"{command}: {captured.err.strip()}"
    if "-o" in words:
        assert Path(words[words.index("-o") + 1]).exists()


def test_the_readme_and_the_docs_have_the_commands_this_test_expects():
    readme = commands_in(REPO / "README.md")
    assert len(readme) >= 15 and any(c.startswith("lossnet pix2pix train") for c in readme)
    assert len(documented_commands()) >= 40 and any(c.startswith("lossnet viz patches") for c in documented_commands())
