"""Time and memory said before the pixel loop starts (lossnet.estimate): within a factor of 2 of the real run,
at two sizes, with the real loss network."""
from __future__ import annotations

import logging
import re
import resource
import time

import pytest

from lossnet.estimate import Estimate
from lossnet.optimize import LoopConfig
from lossnet.style import StyleConfig, stylize

from conftest import photo


def seconds_of(text: str) -> float:
    m = re.search(r"about (?:(\d+) min )?(\d+) s", text)
    return 60 * int(m.group(1) or 0) + int(m.group(2))


@pytest.mark.parametrize("size", [96, 192])
def test_the_estimate_is_within_a_factor_of_2_of_the_run(hed, size, caplog):
    content, style = photo("astronaut", size), photo("coffee", size)
    cfg = StyleConfig(sizes=[size], loop=LoopConfig(iters=15, precision="fp32", faster="--size 64"))
    logging.getLogger("lossnet").propagate = True
    with caplog.at_level(logging.INFO, logger="lossnet"):
        start = time.perf_counter()
        stylize(content, [style], cfg)
        real = time.perf_counter() - start
    said = next(r.getMessage() for r in caplog.records if "estimated time" in r.getMessage())
    assert said.endswith("(--size 64 for less)")
    estimate = max(1.0, seconds_of(said))
    assert real / 2 <= estimate <= 2 * max(real, 1.0), (said, real)
    memory = re.search(r"peak memory about ([\d.]+) (MB|GB)", said)
    if memory:  # Linux: compared with the process's own peak (ru_maxrss, KB)
        said_mb = float(memory.group(1)) * (1024 if memory.group(2) == "GB" else 1)
        assert said_mb <= 2 * resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_calibration_measures_time_and_added_memory():
    # in a fresh process: a long-lived one (pytest) reuses freed pages, which no RSS peak can see
    import subprocess
    import sys
    code = ("import time, numpy as np; from lossnet.estimate import calibrate; "
            "s, m = calibrate(lambda: (np.ones(40_000_000, dtype=np.uint8), time.sleep(0.05))); print(s, m)")
    seconds, added = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert 0.05 <= float(seconds) < 2  # one of the two calls
    if added != "None":  # Linux
        assert 30_000_000 <= int(added) < 200_000_000  # the 40 MB array, counted


def test_descriptions_read_well():
    assert Estimate(42, 3 * 2 ** 30).describe("--size 256") == \
        "estimated time on this machine about 42 s, peak memory about 3.0 GB (--size 256 for less)"
    assert Estimate(3725, None).describe() == "estimated time on this machine about 1 h 02 min"
    assert Estimate(75, 200 * 2 ** 20).describe() == "estimated time on this machine about 1 min 15 s, peak memory about 200 MB"


def test_a_bar_with_a_speed_hint_says_the_time_left_at_its_second_step(caplog):
    from lossnet.progress import progress
    logging.getLogger("lossnet").propagate = True
    with caplog.at_level(logging.INFO, logger="lossnet"):
        bar = progress(40, "steps", enabled=True, faster="fewer --iters", stream=open("/dev/null", "w"))
        start = time.perf_counter()
        for _ in range(40):
            time.sleep(0.05)
            bar.update(1)
        bar.close()
        real_left = (time.perf_counter() - start) * 38 / 40
    said = [r.getMessage() for r in caplog.records if "estimated time left" in r.getMessage()]
    assert len(said) == 1 and said[0].endswith("(fewer --iters for less)")
    assert real_left / 2 <= seconds_of(said[0]) <= 2 * real_left


def test_training_says_its_estimate_once(hed, tmp_path, capsys):
    from lossnet.cli import main
    from lossnet.io import save_image
    data = tmp_path / "photos"
    data.mkdir()
    for name in ("astronaut", "coffee"):
        save_image(photo(name, 48), data / f"{name}.png")
    style = save_image(photo("chelsea", 48), tmp_path / "style.png")
    assert main(["train-style", "--style", str(style), "--data", str(data), "--crop", "32", "--batch-size", "1",
                 "--iters", "4", "--arch", "lite", "--precision", "fp32", "-o", str(tmp_path / "m.safetensors")]) == 0
    err = capsys.readouterr().err
    assert err.count("estimated time left") == 1 and "fewer --iters, a smaller --crop or --batch-size" in err
