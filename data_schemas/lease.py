"""One job per store: a lease file ``<store>/lease.json`` with an owner and a heartbeat.

A job that writes a store (``dmd3c generate``, ``dmd3c teach``) takes the lease before any
work starts and releases it at the end::

    with StoreLease(url, job="dmd3c generate") as lease:
        ...                 # lease.check() raises StoreBusyError if the lease was lost

The lease records who holds it (``owner`` token, user, host, pid, command), when the job
started, and a ``heartbeat`` that a background thread rewrites every ``heartbeat_s``
seconds. A second job on the same store is refused with :class:`StoreBusyError` naming the
owner. A lease is *stale*, and is taken over with a warning, when its heartbeat is older
than ``stale_after_s`` (the job died without releasing it; hosts' clocks must agree to
within that margin), or at once when its process is gone on this very host (a killed
driver re-run on the same machine). ``break_lease=True`` takes over any lease.

Taking the lease is an exclusive create: a hard link of a complete temporary file on a
local disk (atomic), ``open(..., "xb")`` on fsspec file systems that support it, else a
write followed by a read-back after ``settle_s``. Every heartbeat re-reads the lease, so
two jobs that raced past each other learn it within one heartbeat, and the one that lost
stops with :class:`StoreBusyError` at its next :meth:`StoreLease.check`.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import logging
import os
import socket
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from data_schemas.errors import StoreBusyError, StoreError
from data_schemas.location import StoreLocation, durable_temp

LEASE_NAME = "lease.json"
"""The lease file, relative to the store root."""
HEARTBEAT_S = 30.0
"""Seconds between heartbeats of a held lease."""
STALE_AFTER_S = 300.0
"""A lease whose heartbeat is older than this (5 minutes) is stale and taken over."""
SETTLE_S = 1.0
"""Read-back delay on file systems without an exclusive create."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaseRecord:
    """The content of ``lease.json``; times are seconds since the epoch (UTC)."""

    owner: str
    """Unique token of the holding job (``user@host:pid:random``)."""
    job: str
    """What runs: the command, e.g. ``dmd3c generate``."""
    user: str
    host: str
    pid: int
    pid_start: float | None
    """Start time of the process (Linux /proc ticks), to tell a reused pid apart."""
    started: float
    heartbeat: float

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> LeaseRecord:
        body = json.loads(data)
        return cls(str(body["owner"]), str(body["job"]), str(body["user"]), str(body["host"]),
                   int(body["pid"]), _optional_float(body.get("pid_start")),
                   float(body["started"]), float(body["heartbeat"]))

    def describe(self, now: float) -> str:
        """``dmd3c generate of root@host pid 12 since 2026-... (heartbeat 3 s ago)``."""
        since = datetime.fromtimestamp(self.started, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        return (f"{self.job} of {self.user}@{self.host} pid {self.pid} since {since} "
                f"(heartbeat {max(0.0, now - self.heartbeat):.0f} s ago)")


def _optional_float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def process_start(pid: int) -> float | None:
    """Start time of process ``pid`` in clock ticks after boot (Linux), else None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return float(stat.rsplit(")", 1)[1].split()[19])


def process_alive(pid: int, start: float | None) -> bool:
    """Whether process ``pid`` (started at ``start``, when known) runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    now_start = process_start(pid)
    return start is None or now_start is None or now_start == start


def _own_record(job: str) -> LeaseRecord:
    host, pid, now = socket.gethostname(), os.getpid(), time.time()
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return LeaseRecord(f"{user}@{host}:{pid}:{uuid.uuid4().hex[:12]}", job, user, host, pid,
                       process_start(pid), now, now)


def default_job() -> str:
    """The running command, shortened: ``dmd3c generate``."""
    argv = [Path(sys.argv[0]).name, *sys.argv[1:2]] if sys.argv and sys.argv[0] else []
    return " ".join(argv) or "python"


class StoreLease:
    """The lease of one store, held by this process between :meth:`acquire` and
    :meth:`release` (or as a context manager, with heartbeats in a daemon thread)."""

    def __init__(self, url: str | os.PathLike[str], job: str | None = None, *,
                 break_lease: bool = False, heartbeat_s: float = HEARTBEAT_S,
                 stale_after_s: float = STALE_AFTER_S, settle_s: float = SETTLE_S) -> None:
        if not 0 < heartbeat_s < stale_after_s:
            raise ValueError(f"need 0 < heartbeat_s < stale_after_s, got {heartbeat_s}, "
                             f"{stale_after_s}")
        self.location = StoreLocation.parse(url)
        self.record = _own_record(job or default_job())
        self.break_lease = break_lease
        self.heartbeat_s = heartbeat_s
        self.stale_after_s = stale_after_s
        self.settle_s = settle_s
        self.lost: str | None = None
        """Why the lease was lost (None while held)."""
        self._made_root = self.location.is_local and not self.location.exists()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- taking and giving back ----------------------------------------------------------
    def acquire(self) -> None:
        """Take the lease, or raise :class:`StoreBusyError` naming the job that holds it."""
        if self._create_exclusive():
            return
        current = self.read()
        if current is not None:
            reason = self.stale_reason(current)
            if reason is None and not self.break_lease:
                raise StoreBusyError(self.location.url, _busy_message(current))
            log.warning("%s: taking over the lease of %s: %s", self.location.url,
                        current.describe(time.time()), reason or "--break-lease")
        self.location.delete(LEASE_NAME)
        if not self._create_exclusive():
            winner = self.read()
            raise StoreBusyError(self.location.url, _busy_message(winner) if winner else
                                 "another job took the lease at the same moment")

    def release(self) -> None:
        """Stop heartbeats and delete the lease if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        current = self.read()
        if current is not None and current.owner == self.record.owner:
            self.location.delete(LEASE_NAME)
        if self._made_root:  # nothing but the lease was written: leave no empty folder
            with contextlib.suppress(OSError):
                os.rmdir(self.location.root)

    def __enter__(self) -> StoreLease:
        self.acquire()
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name="store-lease-heartbeat",
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.release()

    # -- while held ------------------------------------------------------------------------
    def renew(self) -> None:
        """Write a new heartbeat; rewrites a lease deleted under us (e.g. by a store
        re-creation); raises :class:`StoreBusyError` once another job holds it."""
        with self._lock:
            current = self.read()
            if current is not None and current.owner != self.record.owner:
                self.lost = _busy_message(current)
                raise StoreBusyError(self.location.url, f"lost the lease: {self.lost}")
            self.record = _with_heartbeat(self.record, time.time())
            self.location.write_bytes_atomic(LEASE_NAME, self.record.to_json())

    def check(self) -> None:
        """Raise :class:`StoreBusyError` if a heartbeat found the lease taken over."""
        if self.lost is not None:
            raise StoreBusyError(self.location.url, f"lost the lease: {self.lost}")

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                self.renew()
            except StoreBusyError as err:
                log.error("%s", err)
                return
            except OSError as err:  # a transient storage error: try again next beat
                log.warning("%s: lease heartbeat failed: %s", self.location.url, err)

    # -- reading -----------------------------------------------------------------------
    def read(self) -> LeaseRecord | None:
        """The lease on the store now, or None."""
        try:
            data = self.location.read_bytes(LEASE_NAME)
        except FileNotFoundError:
            return None
        try:
            return LeaseRecord.from_json(data)
        except (ValueError, KeyError, TypeError) as err:
            raise StoreError(self.location.path(LEASE_NAME),
                             f"unreadable lease ({err}); delete the file if no job runs "
                             f"on this store") from err

    def stale_reason(self, record: LeaseRecord) -> str | None:
        """Why ``record`` no longer holds the store, or None while its job is alive."""
        age = time.time() - record.heartbeat
        if age > self.stale_after_s:
            return f"no heartbeat for {age / 60:.1f} min"
        if record.host == self.record.host and not process_alive(record.pid,
                                                                 record.pid_start):
            return f"its process {record.pid} on this host is gone"
        return None

    # -- exclusive create --------------------------------------------------------------
    def _create_exclusive(self) -> bool:
        """Write our record unless a lease exists; True when we hold it afterwards."""
        self.record = _with_heartbeat(self.record, time.time())
        if self.location.is_local:
            return _link_exclusive(self.location.path(LEASE_NAME), self.record.to_json())
        try:
            with self.location.fs.open(self.location.path(LEASE_NAME), "xb") as handle:
                handle.write(self.record.to_json())
            return True
        except FileExistsError:
            return False
        except (NotImplementedError, ValueError):
            return self._write_and_verify()

    def _write_and_verify(self) -> bool:
        if self.location.exists(LEASE_NAME):
            return False
        self.location.write_bytes_atomic(LEASE_NAME, self.record.to_json())
        time.sleep(self.settle_s)
        current = self.read()
        return current is not None and current.owner == self.record.owner


def _with_heartbeat(record: LeaseRecord, now: float) -> LeaseRecord:
    body = asdict(record)
    body["heartbeat"] = now
    return LeaseRecord(**body)


def _busy_message(record: LeaseRecord) -> str:
    return (f"in use by {record.describe(time.time())}; wait for it to finish, or pass "
            f"--break-lease if that job is dead")


def _link_exclusive(target: str, data: bytes) -> bool:
    """Atomically create ``target`` holding ``data`` unless it exists (hard link)."""
    with durable_temp(os.path.dirname(target), data, ".lease-") as tmp:
        try:
            os.link(tmp, target)
        except FileExistsError:
            return False
    return True
