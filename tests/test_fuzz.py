"""Property-based fuzzing (hypothesis): whatever bytes an image file holds and whatever values the options get,
the outcome is a valid result or exit 2 with one `error:` line — never a traceback, a hang or a partial file.

The suite runs a bounded profile (seconds); `make fuzz` runs the long one (HYPOTHESIS_PROFILE=fuzz). Work-size
options (iterations, sizes) are drawn small so every example finishes; every other option is drawn hostile.
"""
from __future__ import annotations

import argparse
import io
import os
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from lossnet import fast
from lossnet.cli import build_parser, main
from lossnet.errors import LossnetError
from lossnet.io import IMAGE_SUFFIXES, bundled_photo, load_image, save_image
from lossnet.registry import stored_metadata
from lossnet.nets.transformer import TransformerNet
from lossnet.superres import MAX_OUTPUT_PIXELS

settings.register_profile("suite", max_examples=30, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.register_profile("fuzz", max_examples=15000, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))
# Command lines per command: each one runs the command (a network load, a step or two); the table has ~25.
COMMAND_LINES = {"suite": 6, "fuzz": 40}[os.environ.get("HYPOTHESIS_PROFILE", "suite")]


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
                           "1e-30", "65", "999999999999", "1,nan", "0.5,inf"])
SMALL = st.sampled_from(["16", "24", "32", "48", "0", "-5", "1", "nan", "x", "99999"])
COUNTS = st.sampled_from(["0", "1", "2", "3", "-1", "x", "nan", "", "65"])
STEPS = st.sampled_from(["1", "2", "0", "-1", "x"])  # work that grows with the value: drawn small
PATHS = st.sampled_from(["{a}", "{s}", "{d}", "{broken}", "{m}", "{missing}", "{out}.png", "{out}.jpg", "{out}.txt",
                         "{out}", "{d}/c.png", "{out}/no/such/x.png", "", "-", "{a},{s}", "starry", "x4-pixel"])
LAYERS = st.sampled_from(["relu1_1", "relu9_9", "", "relu2_2,relu1_2", "blocks.5", "features.3", "x"])

# The table: every command that takes options, with the words that name it and the strategies of the options
# whose values are not drawn from their type alone. The rest of the options come from the parser (`_options`),
# so a new option is fuzzed the day it is added. Not here: serve (a server that waits for requests), demo
# (minutes of fixed work, no values to draw), weights fetch (downloads), stylise (stylize).
SIZE_FLAGS = ("--size", "--crop", "--crop-size", "--load-size", "--width", "--height", "--patch", "--style-size",
              "--scales", "--sizes")
STEP_FLAGS = ("--iters", "--steps", "--octaves", "--count", "--limit", "--holdout")
COMMANDS = {
    "stylize-model": (["stylize", PATHS, "--model", st.sampled_from(["{m}", "{a}", "{missing}", "{broken}", "starry-lite"])],
                      {"--style": None, "--style-weights": None, "--init": None}),
    "stylize-gatys": (["stylize", PATHS, "--style", PATHS], {"--model": None, "--iters": st.sampled_from(["1", "2", "0", "x", "1,1"])}),
    "texture": (["texture", PATHS], {}),
    "invert": (["invert", PATHS], {}),
    "eval-video": (["eval-video", PATHS, PATHS], {}),
    "superres": (["superres", PATHS, "--method", st.sampled_from(["bicubic", "model", "x"])], {}),
    "eval-sr": (["eval-sr"], {"--data": st.sampled_from(["{d}", "{a}", "{missing}", ""])}),
    "pix2pix-train": (["pix2pix", "train"], {"--data": st.sampled_from(["{d}", "{a}", "{missing}"])}),
    "pix2pix-apply": (["pix2pix", "apply", PATHS], {}),
    "pix2pix-test": (["pix2pix", "test"], {"--data": st.sampled_from(["{d}", "{a}", "{missing}"])}),
    "classify": (["classify", PATHS], {}),
    "viz-filters": (["viz", "filters"], {}),
    "viz-activations": (["viz", "activations", PATHS], {}),
    "viz-saliency": (["viz", "saliency", PATHS], {}),
    "viz-guided": (["viz", "guided", PATHS], {}),
    "viz-occlusion": (["viz", "occlusion", PATHS], {}),
    "viz-class-model": (["viz", "class-model", st.sampled_from(["281", "tabby", "x", "-1", "99999", ""])], {}),
    "viz-fool": (["viz", "fool", PATHS], {}),
    "viz-deepdream": (["viz", "deepdream", PATHS], {}),
    "viz-neighbors": (["viz", "neighbors", PATHS, st.sampled_from(["{d}", "{a}", "{missing}"])], {}),
    "viz-embedding": (["viz", "embedding", st.sampled_from(["{d}", "{a}", "{missing}"])], {}),
    "viz-patches": (["viz", "patches", st.sampled_from(["{d}", "{a}", "{missing}"])], {}),
    "apply": (["apply", PATHS], {}),
    "export": (["export", PATHS], {}),
    "models": (["models"], {"--card": st.sampled_from(["starry", "x4-pixel", "{m}", "{a}", "{missing}", "", "-", "sta"])}),
    "train-style": (["train-style"], {"--data": st.sampled_from(["{d}", "{a}", "{missing}"]), "--teacher": None,
                                      "--init-from": None}),
    "train-sr": (["train-sr"], {"--data": st.sampled_from(["{d}", "{a}", "{missing}"]), "--init-from": None}),
    "train-decoder": (["train-decoder"], {"--data": st.sampled_from(["{d}", "{a}", "{missing}"]),
                                          "--paintings": st.sampled_from(["{d}", "{a}", "{missing}"]),
                                          "--init-from": None}),
}


