"""The command line: exit 0 on success; on bad input or usage exit 2 with exactly one `error:` line on stderr,
no traceback, and no output (or temp) file left behind."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from lossnet.cli import main

from conftest import files_in, make_bad_images


def cli(capsys, *args):
    """Run `lossnet ARGS` in this process: (exit code, stdout, stderr)."""
    try:
        rc = main([str(a) for a in args])
    except SystemExit as e:  # argparse usage errors
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_error_line(rc, err, fragment=None):
    assert rc == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    if fragment:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    files = {name: path for name, (path, _) in make_bad_images(folder).items()}
    Image.new("L", (8000, 5100), 128).save(folder / "big.png")  # 40.8 MP, 50 kB
    files["over_40_megapixels"] = folder / "big.png"
    (folder / "garbage.pth").write_bytes(b"\x00garbage" * 100)
    torch.save({"features.0.weight": torch.zeros(8, 3, 3, 3), "features.0.bias": torch.zeros(8)},
               folder / "wrong_shape.pth")
    files["garbage_weights"], files["wrong_shape_weights"] = folder / "garbage.pth", folder / "wrong_shape.pth"
    (folder / "a_file").write_text("not a folder")
    files["a_file"] = folder / "a_file"
    return files


@pytest.fixture
def out(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


IMAGE_MESSAGES = {
    "missing": "no such file", "directory": "is a directory", "empty": "is empty",
    "truncated_png": "truncated", "truncated_jpg": "truncated", "text_as_jpg": "not an image file",
    "one_pixel": "1x1", "over_40_megapixels": "over the 40 MP limit",
}


@pytest.mark.parametrize("name", list(IMAGE_MESSAGES))
def test_bad_content_image(capsys, bad, out, astronaut_png, style_png, name):
    rc, stdout, err = cli(capsys, "stylize", bad[name], "--style", style_png, "-o", out / "x.png",
                          "--size", 32, "--iters", 1, "--quiet")
    # a folder is a folder of frames for stylize (lossnet.video): it needs a folder output
    assert_one_error_line(rc, err, "is a folder: the output must be a folder too" if name == "directory" else IMAGE_MESSAGES[name])
    assert files_in(out) == [] and stdout == ""


@pytest.mark.parametrize("name", ["truncated_jpg", "text_as_jpg", "over_40_megapixels"])
def test_bad_style_image(capsys, bad, out, astronaut_png, name):
    rc, _, err = cli(capsys, "stylize", astronaut_png, "--style", bad[name], "-o", out / "x.png",
                     "--size", 32, "--iters", 1, "--quiet")
    assert_one_error_line(rc, err, IMAGE_MESSAGES[name])
    assert files_in(out) == []


@pytest.mark.parametrize("command", ["texture", "invert"])
def test_bad_image_other_commands(capsys, bad, out, command):
    rc, _, err = cli(capsys, command, bad["truncated_png"], "-o", out / "x.png", "--size", 32, "--iters", 1, "--quiet")
    assert_one_error_line(rc, err, "truncated")
    assert files_in(out) == []


def test_unwritable_output_folder(capsys, bad, tmp_path, astronaut_png, style_png):
    base = ["stylize", astronaut_png, "--style", style_png, "--size", 32, "--iters", 1, "--quiet", "-o"]
    rc, _, err = cli(capsys, *base, tmp_path / "no_such_folder" / "x.png")
    assert_one_error_line(rc, err, "output folder does not exist")
    assert not (tmp_path / "no_such_folder").exists()
    rc, _, err = cli(capsys, *base, bad["a_file"] / "x.png")  # a 'folder' that is a regular file
    assert_one_error_line(rc, err, "output folder does not exist")
    rc, _, err = cli(capsys, *base, tmp_path / "x.gif")
    assert_one_error_line(rc, err, "cannot write")
    (tmp_path / "adir.png").mkdir()
    rc, _, err = cli(capsys, *base, tmp_path / "adir.png")
    assert_one_error_line(rc, err, "is a directory")
    assert files_in(tmp_path / "adir.png") == []
    if os.geteuid() == 0:
        pytest.skip("running as root: a read-only folder does not stop root from writing")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        rc, _, err = cli(capsys, *base, locked / "x.png")
        assert_one_error_line(rc, err, "not writable")
        assert files_in(locked) == []
    finally:
        locked.chmod(0o700)


STYLIZE_ERRORS = {
    "unknown style layer": (["--style-layers", "relu1_1,relu3_33"], "unknown layer 'relu3_33' for vgg16 (did you mean relu3_3"),
    "unknown content layer": (["--content-layers", "relu4_22"], "did you mean relu4_2"),
    "negative style weight": (["--style-weight", "-1"], "argument --style-weight: must be >= 0 and finite, got -1"),
    "negative content weight": (["--content-weight", "-0.5"], "must be >= 0"),
    "negative tv weight": (["--tv-weight", "-1"], "must be >= 0"),
    "nan style weight": (["--style-weight", "nan"], "must be >= 0"),
    "mismatched blend weights": (["--style", "{style}", "--style-weights", "1"], "--style-weights: 1 weights given for 2 items"),
    "negative blend weights": (["--style", "{style}", "--style-weights=-1,2"], "non-negative"),
    "negative blend weights, argparse": (["--style", "{style}", "--style-weights", "-1,2"], "expected one argument"),
    "mismatched layer weights": (["--style-layer-weights", "1,2"], "--style-layer-weights: 2 weights given for 5 items"),
    "negative layer weights": (["--style-layer-weights=-1,1,1,1,1"], "non-negative"),
    "corrupt weights file": (["--weights", "{garbage_weights}"], "cannot read weights"),
    "wrong-shape weights file": (["--weights", "{wrong_shape_weights}"], "features.0.weight should be (64, 3, 3, 3), found (8, 3, 3, 3)"),
    "missing weights file": (["--weights", "{missing}"], "weights file not found"),
    "weights file is text": (["--weights", "{text_as_jpg}"], "cannot read weights"),
    "missing init image": (["--init", "{missing}"], "no such file"),
    "truncated init image": (["--init", "{truncated_jpg}"], "truncated"),
    "output too small": (["--size", "8"], "output size 8 is too small"),
    "iters per scale mismatch": (["--iters", "1,2"], "--iters has 2 values for 1 scales"),
    "unknown device": (["--device", "nosuchdevice"], "device 'nosuchdevice' is not usable"),
    "unknown option": (["--bogus"], "unrecognized arguments: --bogus"),
    "bad number": (["--style-weight", "lots"], "argument --style-weight"),
    "zero scale": (["--scales", "0"], "positive integers"),
    "zero style scale": (["--style-scale", "0"], "argument --style-scale: must be > 0"),
    "negative learning rate": (["--lr=-1"], "argument --lr: must be > 0"),
    "negative snapshot interval": (["--snapshot-every=-2"], "argument --snapshot-every: must be >= 0"),
    "nan blend weight": (["--style", "{style}", "--style-weights", "nan,1"], "finite"),
    "a style network's tiles": (["--tile", "256"], "--tile is an option of --model or of --method wct|adain"),
    "a style network's blend": (["--blend", "1,1"], "--blend is an option of --model"),
}


@pytest.mark.parametrize("case", list(STYLIZE_ERRORS))
def test_bad_stylize_arguments(capsys, bad, out, astronaut_png, style_png, case):
    extra, fragment = STYLIZE_ERRORS[case]
    names = {**{k: str(v) for k, v in bad.items()}, "style": str(style_png)}
    extra = [a.format(**names) for a in extra]
    rc, stdout, err = cli(capsys, "stylize", astronaut_png, "--style", style_png, "-o", out / "x.png",
                          "--size", 32, "--iters", 1, "--quiet", *extra)
    assert_one_error_line(rc, err, fragment)
    assert files_in(out) == [] and stdout == ""


@pytest.mark.parametrize("args,fragment", [
    ([], "the following arguments are required: COMMAND"),
    (["nosuchcommand"], "invalid choice"),
    (["stylize", "{content}"], "required: -o/--output"),
    (["stylize", "{content}", "-o", "{out}/x.png"], "stylize needs --style"),
    (["invert", "{content}", "-o", "{out}/x.png", "--layer", "relu3_33"], "did you mean relu3_3"),
    (["texture", "{content}", "-o", "{out}/x.png", "--width", "4"], "at least 16 pixels"),
    (["texture", "{content}", "-o", "{out}/x.png", "--style-layers", "pool9"], "unknown layer 'pool9'"),
], ids=["no command", "unknown command", "no output", "no style", "invert layer", "texture width", "texture layer"])
def test_usage_errors(capsys, out, astronaut_png, args, fragment):
    args = [a.format(content=astronaut_png, out=out) for a in args]
    rc, _, err = cli(capsys, *args, *(["--quiet"] if args and args[0] in ("texture", "invert") else []))
    assert_one_error_line(rc, err, fragment)
    assert files_in(out) == []


def test_stylize_success(capsys, out, astronaut_png, style_png):
    # --size 64 is the content's own size: no resize happens, the loaded image goes to L-BFGS as it is
    rc, stdout, err = cli(capsys, "stylize", astronaut_png, "--style", style_png, "--style", style_png,
                          "--style-weights", "0.5,0.5", "-o", out / "x.jpg", "--size", 64, "--iters", 2, "--quiet")
    assert rc == 0, err
    assert files_in(out) == ["x.jpg"]
    assert stdout.startswith(f"wrote {out / 'x.jpg'} (64x64)")
    assert "error" not in err
    with Image.open(out / "x.jpg") as im:
        assert im.size == (64, 64) and im.format == "JPEG"


def test_demo_quick(capsys, tmp_path):
    rc, stdout, err = cli(capsys, "demo", "--quick", "-o", tmp_path / "demo")
    assert rc == 0, err
    written = [Path(line[len("wrote "):]) for line in stdout.splitlines() if line.startswith("wrote ")]
    names = ["content.png", "style_swirls.png", "stylized_swirls.png", "style_mosaic.png", "stylized_mosaic.png",
             "summary.png"]
    fast = sorted(p.name for p in written if p.name.startswith("fast_"))  # the feed-forward part, one per bundled model
    assert fast, "the demo's feed-forward part wrote nothing"
    universal = [f"{method}_{style}.png" for method in ("wct", "adain") for style in ("swirls", "mosaic")]
    assert sorted(p.name for p in written) == sorted(names + universal + fast)
    assert files_in(tmp_path / "demo") == sorted(names + universal + fast)
    for path in written:
        with Image.open(path) as im:
            assert im.format == "PNG" and min(im.size) >= 16
    with Image.open(tmp_path / "demo" / "stylized_swirls.png") as im:
        assert im.size == (64, 64)


# --- the installed entry point, in fresh processes --------------------------------------------------------

def entry_point() -> list[str]:
    script = Path(sys.executable).with_name("lossnet")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "lossnet.cli"]


# The peak RSS of a fresh process, read from /proc at its exit: getrusage's ru_maxrss is no good here, since a
# child spawned (vfork + exec) by this large pytest process inherits the parent's high-water mark.
PEAK = """import atexit, os, sys
from lossnet.cli import main
@atexit.register
def _peak():
    kb = next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM'))
    open(os.environ['LOSSNET_TEST_PEAK'], 'w').write(kb)
