"""Property-based fuzzing (hypothesis): whatever bytes an image file holds and whatever values the options get,
the outcome is a valid result or exit 2 with one `error:` line — never a traceback, a hang or a partial file.

The suite runs a bounded profile (seconds); `make fuzz` runs the long one (HYPOTHESIS_PROFILE=fuzz). Work-size
options (iterations, sizes) are drawn small so every example finishes; every other option is drawn hostile.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from lossnet import fast
from lossnet.cli import main
from lossnet.errors import LossnetError
from lossnet.io import bundled_photo, load_image, save_image
from lossnet.nets.transformer import TransformerNet
from lossnet.superres import MAX_OUTPUT_PIXELS

settings.register_profile("suite", max_examples=30, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.register_profile("fuzz", max_examples=15000, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))


def _encoded(fmt: str) -> bytes:
    buf = io.BytesIO()
    from lossnet.io import to_pil
    to_pil(bundled_photo("astronaut", 40)).save(buf, format=fmt)
    return buf.getvalue()


SEEDS = [_encoded(f) for f in ("PNG", "JPEG", "WEBP", "TIFF", "BMP")]


@st.composite
def image_bytes(draw):
    """Random bytes, or a real encoded image truncated and with some bytes overwritten."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=2048))
    data = bytearray(draw(st.sampled_from(SEEDS)))
    data = data[:draw(st.integers(0, len(data)))]
    for _ in range(draw(st.integers(0, 8))):
        if data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


@given(data=image_bytes(), suffix=st.sampled_from([".png", ".jpg", ".webp", ".tif", ".bmp", ".gif", ""]))
def test_decoding_any_bytes_gives_an_image_or_a_clear_error(tmp_path, data, suffix):
    path = tmp_path / f"x{suffix}"
    path.write_bytes(data)
    try:
        image = load_image(path)
    except LossnetError as e:
        assert str(e) and "\n" not in str(e)
        return
    assert image.dim() == 4 and image.shape[:2] == (1, 3) and image.dtype == torch.float32
    assert torch.isfinite(image).all() and image.min() >= 0 and image.max() <= 1


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    save_image(bundled_photo("astronaut", 48), root / "a.png")
    save_image(bundled_photo("coffee", 48), root / "s.png")
    (root / "d").mkdir()
    save_image(bundled_photo("chelsea", 40), root / "d" / "c.png")
    (root / "broken.png").write_bytes(SEEDS[0][:200])
    torch.manual_seed(0)
    fast.save_transformer(TransformerNet(channels=(4, 8, 8), n_residual=1), root / "m.safetensors",
                          {"styles": ["s.png"]}, half=False)
    ORIGINAL[root] = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    return root


ORIGINAL: dict[Path, dict[Path, bytes]] = {}


def restore(world: Path) -> None:
    """Put the world back as the fixture made it: its files' bytes, nothing else."""
    files = ORIGINAL[world]
    for p in sorted(world.rglob("*"), reverse=True):
        if p.is_file() and p not in files:
            p.unlink()
        elif p.is_dir() and p != world / "d" and not any(p.iterdir()):
            p.rmdir()
    for p, data in files.items():
        if not p.is_file() or p.read_bytes() != data:
            p.write_bytes(data)


NUMBERS = st.sampled_from(["0", "1", "-1", "2", "0.5", "1e9", "-1e9", "nan", "inf", "-inf", "abc", "", "3,4",
                           "1e-30", "65", "999999999999"])
SMALL = st.sampled_from(["16", "24", "32", "48", "0", "-5", "1", "nan", "x", "99999"])
PATHS = st.sampled_from(["{a}", "{s}", "{d}", "{broken}", "{m}", "{missing}", "{out}.png", "{out}.jpg", "{out}.txt",
                         "{out}", "{d}/c.png", "{out}/no/such/x.png", "", "-", "{a},{s}", "starry", "x4-pixel"])

