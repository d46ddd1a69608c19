"""One trainer per run: a lock file beside each run folder, so that an orchestrator, its workers and a
user's `repro train` never train the same run at the same time.

`run_lock(folder)` holds `<folder>.lock` (a sibling of the run folder, so that `--force` wiping the
folder keeps the lock) with `filelock.FileLock`, an `flock` lock: the kernel releases it when its
holder exits, however it exits (a crash, SIGKILL, a node's job killed by Slurm). Whoever holds it also
writes `<folder>.lock.json` (pid, host, since when), atomically after acquiring and deleted before
releasing, so that a waiter can say whom it waits for, and the next holder can tell that the last one
died (the sidecar is still there) and say so before taking the lock over.

Where it holds: on local disks, and on NFS (Linux emulates `flock` with `fcntl` byte-range locks,
which go through NLM on NFSv3 and are part of the protocol on NFSv4; a lock of a client that died is
given back when its lease or NLM grace ends). It does NOT hold on some cluster file systems: Lustre
mounted without `-o flock` (with `localflock` the lock excludes processes of one node only; with
`noflock` filelock falls back to a marker file, with a warning, that a killed holder leaves behind) and
BeeGFS without global file locks (`tuneUseGlobalFileLocks`). There, run one orchestrator per output
folder (and no `repro train` of its runs beside it), or use `--launcher slurm`, which submits each run
once as its own job and orders students after their teachers with job dependencies.

Reentrant within one process (the orchestrator's `execute` holds the lock and `train` takes it again),
exclusive between processes and between threads.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from repro.io_utils import atomic_write_text

LOCK_SUFFIX = ".lock"
HOLDER_SUFFIX = ".lock.json"

_LOCKS: dict[str, Any] = {}  # one FileLock per lock path in this process (what makes it reentrant)
_LOCKS_GUARD = threading.Lock()


def lock_path(folder: str | os.PathLike[str]) -> Path:
    """`<folder>.lock`: the lock of the run in `folder` (beside it, not in it)."""
    folder = Path(folder)
    return folder.with_name(folder.name + LOCK_SUFFIX)


def holder_path(folder: str | os.PathLike[str]) -> Path:
    """`<folder>.lock.json`: who holds the lock of the run in `folder` (while someone does)."""
    folder = Path(folder)
    return folder.with_name(folder.name + HOLDER_SUFFIX)


def read_holder(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """{"pid", "host", "since", "run"} of the lock's (last) holder, or None when no sidecar is there."""
    try:
        data = json.loads(holder_path(folder).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def describe_holder(holder: dict[str, Any] | None) -> str:
    if not holder:
        return "another process (it has not said which yet)"
    return f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} since {holder.get('since', '?')}"


def _file_lock(folder: Path) -> Any:
    from filelock import FileLock

    path = str(lock_path(folder))
    with _LOCKS_GUARD:
        lock = _LOCKS.get(path)
        if lock is None:
            # thread_local (the default): another thread of this process waits like another process
            lock = _LOCKS[path] = FileLock(path)
        return lock


def _me(name: str) -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "run": name}


@contextmanager
def run_lock(folder: str | os.PathLike[str], *, log: Callable[[str], Any] = print,
             announce_after_s: float = 1.0) -> Iterator[None]:
    """Hold the lock of the run in `folder` for the `with` block (waiting for its holder if needed).

    While waiting, says once (through `log`) which run it waits for and who holds it; taking over a
    lock whose holder died (its sidecar is still there) says so too. Reentrant within one thread.
    """
    folder = Path(folder).resolve()
    name = folder.name
    lock = _file_lock(folder)
    if lock.lock_counter > 0:  # this thread holds it already: count one more hold
        with lock:
            yield
        return
    from filelock import Timeout

    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        # the holder writes its sidecar right after acquiring: give it a moment to appear
        deadline = time.monotonic() + announce_after_s
        holder = read_holder(folder)
        acquired = False
        while holder is None and time.monotonic() < deadline:
            try:
                lock.acquire(timeout=0.05)
                acquired = True
                break
            except Timeout:
                holder = read_holder(folder)
        if not acquired:
            log(f"waiting for the lock of {name}: held by {describe_holder(holder)}")
            lock.acquire()
    try:
        stale = read_holder(folder)
        if stale is not None:
            log(f"taking over the lock of {name}: its holder pid {stale.get('pid', '?')} on "
                f"{stale.get('host', '?')} died")
        atomic_write_text(holder_path(folder), json.dumps(_me(name), indent=2) + "\n")
    except BaseException:
        lock.release()
        raise
    try:
        yield
    finally:
        try:
            holder_path(folder).unlink(missing_ok=True)  # before the lock goes: no waiter sees it stale
        finally:
            lock.release()
