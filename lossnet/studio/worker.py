"""One studio job: `python -m lossnet.studio.worker FOLDER` runs FOLDER/job.json's argv through the CLI.

stdout carries JSON progress lines for the server (fd 1 is kept for them; the CLI's own prints go to stderr,
the job's log). Every progress bar the job opens is observed (lossnet.progress.observe): the fraction done
over the method's stages, an ETA from the current bar's rate, and, for the pixel loop, the current iterate
written to FOLDER/preview.png at most once a second (the server's `preview_every_s`).
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from .jobs import PREVIEW

EVENT_EVERY = 0.25  # seconds between progress lines


class Reporter:
    def __init__(self, events, folder: Path, stages: int, preview_every_s: float = 1.0):
        self.events, self.folder, self.stages = events, folder, max(1, stages)
        self.preview_every_s = preview_every_s
        self.closed_bars, self.bar_start, self.bar_start_n = 0, time.time(), 0
        self.last_event = self.last_preview = 0.0
        self.previews = 0

    def __call__(self, desc: str, n: int | None, total: int, terms: dict, image) -> None:
        now = time.time()
        if n is None:  # a bar closed: one stage done
            self.closed_bars += 1
            self._emit(desc, min(1.0, self.closed_bars / self.stages), 0.0 if self.closed_bars >= self.stages else None, terms)
            return
        if n == 0:  # a new bar (an observed bar reports its start with n = 0)
            self.bar_start, self.bar_start_n = now, n
        stage_done = min(1.0, n / total) if total > 0 else 0.0
        done = min(0.999, (min(self.closed_bars, self.stages - 1) + stage_done) / self.stages)
        elapsed, steps = now - self.bar_start, n - self.bar_start_n
        eta = None
        if steps > 0 and elapsed > 0:
            per_step = elapsed / steps
            later_stages = max(0, self.stages - self.closed_bars - 1)
            eta = round(per_step * ((total - n) + later_stages * total), 1)
        if image is not None and now - self.last_preview >= self.preview_every_s:
            from ..io import save_image
            save_image(image(), self.folder / PREVIEW)  # atomic: the server never serves half a PNG
            self.previews += 1
            self.last_preview = now
            self.last_event = 0.0  # say so now
        if now - self.last_event >= EVENT_EVERY or n == total:
            self._emit(desc, done, eta, terms)

    def _emit(self, desc: str, done: float, eta, terms: dict) -> None:
        self.last_event = time.time()
        event = {"progress": round(done, 4), "eta_s": eta, "stage": desc, "previews": self.previews,
                 "terms": {k: float(v) for k, v in terms.items()}}
        self.events.write(json.dumps(event) + "\n")
        self.events.flush()


def end_with_the_server() -> None:
    """Have Linux send this process SIGTERM when the server dies, even by `kill -9`: an orphaned job would go
    on using the cores, and could write a result after the restarted server has marked it interrupted. (The
    signal follows the thread that started the process, the queue's dispatcher, which lives as long as the
    server.) Elsewhere there is no such call and an orphan runs to its end."""
    import ctypes
    import signal
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if str(os.getppid()) != os.environ.get("LOSSNET_STUDIO_SERVER", str(os.getppid())):
        sys.exit(1)  # the server died before the call above took effect


def main() -> int:
    if sys.platform.startswith("linux"):
        end_with_the_server()
    folder = Path(sys.argv[1])
    spec = json.loads((folder / "job.json").read_text())
    events = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # print() and tqdm now write to the log; fd 1's copy is the event stream

    from .. import cli
    from ..progress import observe
    observe(Reporter(events, folder, int(spec.get("stages", 1)), float(spec.get("preview_every_s", 1.0))))
    return cli.main(spec["argv"])


if __name__ == "__main__":
    sys.exit(main())