def _leaf_parser(words: list) -> argparse.ArgumentParser:
    parser = build_parser()
    for word in (w for w in words if isinstance(w, str) and not w.startswith("-")):
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[word]
        if not any(isinstance(a, argparse._SubParsersAction) for a in parser._actions):
            break
    return parser


def _strategy(action: argparse.Action):
    """Values for an option from what the parser says of it: its choices (and one that is not), its type."""
    flag = action.option_strings[-1]
    if action.nargs == 0:
        return None  # a switch: present or not
    if action.choices is not None:
        return st.sampled_from([str(c) for c in action.choices] + ["x", ""])
    if flag in SIZE_FLAGS:
        return SMALL
    if flag in STEP_FLAGS:
        return STEPS
    kind = getattr(action.type, "__name__", None)
    if kind in ("int", "positive_int", "nonneg_int", "tile_side", "image_side", "ints"):
        return COUNTS
    if kind in ("float", "finite", "nonneg", "positive", "fraction", "unit_interval", "floats"):
        return NUMBERS
    if kind == "names" or "layer" in flag:
        return LAYERS
    return PATHS  # files, folders, models, outputs


def _options(name: str) -> dict:
    """{flag: (strategy or None for a switch, required)} of every option of the command, the table's first."""
    words, overrides = COMMANDS[name]
    out = {}
    for action in _leaf_parser(words)._actions:
        if not action.option_strings or isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            continue
        flag = action.option_strings[-1]
        if flag in ("--quiet", "--resume", "--device") or any(f in overrides for f in action.option_strings):
            if overrides.get(flag) is not None:
                out[flag] = (overrides[flag], action.required)
            continue
        if any(w == flag for w in words if isinstance(w, str)):
            continue  # the table fixes it
        out[flag] = (_strategy(action), action.required)
    return out


@st.composite
def command_line(draw, name):
    words, _ = COMMANDS[name]
    args = [draw(a) if isinstance(a, st.SearchStrategy) else a for a in words]
    options = _options(name)
    chosen = draw(st.lists(st.sampled_from(sorted(options)), unique=True, max_size=len(options)))
    # Work that grows with a step count (training, the pixel loop) always gets a drawn one: a default of
    # thousands of steps on valid data would turn one example into an hour.
    bounded = {f for f in options if f in STEP_FLAGS}
    for flag in sorted(set(chosen) | bounded | {f for f, (_, required) in options.items() if required}):
        strategy, _ = options[flag]
        args += [flag] if strategy is None else [flag, draw(strategy)]
    if "--quiet" in {s for a in _leaf_parser(words)._actions for s in a.option_strings}:
        args.append("--quiet")
    return args


def _run(world, capsys, args):
    names = {"a": world / "a.png", "s": world / "s.png", "d": world / "d", "broken": world / "broken.png",
             "m": world / "m.safetensors", "missing": world / "nope.png", "out": world / "out" / "o"}
    args = [a.format(**names) for a in args]
    (world / "out").mkdir(exist_ok=True)
    flag = next((f for f in ("-o", "--output") if f in args), None)
    output = args[args.index(flag) + 1] if flag else None
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
            if p.suffix.lower() in IMAGE_SUFFIXES:
                load_image(p, max_pixels=MAX_OUTPUT_PIXELS)  # every written image decodes (SR may pass 40 MP)
            elif p.suffix == ".safetensors":
                stored_metadata(p)  # a written model reads back (a run folder's log and config are text)
    else:
        assert code == 2 and len(errors) == 1 and errors[0].startswith("error: "), (args, captured.err)



OUTCOMES: dict = {}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_any_arguments_give_a_result_or_one_error_line(world, capsys, name):
    OUTCOMES.clear()

    @settings(max_examples=COMMAND_LINES)
    @given(args=command_line(name))
    def check(args):
        _run(world, capsys, args)
    check()
    with capsys.disabled():  # the count `make fuzz` reports
        print(f"\nfuzz {name}: {sum(OUTCOMES.values())} command lines, exit codes {dict(sorted(OUTCOMES.items()))}")
