"""The studio's job queue: FIFO, at most `workers` jobs at a time, each in its own process.

A job is a CLI argv and a folder. Each runs as `python -m lossnet.studio.worker FOLDER`, which runs the CLI's
own `main` on that argv (the same code as the command line, no second implementation) and reports progress
as JSON lines on its stdout. A process per job makes cancelling exact (SIGTERM: the CLI's atomic writes leave
nothing half-written), keeps a crash or a leak from reaching the server, and returns every job's memory.
The queue holds at most `max_queued` waiting jobs; beyond that `submit` raises QueueFull (HTTP 503).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

TERMINAL = ("done", "failed", "cancelled")
RESULT = "result.png"
PREVIEW = "preview.png"
LOG = "log.txt"


class QueueFull(RuntimeError):
    def __init__(self, retry_after: int):
        super().__init__(f"the queue is full: try again in about {retry_after} s")
        self.retry_after = retry_after


@dataclass
class Job:
    id: str
    method: str
    argv: list[str]
    folder: Path
    stages: int = 1  # progress bars the method opens in turn (DeepDream: one per octave)
    state: str = "queued"
    progress: float = 0.0
    eta_s: float | None = None
    stage: str = ""
    error: str | None = None
    previews: int = 0
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    process: subprocess.Popen | None = None
    cancelling: bool = False


def new_id() -> str:
    return uuid.uuid4().hex  # unguessable: a job's files are reachable only through its id


def last_error(log: Path) -> str | None:
    """The CLI's one-line `error: ...` from a job's log, without the prefix."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    return next((line[len("error: "):].strip() for line in reversed(lines) if line.startswith("error: ")), None)


class JobQueue:
    def __init__(self, root: Path, workers: int = 1, max_queued: int = 8, threads: int | None = None,
                 preview_every_s: float = 1.0):
        self.root, self.workers, self.max_queued = Path(root), workers, max_queued
        self.threads = threads or max(1, (os.cpu_count() or 1) // workers)
        self.preview_every_s = preview_every_s
        self.jobs: dict[str, Job] = {}
        self.waiting: deque[Job] = deque()
        self.running: set[str] = set()
        self.durations: deque[float] = deque(maxlen=20)  # of recent jobs, for Retry-After and waiting ETAs
        self.lock = threading.Condition()
        self.closed = False
        self.root.mkdir(parents=True, exist_ok=True)
        self.dispatcher = threading.Thread(target=self._dispatch, name="studio-dispatch", daemon=True)
        self.dispatcher.start()

    # -- what clients see
    def typical_duration(self) -> float:
        return sorted(self.durations)[len(self.durations) // 2] if self.durations else 20.0

    def retry_after(self) -> int:
        return max(1, round(self.typical_duration() * max(1, len(self.waiting)) / self.workers))

    def check_room(self) -> None:
        with self.lock:
            if len(self.waiting) >= self.max_queued:
                raise QueueFull(self.retry_after())

    def position(self, job: Job) -> int | None:
        """Jobs ahead of this one in the queue (0: next to start); None once it has started."""
        with self.lock:
            return next((i for i, j in enumerate(self.waiting) if j is job), None)

    def public(self, job: Job) -> dict:
        with self.lock:
            position = next((i for i, j in enumerate(self.waiting) if j is job), None)
            eta = job.eta_s
            if job.state == "queued":  # its wait plus its own run, from recent jobs
                eta = round(self.typical_duration() * ((position or 0) // self.workers + 1 +
                                                       (len(self.running) >= self.workers)), 1)
            return {"id": job.id, "method": job.method, "state": job.state, "progress": round(job.progress, 4),
                    "eta_s": eta, "position": position, "stage": job.stage, "error": job.error,
                    "previews": job.previews,
                    "elapsed_s": round((job.finished or time.time()) - job.started, 1) if job.started else 0.0}

    def get(self, job_id: str) -> Job | None:
        with self.lock:
            return self.jobs.get(job_id)

    # -- changes
    def submit(self, job: Job) -> Job:
        with self.lock:
            if self.closed:
                raise QueueFull(5)
            if len(self.waiting) >= self.max_queued:
                raise QueueFull(self.retry_after())
            (job.folder / "job.json").write_text(json.dumps({"argv": job.argv, "stages": job.stages,
                                                                "preview_every_s": self.preview_every_s}))
            self.jobs[job.id] = job
            self.waiting.append(job)
            self.lock.notify_all()
        return job

    def cancel(self, job: Job) -> None:
        with self.lock:
            if job.state == "queued":
                self.waiting.remove(job)
                self._finish(job, "cancelled")
            elif job.state == "running" and job.process is not None:
                job.cancelling = True
                job.process.terminate()  # SIGTERM: the CLI stops, its atomic writes leave no partial file

    def close(self) -> None:
        with self.lock:
            self.closed = True
            for job in list(self.waiting):
                self._finish(job, "cancelled")
            self.waiting.clear()
            running = [self.jobs[i] for i in self.running]
            self.lock.notify_all()
        for job in running:
            if job.process is not None:
                job.cancelling = True
                job.process.terminate()
        for job in running:
            if job.process is not None:
                try:
                    job.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    job.process.kill()

    def _finish(self, job: Job, state: str, error: str | None = None) -> None:
        job.state, job.error, job.finished, job.eta_s = state, error, time.time(), None
        if state == "done":
            job.progress = 1.0

    # -- the work
    def _dispatch(self) -> None:
        while True:
            with self.lock:
                while not self.closed and (not self.waiting or len(self.running) >= self.workers):
                    self.lock.wait()
                if self.closed:
                    return
                job = self.waiting.popleft()
                job.state, job.started, job.stage = "running", time.time(), "starting"
                self.running.add(job.id)
                try:
                    job.process = self._start(job)
                except OSError as e:
                    self.running.discard(job.id)
                    self._finish(job, "failed", f"cannot start the job process: {e}")
                    continue
            threading.Thread(target=self._watch, args=(job,), name=f"studio-job-{job.id[:8]}", daemon=True).start()

    def _start(self, job: Job) -> subprocess.Popen:
        env = {**os.environ, "OMP_NUM_THREADS": str(self.threads), "PYTHONUNBUFFERED": "1"}
        with open(job.folder / LOG, "wb") as log:
            return subprocess.Popen([sys.executable, "-m", "lossnet.studio.worker", str(job.folder)],
                                    stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, env=env)

    def _watch(self, job: Job) -> None:
        for line in job.process.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            with self.lock:
                job.progress = float(event.get("progress", job.progress))
                job.eta_s = event.get("eta_s", job.eta_s)
                job.stage = str(event.get("stage", job.stage))
                job.previews = int(event.get("previews", job.previews))
        code = job.process.wait()
        job.process.stdout.close()
        with self.lock:
            if job.cancelling:
                self._finish(job, "cancelled")
            elif code == 0 and (job.folder / RESULT).is_file():
                self._finish(job, "done")
                self.durations.append(job.finished - job.started)
            else:
                error = last_error(job.folder / LOG) or f"the job process ended unexpectedly (exit code {code})"
                self._finish(job, "failed", error)
            self.running.discard(job.id)
            self.lock.notify_all()
