"""`make bench`: run the benchmark modules and record their tables in BENCHMARKS.md.

    .venv/bin/python bench/run.py                # every module in BENCHES -> runs/bench/BENCHMARKS.md
    .venv/bin/python bench/run.py --only core    # one of them (repeatable)
    LOSSNET_BENCH_RECORD=1 .venv/bin/python bench/run.py   # (make bench-record) -> the tracked BENCHMARKS.md

A module is `bench/bench_NAME.py` with `main(argv) -> None`; it prints a markdown section and calls
`write_section(heading, text)` to replace its own section of BENCHMARKS.md. To add one, write the module
and append NAME to BENCHES. Arguments after `--` go to every module run (e.g. `-- --no-write`).
"""
from __future__ import annotations

import argparse
import importlib
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

BENCHES = ["core", "viz", "fast", "big", "sr", "precision", "studio", "video"]  # bench/bench_<name>.py

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
HEADER = "# Benchmarks\n\nWritten by `make bench-record` (`bench/run.py`); each section by one module in `bench/`.\n"


def machine() -> str:
    """One line: cores, CPU model, torch version, intra-op threads, load average."""
    import torch

    cpu = platform.processor() or "unknown CPU"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = "/".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (f"{os.cpu_count()} cores (nproc), {cpu}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} intra-op threads, load average {load} (1/5/15 min) at the start")


def commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return out.stdout.strip() + (" + uncommitted changes" if dirty else "") if out.returncode == 0 else "?"
    except OSError:
        return "?"


def results_file() -> Path:
    """Where sections go: the tracked BENCHMARKS.md only when recording (`make bench-record`, or
    LOSSNET_BENCH_RECORD=1), else runs/bench/BENCHMARKS.md (a copy of it, gitignored), so a user's
    `make bench` leaves the checkout clean."""
    if os.environ.get("LOSSNET_BENCH_RECORD"):
        return BENCHMARKS_MD
    local = ROOT / "runs" / "bench" / "BENCHMARKS.md"
    if not local.is_file():
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text(BENCHMARKS_MD.read_text() if BENCHMARKS_MD.is_file() else HEADER)
    return local


def write_section(heading: str, text: str, path: Path | None = None) -> None:
    """Replace `## heading` (up to the next `## `) in the results file with `text`, or append it."""
    path = path or results_file()
    print(f"(section {heading!r} written to {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path})")
    old = path.read_text() if path.is_file() else HEADER
    section = f"## {heading}\n\n{text.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    new = pattern.sub(lambda m: section + "\n", old, count=1) if pattern.search(old) else old.rstrip("\n") + "\n\n" + section
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(new.rstrip("\n") + "\n")
    os.replace(tmp, path)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    rest = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=BENCHES, help="run only this module (repeatable)")
    args = parser.parse_args(argv)
    os.environ.setdefault("LOSSNET_OFFLINE", "1")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    for name in args.only or BENCHES:
        start = time.time()
        print(f"== bench_{name}", flush=True)
        importlib.import_module(f"bench_{name}").main(rest)
        print(f"== bench_{name} done in {time.time() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
