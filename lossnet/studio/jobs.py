"""The studio's job queue: FIFO, at most `workers` jobs at a time, each in its own process.

A job is a CLI argv and a folder. Each runs as `python -m lossnet.studio.worker FOLDER`, which runs the CLI's
own `main` on that argv (the same code as the command line, no second implementation) and reports progress
as JSON lines on its stdout. A process per job makes cancelling exact (SIGTERM: the CLI's atomic writes leave
nothing half-written), keeps a crash or a leak from reaching the server, and returns every job's memory.
The queue holds at most `max_queued` waiting jobs; beyond that `submit` raises QueueFull (HTTP 503).

Every job is recorded in the run folder's history (history.py), so a restarted server lists every earlier job
and serves its results. Jobs that were waiting run after the restart, in their order. A job that was running
when the server stopped (a `kill -9`, a crash, Ctrl-C) is not started again: it is marked failed, "interrupted
by a restart", unless its result had already been written whole. Re-running it unasked could bring the server
down in a loop, when the job itself is what stopped it (a photo too large for the memory, say), and its
progress is lost anyway; the page shows its parameters, so running it again is one submission.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from .history import JOB_ID, RESULT, SPEC, History

TERMINAL = ("done", "failed", "cancelled")
PREVIEW = "preview.png"
LOG = "log.txt"
INTERRUPTED = "interrupted by a restart"


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
    params: dict = field(default_factory=dict)  # the form's parameters, as submitted (shown with the job)
    input: str | None = None  # the photo the result is compared with (a file in the folder), if any
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
        self.history = History(self.root)
        self._restore()
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

    # -- the history
    def _restore(self) -> None:
        """The jobs of earlier runs: waiting ones queued again in their order, running ones ended (see above)."""
        for record in self.history.jobs():
            if not JOB_ID.match(record["id"]):  # its folder is joined to the run folder, and deleted with the job
                continue
            before = record["input"] if record["input"] and Path(record["input"]).name == record["input"] else None
            job = Job(record["id"], record["method"], record["argv"], self.root / record["id"], record["stages"],
                      record["params"], before, record["state"], error=record["error"],
                      created=record["created"], started=record["started"], finished=record["finished"])
            if job.state == "running":
                if (job.folder / RESULT).is_file():  # written whole or not at all: the job had finished
                    self._finish(job, "done")
                else:
                    self._finish(job, "failed", INTERRUPTED)
            elif job.state == "queued":
                if job.folder.is_dir():
                    self.waiting.append(job)
                else:
                    self._finish(job, "failed", "its folder is gone")
            if job.state == "done" and not (job.folder / RESULT).is_file():
                self._finish(job, "failed", "its result file is gone")
            self.jobs[job.id] = job

    def _record(self, job: Job) -> dict:
        return {"id": job.id, "method": job.method, "argv": job.argv, "stages": job.stages, "params": job.params,
                "input": job.input, "state": job.state, "error": job.error, "created": job.created,
                "started": job.started, "finished": job.finished}

    # -- changes
    def submit(self, job: Job) -> Job:
        with self.lock:
            if self.closed:
                raise QueueFull(5)
            if len(self.waiting) >= self.max_queued:
                raise QueueFull(self.retry_after())
            spec = {k: v for k, v in self._record(job).items() if k in ("method", "argv", "stages", "params", "input",
                                                                        "created")}
            (job.folder / SPEC).write_text(json.dumps({**spec, "preview_every_s": self.preview_every_s}))
            self.history.add(self._record(job))
            self.jobs[job.id] = job
            self.waiting.append(job)
            self.lock.notify_all()
        return job

    def add_finished(self, job: Job) -> Job:
        """A job whose result is already in its folder (a live-mode snapshot): recorded as done, never run."""
        with self.lock:
            job.started = job.started or job.created
            self._finish(job, "done")
            (job.folder / SPEC).write_text(json.dumps({k: v for k, v in self._record(job).items() if k in (
                "method", "argv", "stages", "params", "input", "created")}))
            self.jobs[job.id] = job
        return job

    def delete(self, job: Job) -> None:
        """Forget a job and remove its folder; a queued or running one is cancelled first (its process ended)."""
        self.cancel(job)
        if job.process is not None:
            try:
                job.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                job.process.kill()
                job.process.wait()
        with self.lock:
            while job.id in self.running:  # the watcher records the end; then nothing touches the folder
                self.lock.wait(0.1)
            self.jobs.pop(job.id, None)
            self.history.delete(job.id)
        shutil.rmtree(job.folder, ignore_errors=True)

    def cancel(self, job: Job) -> None:
        with self.lock:
            if job.state == "queued":
                self.waiting.remove(job)
                self._finish(job, "cancelled")
            elif job.state == "running" and job.process is not None:
                job.cancelling = True
                job.process.terminate()  # SIGTERM: the CLI stops, its atomic writes leave no partial file

    def close(self) -> None:
        """Stop: waiting jobs stay queued in the history (the next start runs them), running ones are ended as a
        `kill -9` would leave them, "interrupted by a restart"."""
        with self.lock:
            self.closed = True
            self.waiting.clear()
            running = [self.jobs[i] for i in self.running]
            self.lock.notify_all()
        for job in running:
            if job.process is not None:
                job.process.terminate()
        for job in running:
            if job.process is not None:
                try:
                    job.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    job.process.kill()
        with self.lock:
            end = time.time() + 5
            while self.running and time.time() < end:  # the watchers record how each ended
                self.lock.wait(0.1)
        self.history.close()

    def _finish(self, job: Job, state: str, error: str | None = None) -> None:
        job.state, job.error, job.finished, job.eta_s = state, error, time.time(), None
        if state == "done":
            job.progress = 1.0
        self.history.add(self._record(job))

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
                self.history.update(job.id, state="running", started=job.started)
                self.running.add(job.id)
                try:
                    job.process = self._start(job)
                except OSError as e:
                    self.running.discard(job.id)
                    self._finish(job, "failed", f"cannot start the job process: {e}")
                    continue
            threading.Thread(target=self._watch, args=(job,), name=f"studio-job-{job.id[:8]}", daemon=True).start()

    def _start(self, job: Job) -> subprocess.Popen:
        env = {**os.environ, "OMP_NUM_THREADS": str(self.threads), "PYTHONUNBUFFERED": "1",
               "LOSSNET_STUDIO_SERVER": str(os.getpid())}
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
            elif code == 0 and (job.folder / RESULT).is_file():  # also while closing: a finished job is done
                self._finish(job, "done")
                self.durations.append(job.finished - job.started)
            elif self.closed:
                self._finish(job, "failed", INTERRUPTED)
            else:
                error = last_error(job.folder / LOG) or f"the job process ended unexpectedly (exit code {code})"
                self._finish(job, "failed", error)
            self.running.discard(job.id)
            self.lock.notify_all()
