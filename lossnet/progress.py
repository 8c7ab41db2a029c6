"""Progress that suits where it goes: a tqdm bar on a terminal, plain log lines in a pipe or a file.

    bar = progress(total=300, desc="stylize", enabled=cfg.progress)
    for it in range(300):
        ...
        bar.update(1, {"loss": 1.23})
    bar.close()                      # a final summary line in both cases

On a terminal the bar keeps a summary (tqdm's `leave=True`, the final loss terms in its postfix). Redirected,
a bar would write one carriage-return update per step (54 KB for `lossnet demo`); instead a line, at most every
`every` seconds and every tenth of the work (and at least once a minute), says the step, the loss terms and the
ETA, and `close` writes the last line.

A host that shows progress elsewhere (the studio's job process) registers one `observe(callback)`: every bar
then also reports `callback(desc, n, total, terms, image)` on each update, where `image` is a function that
returns the current picture (the pixel loop offers its iterate) or None. `close` reports with n = None.
"""
from __future__ import annotations

import sys
import time


def _terms(terms: dict) -> str:
    return " ".join(f"{k}={v:.3g}" for k, v in terms.items())


class _Lines:
    """The pipe / file form: a line every `every` seconds and one at the end."""

    def __init__(self, total: int, initial: int, desc: str, every: float, stream):
        self.total, self.n, self.desc, self.every, self.stream = total, initial, desc, every, stream
        self.start, self.start_n, self.last, self.terms = time.time(), initial, time.time(), {}
        self.last_n = initial

    def _line(self, final: bool = False) -> None:
        elapsed = time.time() - self.start
        done = self.n - self.start_n
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.n) / rate if rate > 0 else float("inf")
        tail = f"{elapsed:.0f} s" if final else (f"ETA {eta:.0f} s" if eta != float("inf") else "ETA ?")
        print(f"{self.desc}: {self.n}/{self.total} {_terms(self.terms)} ({tail})".replace("  ", " "),
              file=self.stream, flush=True)

    def update(self, n: int = 1, terms: dict | None = None, image=None) -> None:
        self.n += n
        self.terms = terms or self.terms
        # A line when `every` seconds and a tenth of the work have passed, or every 12 x `every` seconds: a log
        # stays a few lines a bar however slow the machine (a 3x slower demo must not write a 3x longer log).
        waited = time.time() - self.last
        if (waited >= self.every and self.n - self.last_n >= self.total / 10) or waited >= 12 * self.every:
            self.last, self.last_n = time.time(), self.n
            self._line()

    def close(self) -> None:
        self._line(final=True)


class _Bar:
    def __init__(self, total: int, initial: int, desc: str, stream):
        from tqdm.auto import tqdm
        self.bar = tqdm(total=total, initial=initial, desc=desc, file=stream, dynamic_ncols=True, leave=True)

    def update(self, n: int = 1, terms: dict | None = None, image=None) -> None:
        if terms:
            self.bar.set_postfix({k: f"{v:.3g}" for k, v in terms.items()}, refresh=False)
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()


class _Off:
    def update(self, n: int = 1, terms: dict | None = None, image=None) -> None:
        pass

    def close(self) -> None:
        pass


class _Observed:
    """A bar that also tells the registered observer (see the module docstring)."""

    def __init__(self, bar, total: int, initial: int, desc: str, callback):
        self.bar, self.total, self.n, self.desc, self.callback = bar, total, initial, desc, callback
        self.terms: dict = {}
        callback(desc, initial, total, {}, None)

    def update(self, n: int = 1, terms: dict | None = None, image=None) -> None:
        self.n += n
        self.terms = terms or self.terms
        self.bar.update(n, terms)
        self.callback(self.desc, self.n, self.total, self.terms, image)

    def close(self) -> None:
        self.bar.close()
        self.callback(self.desc, None, self.total, self.terms, None)


class _Estimated:
    """A bar that, at its second update, says the whole run's estimated time and peak memory (one notice line):
    the second step's time (the first one warms up kernels and caches) times the steps left, and the
    process's peak RSS so far, which the first steps have reached."""

    def __init__(self, bar, total: int, initial: int, faster: str):
        self.bar, self.total, self.n, self.faster = bar, total, initial, faster
        self.updates, self.last = 0, time.time()

    def update(self, n: int = 1, terms: dict | None = None, image=None) -> None:
        self.bar.update(n, terms, image)
        self.n += n
        self.updates += 1
        now = time.time()
        if self.updates == 2 and self.total - self.n > 0:
            from .estimate import Estimate, peak_bytes
            from .weights import notice
            left = (now - self.last) / n * (self.total - self.n)
            notice(Estimate(left, peak_bytes()).describe(self.faster, left=True))
        self.last = now

    def close(self) -> None:
        self.bar.close()


_observer = None


def observe(callback) -> None:
    """Register the one observer of every later bar in this process (None: stop observing)."""
    global _observer
    _observer = callback


def progress(total: int, desc: str, enabled: bool = True, initial: int = 0, every: float = 5.0, stream=None,
             faster: str | None = None):
    """A bar on a terminal, log lines elsewhere, nothing when not `enabled`; the observer sees it in all cases.
    With `faster` (what makes the work faster, e.g. "fewer --iters"), an enabled bar also says the estimated time
    and peak memory of the rest at its second step."""
    stream = stream or sys.stderr
    if not enabled:
        bar = _Off()
    elif getattr(stream, "isatty", lambda: False)():
        bar = _Bar(total, initial, desc, stream)
    else:
        bar = _Lines(total, initial, desc, every, stream)
    if faster is not None and enabled:
        bar = _Estimated(bar, total, initial, faster)
    return _Observed(bar, total, initial, desc, _observer) if _observer is not None else bar