COMMANDS = {
    "stylize-model": (["stylize", PATHS, "--model", st.sampled_from(["{m}", "{a}", "{missing}", "{broken}", "starry-lite"])],
                      {"--size": SMALL, "--tile": NUMBERS, "--overlap": NUMBERS, "--blend": NUMBERS,
                       "--style-index": NUMBERS, "--batch-size": NUMBERS, "--precision": st.sampled_from(["auto", "fp32", "bf16", "fp16", "x"])}),
    "superres": (["superres", PATHS, "--method", st.sampled_from(["bicubic", "model", "x"])],
                 {"--scale": NUMBERS, "--tile": NUMBERS, "--overlap": NUMBERS, "--model": PATHS}),
    "texture": (["texture", PATHS, "--iters", st.sampled_from(["1", "2", "0", "-1", "x"])],
                {"--size": SMALL, "--tv-weight": NUMBERS, "--style-weight": NUMBERS, "--lr": NUMBERS,
                 "--optimizer": st.sampled_from(["lbfgs", "adam", "sgd"]), "--init": PATHS,
                 "--style-layers": st.sampled_from(["relu1_1", "relu9_9", "", "relu2_2,relu1_2"])}),
    "classify": (["classify", PATHS], {"--top": NUMBERS}),
}


@st.composite
def command_line(draw, name):
    fixed, options = COMMANDS[name]
    args = [draw(a) if isinstance(a, st.SearchStrategy) else a for a in fixed]
    for flag in draw(st.lists(st.sampled_from(sorted(options)), unique=True, max_size=len(options))):
        args += [flag, draw(options[flag])]
    if name != "classify":
        args += ["-o", draw(PATHS)]
    return args + ["--quiet"] if name in ("texture",) else args


def _run(world, capsys, args):
    names = {"a": world / "a.png", "s": world / "s.png", "d": world / "d", "broken": world / "broken.png",
             "m": world / "m.safetensors", "missing": world / "nope.png", "out": world / "out" / "o"}
    args = [a.format(**names) for a in args]
    (world / "out").mkdir(exist_ok=True)
    output = args[args.index("-o") + 1] if "-o" in args else None
    inputs = {Path(a) for a in args if a != output and Path(a).is_file()}  # this command's own input files
    before = {p: p.read_bytes() for p in inputs}
    try:
        _check_one(world, capsys, args, inputs, before)
    finally:
        restore(world)  # an output may legitimately replace a file that was not this command's input


def _check_one(world, capsys, args, inputs, before):
    cwd = os.getcwd()
    os.chdir(world / "out")  # relative outputs ("-", "starry", ...) land inside the world, which restore() clears
    try:
        code = main(args)
    except SystemExit as e:  # argparse: one line, exit 2
        code = e.code
    finally:
        os.chdir(cwd)
    OUTCOMES[code] = OUTCOMES.get(code, 0) + 1
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if not line.startswith(("lossnet: ", "warning: "))]
    assert "Traceback" not in captured.err
    assert {p: p.read_bytes() for p in inputs} == before  # the command's inputs untouched
    leftovers = [p for p in (world / "out").rglob("*") if ".tmp" in p.name]
    assert not leftovers
    if code == 0:
        assert errors == [], captured.err
        for p in (world / "out").rglob("*"):
            if p.is_file():
                load_image(p, max_pixels=MAX_OUTPUT_PIXELS)  # every written output decodes (SR may pass 40 MP)
    else:
        assert code == 2 and len(errors) == 1 and errors[0].startswith("error: "), (args, captured.err)



OUTCOMES: dict = {}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_any_arguments_give_a_result_or_one_error_line(world, capsys, name):
    OUTCOMES.clear()

    @given(args=command_line(name))
    def check(args):
        _run(world, capsys, args)
    check()
    with capsys.disabled():  # the count `make fuzz` reports
        print(f"\nfuzz {name}: {sum(OUTCOMES.values())} command lines, exit codes {dict(sorted(OUTCOMES.items()))}")
