"""One job per store: the lease in ``<store>/lease.json`` (local paths and fsspec URLs)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import fsspec
import pytest

from data_schemas.errors import StoreBusyError
from data_schemas.lease import LEASE_NAME, LeaseRecord, StoreLease
from data_schemas.location import StoreLocation


@pytest.fixture(params=["local", "memory"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store location that does not exist yet: a local folder or a memory:// URL."""
    if request.param == "local":
        yield str(tmp_path / "store.zarr")
        return
    url = f"memory://lease-test-{uuid.uuid4().hex}/store.zarr"
    yield url
    fs = fsspec.filesystem("memory")
    if fs.exists(url):
        fs.rm(url, recursive=True)


def foreign_record(heartbeat_age_s: float, host: str = "other-host", pid: int = 4242,
                   job: str = "dmd3c generate") -> LeaseRecord:
    now = time.time()
    return LeaseRecord(f"alice@{host}:{pid}:abc", job, "alice", host, pid, None,
                       now - heartbeat_age_s - 60, now - heartbeat_age_s)


def plant(url: str, record: LeaseRecord) -> None:
    StoreLocation.parse(url).write_bytes_atomic(LEASE_NAME, record.to_json())


def test_second_holder_is_refused_with_one_line_naming_the_owner(store_url: str) -> None:
    with StoreLease(store_url, job="dmd3c generate") as first:
        with pytest.raises(StoreBusyError) as refused:
            StoreLease(store_url, job="dmd3c generate").acquire()
        message = str(refused.value)
        assert "\n" not in message
        assert f"pid {os.getpid()}" in message and first.record.host in message
        assert "dmd3c generate" in message and "--break-lease" in message
        assert message.startswith(f"{store_url}: in use by")
    assert not StoreLocation.parse(store_url).exists(LEASE_NAME)  # released at the end


def test_lease_records_owner_host_pid_start_and_heartbeat(store_url: str) -> None:
    with StoreLease(store_url, job="dmd3c teach") as lease:
        body = json.loads(StoreLocation.parse(store_url).read_bytes(LEASE_NAME))
    assert body["owner"] == lease.record.owner and body["job"] == "dmd3c teach"
    assert body["pid"] == os.getpid() and body["host"] == lease.record.host
    assert body["started"] <= body["heartbeat"] <= time.time()


def test_heartbeat_advances_while_held(store_url: str) -> None:
    with StoreLease(store_url, heartbeat_s=0.05, stale_after_s=10.0) as lease:
        first = lease.read()
        time.sleep(0.4)
        later = lease.read()
    assert first is not None and later is not None
    assert later.heartbeat > first.heartbeat and later.started == first.started


def test_stale_lease_is_taken_over_with_a_warning(store_url: str,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    plant(store_url, foreign_record(heartbeat_age_s=400.0))
    with caplog.at_level(logging.WARNING, logger="data_schemas.lease"):
        with StoreLease(store_url, stale_after_s=300.0) as lease:
            current = lease.read()
            assert current is not None and current.owner == lease.record.owner
    assert "taking over the lease of dmd3c generate of alice@other-host pid 4242" in caplog.text
    assert "no heartbeat for 6.7 min" in caplog.text


def test_fresh_lease_of_another_host_is_respected_unless_broken(
        store_url: str, caplog: pytest.LogCaptureFixture) -> None:
    plant(store_url, foreign_record(heartbeat_age_s=5.0))
    with pytest.raises(StoreBusyError, match="alice@other-host pid 4242"):
        StoreLease(store_url).acquire()
    with caplog.at_level(logging.WARNING, logger="data_schemas.lease"):
        with StoreLease(store_url, break_lease=True) as lease:
            assert lease.read().owner == lease.record.owner  # type: ignore[union-attr]
    assert "--break-lease" in caplog.text


def test_lease_of_a_dead_process_on_this_host_is_taken_over_at_once(tmp_path: Path) -> None:
    store = tmp_path / "store.zarr"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    mine = StoreLease(store)
    plant(str(store), replace(foreign_record(heartbeat_age_s=1.0, host=mine.record.host,
                                             pid=gone.pid)))
    with mine:
        assert mine.read().owner == mine.record.owner  # type: ignore[union-attr]


def test_lease_held_by_another_live_process_refuses_this_one(tmp_path: Path) -> None:
    store = tmp_path / "store.zarr"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom data_schemas.lease import StoreLease\n"
         f"with StoreLease({str(store)!r}, job='holder job'):\n"
         "    print('held', flush=True)\n    sys.stdin.read()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        cwd=Path(__file__).resolve().parents[2])
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreBusyError, match=rf"holder job of .* pid {holder.pid} "):
            StoreLease(store).acquire()
    finally:
        holder.communicate("", timeout=30)
    assert holder.returncode == 0
    with StoreLease(store):  # released by the holder: free again
        pass


def test_a_lease_taken_over_under_a_holder_is_noticed_at_the_next_heartbeat(
        store_url: str) -> None:
    with StoreLease(store_url, heartbeat_s=0.05, stale_after_s=10.0) as lease:
        plant(store_url, foreign_record(heartbeat_age_s=0.0))
        deadline = time.monotonic() + 5
        while lease.lost is None and time.monotonic() < deadline:
            time.sleep(0.02)
        with pytest.raises(StoreBusyError, match="lost the lease: in use by dmd3c generate"):
            lease.check()
    assert StoreLease(store_url).read().owner.startswith("alice@")  # type: ignore[union-attr]


def test_renew_restores_a_lease_deleted_by_a_store_rewrite(store_url: str) -> None:
    with StoreLease(store_url) as lease:
        StoreLocation.parse(store_url).delete(LEASE_NAME)  # e.g. zarr open_group(mode="w")
        lease.renew()
        assert lease.read().owner == lease.record.owner  # type: ignore[union-attr]
        with pytest.raises(StoreBusyError):
            StoreLease(store_url).acquire()


def test_release_leaves_no_empty_folder_behind(tmp_path: Path) -> None:
    store = tmp_path / "never-written.zarr"
    with StoreLease(store):
        assert (store / LEASE_NAME).is_file()
    assert not store.exists()
    (tmp_path / "kept.zarr").mkdir()
    (tmp_path / "kept.zarr" / "zarr.json").write_text("{}")
    with StoreLease(tmp_path / "kept.zarr"):
        pass
    assert sorted(p.name for p in (tmp_path / "kept.zarr").iterdir()) == ["zarr.json"]


def test_unreadable_lease_is_a_store_error_naming_the_file(tmp_path: Path) -> None:
    from data_schemas.errors import StoreError

    (tmp_path / "s.zarr").mkdir()
    (tmp_path / "s.zarr" / LEASE_NAME).write_text("{not json")
    with pytest.raises(StoreError, match=r"s\.zarr/lease\.json: unreadable lease"):
        StoreLease(tmp_path / "s.zarr").acquire()
