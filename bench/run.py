"""`make bench`: run the benchmark modules and record their tables in BENCHMARKS.md.

    .venv/bin/python bench/run.py                # every module in BENCHES -> runs/bench/BENCHMARKS.md
    .venv/bin/python bench/run.py --only core    # one of them (repeatable)
    LOSSNET_BENCH_RECORD=1 .venv/bin/python bench/run.py   # (make bench-record) -> the tracked BENCHMARKS.md

A module is `bench/bench_NAME.py` with `main(argv) -> None`; it builds a markdown section (tables, then a sentence or
two on what the numbers mean) and hands it to `record`, which appends this run's command, date, commit and CPU to
every table row, prints the section and replaces the module's own section of BENCHMARKS.md with it. To add one,
write the module and append NAME to BENCHES. Arguments after `--` go to every module run (e.g. `-- --no-write`).
"""
from __future__ import annotations

import argparse
import importlib
import os
import re
import shlex
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

BENCHES = ["core", "fast", "big", "precision", "sr", "video", "viz", "studio", "live"]  # bench/bench_<name>.py

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
HEADER = ("# Benchmarks\n\nCurrent figures, one table per area. Every row names the command that measured it, the "
          "date, the commit and the CPU (its model and the flags that decide bf16 and vector speed); older figures "
          "are in git history. `make bench` writes a fresh copy to runs/bench/BENCHMARKS.md, `make bench-record` "
          "updates this file (`bench/run.py`).\n")
RUN_COLUMNS = ("command", "date", "commit", "CPU")  # appended to every table row by `stamp`


def load_average() -> str:
    """The load average, "1.0/1.6/4.0 (1/5/15 min)": above the core count, other work shared the cores."""
    return ("/".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?") + " (1/5/15 min)"


def conditions() -> str:
    """How the bench ran: torch version, intra-op threads, cores and load average, for a module's notes."""
    import torch

    threads = torch.get_num_threads()
    return (f"torch {torch.__version__}, {threads} intra-op thread{'s' * (threads != 1)} on {os.cpu_count()} "
            f"cores, load average {load_average()} at the start")


def busy() -> bool:
    """Whether other work shared the cores (load average above the core count): times are then inflated."""
    return hasattr(os, "getloadavg") and max(os.getloadavg()) > (os.cpu_count() or 1)


def commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return out.stdout.strip() + (" + uncommitted changes" if dirty else "") if out.returncode == 0 else "?"
    except OSError:
        return "?"


def command(script: str, argv=()) -> str:
    """The command that reruns a bench: `python bench/SCRIPT ARGS`, after `BENCH_THREADS=N` when that is set."""
    threads = os.environ.get("BENCH_THREADS")
    words = ["python", f"bench/{script}", *(a for a in argv if a != "--no-write")]
    return (f"BENCH_THREADS={threads} " if threads else "") + shlex.join(words)


def stamp(text: str, run: str) -> str:
    """`text` with the columns RUN_COLUMNS (`run`, today, the commit, the CPU) appended to every markdown table
    row, so that each row says where it comes from even when rows of several runs share a table."""
    from lossnet.precision import describe_cpu

    cells = [f"`{run}`", date.today().isoformat(), commit(), describe_cpu()]
    lines, in_table = [], False
    for line in text.splitlines():
        if line.startswith("|"):
            if not in_table:  # the header
                line = line.rstrip() + " " + " | ".join(RUN_COLUMNS) + " |"
            elif set(line) <= set("|-: "):  # the separator
                line = line.rstrip() + "---|" * len(RUN_COLUMNS)
            else:
                line = line.rstrip() + " " + " | ".join(cells) + " |"
        in_table = line.startswith("|")
        lines.append(line)
    return "\n".join(lines)


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
    """Replace `## heading` (up to the next `## `) in the results file with `text`, or append it. The whole
    section is replaced, so a run of a few models leaves the rows of those alone."""
    path = path or results_file()
    print(f"(section {heading!r} written to {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path})")
    old = path.read_text() if path.is_file() else HEADER
    section = f"## {heading}\n\n{text.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    new = pattern.sub(lambda m: section + "\n", old, count=1) if pattern.search(old) else old.rstrip("\n") + "\n\n" + section
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(new.rstrip("\n") + "\n")
    os.replace(tmp, path)


def record(heading: str, text: str, script: str, argv=(), write: bool = True) -> str:
    """A module's section: its tables stamped with this run (`python bench/SCRIPT ARGV`), printed, and written
    into the results file unless `write` is False (`--no-write`). Returns the stamped text."""
    text = stamp(text, command(script, argv))
    print(f"\n## {heading}\n\n{text}\n", flush=True)
    if write:
        write_section(heading, text)
    return text


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