sys.exit(main(sys.argv[1:]))
"""


def run_fresh(args, cwd, measure=False) -> tuple[int, str, str, int | None]:
    """`lossnet ARGS` in a fresh process: (exit code, stdout, stderr, peak RSS in MB when `measure`).
    Without `measure` it runs the installed `lossnet` script itself."""
    env = {**os.environ, "LOSSNET_OFFLINE": "1", "OMP_NUM_THREADS": "1", "LOSSNET_TEST_PEAK": str(cwd.parent / "peak")}
    command = [sys.executable, "-c", PEAK] if measure else entry_point()
    r = subprocess.run(command + [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    peak = int((cwd.parent / "peak").read_text()) // 1024 if measure else None
    return r.returncode, r.stdout, r.stderr, peak


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs Linux /proc for the peak RSS")
def test_huge_image_is_refused_with_little_memory(bad, out, style_png):
    rc, stdout, stderr, peak_mb = run_fresh(
        ["stylize", bad["over_40_megapixels"], "--style", style_png, "-o", "x.png", "--size", 32, "--quiet"], out,
        measure=True)
    assert_one_error_line(rc, stderr, "over the 40 MP limit")
    assert files_in(out) == [] and stdout == ""
    assert peak_mb < 600, peak_mb  # torch alone is ~220 MB; decoding would add 40.8 MP x 3 x 4 bytes = 490 MB


def test_entry_point_success_and_error(out, astronaut_png, style_png, bad):
    rc, stdout, stderr, _ = run_fresh(
        ["texture", style_png, "-o", "t.png", "--size", 32, "--iters", 2, "--quiet"], out)
    assert rc == 0, stderr
    assert files_in(out) == ["t.png"] and stdout.startswith("wrote t.png (32x32)")
    rc, stdout, stderr, _ = run_fresh(
        ["stylize", astronaut_png, "--style", style_png, "-o", "s.png", "--size", 32, "--iters", 2, "--quiet",
         "--weights", bad["wrong_shape_weights"]], out)
    assert_one_error_line(rc, stderr, "features.0.weight should be (64, 3, 3, 3)")
    assert files_in(out) == ["t.png"]


def test_a_reader_that_stops_early_ends_the_command_quietly(monkeypatch, capsys):
    """`lossnet models | head -1`: no "error: Broken pipe", the shell's SIGPIPE code."""
    import io
    read, write = os.pipe()
    os.close(read)  # the reader is gone: every write fails with EPIPE
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.FileIO(write, "w"), write_through=True))
    assert main(["models"]) == 141
    assert capsys.readouterr().err == ""
