"""The studio's history: every job, its parameters, state and files, in SQLite beside the job folders.

    history = History(run_dir)           # opens RUN_DIR/studio.sqlite3 (WAL), or starts a new one
    history.add(record); history.update(job_id, state=..., error=...); history.delete(job_id)
    history.jobs()                       # every record, oldest first
    history.notice                       # None, or the sentence the page shows about a lost database

The database is the index; each job's folder is the truth it can be rebuilt from: `job.json` holds everything
the record does except the state, which the folder's files give back (a result.png is only ever written
whole, so it means done). A database that cannot be read (corrupt, not SQLite, an unknown layout) is moved
aside as `studio.sqlite3.corrupt-TIME` (kept for a look, never read again), said in a log line and in
`notice`, and a new one is rebuilt from the folders; so is a missing one when folders are there. No result
file is ever deleted for the database's sake.

A database that is only busy, locked, read-only or on a full disk is not moved aside: the error stops the
server instead, and the file is kept as it is.

WAL with synchronous=NORMAL: a committed change survives the server being killed (`kill -9`); only a power
loss can take the last few. One connection, shared by the server's threads under a lock: the writes are a
few small rows per job, never worth a pool. One server per run folder (`hold_run_folder`): two would each
run the waiting jobs and mark the other's running ones interrupted.
"""
from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import threading
import time
from pathlib import Path

from ..errors import LossnetError

DATABASE = "studio.sqlite3"
LOCK = "studio.lock"
SPEC = "job.json"  # in each job folder: argv, method, parameters, input, created
RESULT = "result.png"
SCHEMA_VERSION = 1
COLUMNS = ("id", "method", "argv", "stages", "params", "input", "state", "error", "created", "started", "finished")
JOB_ID = re.compile(r"^[0-9a-f]{32}$")
# SQLite's primary result codes that say nothing about the file's content: PERM, BUSY, LOCKED, NOMEM, READONLY,
# IOERR, FULL, CANTOPEN
NOT_CORRUPT = {3, 5, 6, 7, 8, 10, 13, 14}

log = logging.getLogger("lossnet.studio")


class History:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.path = self.root / DATABASE
        self.lock = threading.Lock()
        self.closed = False
        self.notice: str | None = None
        existed = self.path.is_file()
        try:
            self.db = self._open()
        except sqlite3.DatabaseError as e:
            if ((getattr(e, "sqlite_errorcode", None) or 0) & 0xFF) in NOT_CORRUPT:
                raise LossnetError(f"cannot open the studio's history {self.path}: {e}") from None
            aside = self._move_aside()
            self.db = self._open()
            rebuilt = self._rebuild()
            self._say(f"the studio's history database could not be read ({e}); it was moved to {aside.name} and a "
                      f"new one rebuilt from the job folders ({rebuilt} job{'s' if rebuilt != 1 else ''})")
            return
        if not existed:
            rebuilt = self._rebuild()
            if rebuilt:
                self._say(f"the studio's history database was missing; a new one was rebuilt from the job folders "
                          f"({rebuilt} job{'s' if rebuilt != 1 else ''})")

    # -- opening, checking, rebuilding
    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"integrity check: {check}")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                db.execute("CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, method TEXT NOT NULL, argv TEXT NOT "
                           "NULL, stages INTEGER NOT NULL, params TEXT NOT NULL, input TEXT, state TEXT NOT NULL, "
                           "error TEXT, created REAL NOT NULL, started REAL, finished REAL)")
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            elif version != SCHEMA_VERSION:
                raise sqlite3.DatabaseError(f"schema version {version}, this studio reads {SCHEMA_VERSION}")
            db.execute(f"SELECT {', '.join(COLUMNS)} FROM jobs LIMIT 1").fetchall()
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def _move_aside(self) -> Path:
        aside = self.path.with_name(f"{DATABASE}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        for suffix in ("", "-wal", "-shm"):
            part = Path(str(self.path) + suffix)
            if part.exists():
                os.replace(part, Path(str(aside) + suffix))
        return aside

    def _rebuild(self) -> int:
        """Records for the job folders the database does not list, from their job.json and files."""
        known = {row[0] for row in self.db.execute("SELECT id FROM jobs")}
        count = 0
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir() and JOB_ID.match(p.name)):
            if folder.name in known:
                continue
            try:
                spec = json.loads((folder / SPEC).read_text())
                record = {"id": folder.name, "method": str(spec["method"]), "argv": list(spec["argv"]),
                          "stages": int(spec.get("stages", 1)), "params": dict(spec.get("params", {})),
                          "input": spec.get("input"), "created": float(spec.get("created", folder.stat().st_mtime))}
            except (OSError, ValueError, KeyError, TypeError):
                continue  # not a job folder this studio wrote: left as it is
            done = (folder / RESULT).is_file()
            record |= {"state": "done" if done else "failed", "started": None,
                       "finished": (folder / RESULT).stat().st_mtime if done else None,
                       "error": None if done else "its record was lost with the database and it had no result"}
            self.add(record)
            count += 1
        return count

    def _say(self, notice: str) -> None:
        self.notice = notice
        log.warning("studio: %s", notice)
        print(f"warning: {notice}", flush=True)

    # -- records
    def add(self, record: dict) -> None:
        row = {**record, "argv": json.dumps(record["argv"]), "params": json.dumps(record.get("params", {}))}
        with self.lock:
            if self.closed:  # a job process that ends after the server stopped: the next start sees its folder
                return
            self.db.execute(f"INSERT OR REPLACE INTO jobs ({', '.join(COLUMNS)}) VALUES "
                            f"({', '.join(':' + c for c in COLUMNS)})", {c: row.get(c) for c in COLUMNS})

    def update(self, job_id: str, **fields) -> None:
        unknown = set(fields) - set(COLUMNS)
        if unknown:
            raise KeyError(f"no column {sorted(unknown)}")
        with self.lock:
            if self.closed:
                return
            self.db.execute(f"UPDATE jobs SET {', '.join(f'{k} = :{k}' for k in fields)} WHERE id = :id",
                            {**fields, "id": job_id})

    def delete(self, job_id: str) -> None:
        with self.lock:
            if self.closed:
                return
            self.db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def jobs(self) -> list[dict]:
        with self.lock:
            rows = self.db.execute(f"SELECT {', '.join(COLUMNS)} FROM jobs ORDER BY created, rowid").fetchall()
        return [{**dict(zip(COLUMNS, row)), "argv": json.loads(row[2]), "params": json.loads(row[4])} for row in rows]

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self.db.close()


def hold_run_folder(root: Path):
    """The open lock file that keeps other studios out of `root` while this one serves it (close it to let
    go); None where there is no flock. The kernel holds the lock, so a server killed with `kill -9` leaves
    none behind, and job processes do not inherit it (their files are closed when they start)."""
    try:
        import fcntl
    except ImportError:
        return None
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    handle = open(root / LOCK, "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise LossnetError(f"another lossnet studio is serving {root}: stop it, or serve another run folder") from None
    return handle
