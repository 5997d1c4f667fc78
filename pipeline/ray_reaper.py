"""End an embedded Ray's processes when the driver that started it dies, even by SIGKILL.

Ray 2.60 ends its GCS and raylet within about a second of the driver's death, but the
raylet's agents (``ray::DashboardAgent``, ``ray::RuntimeEnvAgent``) then wait 60 s trying to
report that death to the GCS that is already gone (measured here: they outlive a killed
driver by 60-90 s). The driver starts this watcher right after ``ray.init`` with a pipe on
its stdin; the kernel closes the pipe when the driver exits, however it exits. Until then
the watcher records the process trees of the driver's Ray children every ``interval_s``;
afterwards it sends SIGTERM, then SIGKILL after ``grace_s``, to those still running (a
process counts as the same only with the same pid *and* start time), and exits.

Run as ``python -m pipeline.ray_reaper DRIVER_PID``; :func:`start_reaper` does that.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys

import psutil

INTERVAL_S = 0.5
GRACE_S = 2.0


def is_ray_process(process: psutil.Process) -> bool:
    """A process started by Ray: its binaries and scripts live in the ``ray`` package."""
    try:
        command = " ".join(process.cmdline())
    except psutil.Error:
        return False
    return f"{os.sep}ray{os.sep}" in command or command.startswith("ray::")


def ray_descendants(driver: psutil.Process, exclude: int) -> list[psutil.Process]:
    """The driver's Ray child processes and everything below them."""
    found = []
    for child in driver.children():
        if child.pid == exclude or not is_ray_process(child):
            continue
        found.append(child)
        try:
            found.extend(child.children(recursive=True))
        except psutil.Error:
            continue
    return found


def pipe_closed(fd: int, timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` for end-of-file on ``fd`` (any data is discarded)."""
    readable, _, _ = select.select([fd], [], [], timeout_s)
    return bool(readable) and os.read(fd, 4096) == b""


def watch(driver_pid: int, fd: int, interval_s: float = INTERVAL_S,
          grace_s: float = GRACE_S) -> list[int]:
    """Record the driver's Ray processes until ``fd`` closes; end the survivors.

    Returns the pids that were still running when the driver was gone.
    """
    known: dict[tuple[int, float], psutil.Process] = {}
    try:
        driver = psutil.Process(driver_pid)
    except psutil.NoSuchProcess:
        return []
    while not pipe_closed(fd, interval_s):
        try:
            for process in ray_descendants(driver, exclude=os.getpid()):
                known.setdefault((process.pid, process.create_time()), process)
        except psutil.Error:
            continue
    return end_processes(list(known.values()), grace_s)


def end_processes(processes: list[psutil.Process], grace_s: float) -> list[int]:
    """SIGTERM the running ones, SIGKILL those alive ``grace_s`` later; their pids."""
    alive = [p for p in processes if p.is_running()]
    for process in alive:
        try:
            process.terminate()
        except psutil.Error:
            continue
    _, stubborn = psutil.wait_procs(alive, timeout=grace_s)
    for process in stubborn:
        try:
            process.kill()
        except psutil.Error:
            continue
    return [p.pid for p in alive]


def start_reaper(driver_pid: int | None = None) -> subprocess.Popen[bytes]:
    """Start the watcher of this driver (or ``driver_pid``); close its stdin to stop it."""
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.ray_reaper", str(driver_pid or os.getpid())],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, close_fds=True)


def main() -> None:
    watch(int(sys.argv[1]), sys.stdin.fileno())


if __name__ == "__main__":
    main()
