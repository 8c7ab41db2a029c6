"""How long and how much memory: said before long work starts, from a calibration on this machine, now.

The pixel loop's cost is one forward and backward pass of its objective per iteration, linear in pixels (a
conv net's work and its activations both are). `calibrate` runs that pass once at the first stage's size,
timing it and measuring the memory it adds (the peak RSS, reset first: Linux's /proc/self/clear_refs), and
`Estimate` scales both to every stage. That one pass is a second or less; the estimate is then of this
machine under its present load, which a table of benchmark numbers could not be.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence


def _status_kb(field: str) -> int | None:
    try:
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_bytes() -> int | None:
    kb = _status_kb("VmRSS")
    return None if kb is None else kb * 1024


def reset_peak() -> bool:
    """Reset this process's peak RSS to its current RSS (Linux); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_bytes() -> int | None:
    kb = _status_kb("VmHWM")
    return None if kb is None else kb * 1024


@dataclass
class Estimate:
    seconds: float
    peak_bytes: int | None

    def describe(self, faster: str = "", left: bool = False) -> str:
        """One line; `left`: of the rest of a run already under way."""
        memory = f", peak memory about {_size(self.peak_bytes)}" if self.peak_bytes else ""
        hint = f" ({faster} for less)" if faster else ""
        return f"estimated time {'left ' if left else ''}on this machine about {_duration(self.seconds)}{memory}{hint}"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    minutes, s = divmod(round(seconds), 60)
    return f"{minutes} min {s:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def _size(n: int) -> str:
    return f"{n / 2 ** 30:.1f} GB" if n >= 2 ** 30 else f"{n / 2 ** 20:.0f} MB"


def calibrate(step: Callable[[], object]) -> tuple[float, int | None]:
    """(seconds, bytes of memory it added at its peak) of a call of `step` (a forward and backward pass). It runs
    twice and the second is timed: the first call pays once-only costs (oneDNN builds its kernels, weights are
    cast), up to several times a pass."""
    before = rss_bytes()
    measured = reset_peak()
    step()
    start = time.perf_counter()
    step()
    seconds = time.perf_counter() - start
    peak = peak_bytes() if measured else None
    return seconds, (max(0, peak - before) if peak is not None and before is not None else None)


def pixel_loop(calibration: tuple[float, int | None], calibrated_hw: tuple[int, int],
               stages: Sequence[tuple[int, int]], iters: Sequence[int], overhead: float = 1.1) -> Estimate:
    """Every stage's iterations at the calibrated time per pixel (`overhead` for the optimiser's own work and
    the per-iteration bookkeeping); memory: now plus the calibrated pass's, scaled to the largest stage."""
    seconds_per_pixel = calibration[0] / (calibrated_hw[0] * calibrated_hw[1])
    total = sum(n * h * w * seconds_per_pixel for (h, w), n in zip(stages, iters)) * overhead
    largest = max(h * w for h, w in stages) / (calibrated_hw[0] * calibrated_hw[1])
    now = rss_bytes()
    peak = now + int(calibration[1] * largest) if calibration[1] is not None and now is not None else None
    return Estimate(total, peak)
