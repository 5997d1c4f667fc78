"""``dmd3c generate`` in-process on one shared embedded Ray: end to end, skips, resume, faults,
the store lease, and the command line's output (JSON only on stdout, no Ray left behind)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import psutil
import pytest
from typer.testing import CliRunner

from data_schemas import SampleStore, validate
from data_schemas.errors import StoreBusyError
from data_schemas.lease import LEASE_NAME, LeaseRecord
from pipeline.corpus import key_to_name
from pipeline.generate import GenerateSummary
from pipeline.generate_config import FaultInjection, RunConfig
from pipeline.job import run_generate
from pipeline.orchestrate import RaySession
from tests.pipeline.generate_fixtures import (
    add_bad_files,
    make_corpus,
    png_bytes,
    scene_image,
    store_arrays,
    tiny_config,
)

NON_UTF8_NAME = b"caf\xe9-\xff.png"
"""A file name that is not valid UTF-8 (Latin-1 e-acute, a lone 0xff)."""
NON_UTF8_KEY = "caf%E9-%FF.png"


@pytest.fixture(scope="module")
def ray_session() -> Iterator[RaySession]:
    """One embedded Ray for the whole module (start-up is the slow part)."""
    with RaySession.open(num_cpus=3) as session:
        yield session


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """8 good images, one with a non-UTF-8 name, and 5 bad ones: 14 items, shards of 3 ->
    5 shards, shard 0 all bad."""
    root = tmp_path_factory.mktemp("corpus")
    make_corpus(root, 8)
    with open(os.path.join(os.fsencode(root), NON_UTF8_NAME), "wb") as handle:
        handle.write(png_bytes(scene_image(42)))
    return root, add_bad_files(root)


@pytest.fixture(scope="module")
def reference(ray_session, corpus, tmp_path_factory) -> tuple[Path, GenerateSummary]:
    """An uninterrupted run: the store every other run must equal bit for bit."""
    store = tmp_path_factory.mktemp("ref") / "store.zarr"
    return store, run_generate(tiny_config(store, corpus[0]), ray_session)


def test_end_to_end_store_validates_and_inspects(reference, corpus) -> None:
    store, summary = reference
    assert summary.shards_total == 5 and summary.shards_written == 5
    assert summary.samples_written == summary.samples_in_store == 9
    assert len(summary.skipped) == 5 and summary.tasks_retried == 0
    assert not (store / LEASE_NAME).exists()  # released
    report = validate(store)
    assert report.num_samples == 9 and report.committed == [0, 1, 2, 3, 4]
    opened = SampleStore.open(store)
    assert opened.records[0].count == 0 and len(opened.records[0].skipped) == 3  # empty shard
    reasons = {s.key: s.reason for r in opened.records.values() for s in r.skipped}
    for key, prefix in corpus[1].items():
        assert reasons[key].startswith(prefix), reasons[key]
    assert opened.attrs["teacher"]["test_teacher"] is True
    assert opened.attrs["generator"]["corpus"]["num_items"] == 14
    sample = opened.read_sample(0)
    assert np.count_nonzero(sample["sparse_depth"]) > 0
    assert np.count_nonzero(sample["teacher_depth"]) > sample["teacher_depth"].size // 2
    from dmd3c.cli import app

    result = CliRunner().invoke(app, ["inspect", str(store), "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["num_samples"] == 9 and body["num_skipped"] == 5


def test_non_utf8_file_name_is_generated_under_a_reversible_key(reference, corpus) -> None:
    opened = SampleStore.open(reference[0])
    index = opened.keys().index(NON_UTF8_KEY)
    sample = opened.read_sample(index)
    assert str(sample["key"]) == NON_UTF8_KEY
    source = key_to_name(str(sample["source"]))
    assert os.fsencode(source) == os.path.join(os.fsencode(corpus[0]), NON_UTF8_NAME)
    assert Path(source).read_bytes() == png_bytes(scene_image(42))


def test_resume_redoes_only_uncommitted_shards_bit_identically(reference, corpus, ray_session,
                                                               tmp_path) -> None:
    store = tmp_path / "store.zarr"
    shutil.copytree(reference[0], store)
    for shard in (2, 4):  # as if the job died while writing them
        (store / "commits" / f"shard-{shard:06d}.json").unlink()
    (store / "rgb" / "c" / "2" / "0" / "0" / "0").write_bytes(b"half a shard")
    summary = run_generate(tiny_config(store, corpus[0]), ray_session)
    assert (summary.shards_resumed, summary.shards_written) == (3, 2)
    assert store_arrays(store) == store_arrays(reference[0])
    # skips come from the commit records: the resumed shards' ones count too
    assert len(summary.skipped) == 5
    assert summary.skip_reasons() == reference[1].skip_reasons()


def test_complete_store_returns_without_starting_ray(reference, corpus, tmp_path,
                                                     monkeypatch) -> None:
    store = tmp_path / "store.zarr"
    shutil.copytree(reference[0], store)

    def no_ray(*args: object) -> None:
        raise AssertionError("Ray was started for a complete store")

    monkeypatch.setattr(RaySession, "_connect", classmethod(no_ray))
    grown = SampleStore.open(store, mode="r+")  # as if killed between the last commit and
    grown.reopen_for_writes()                   # the trim: arrays at full capacity
    assert grown.num_rows == grown.layout.capacity > grown.finished_rows
    summary = run_generate(tiny_config(store, corpus[0]))
    assert summary.up_to_date and summary.shards_resumed == 5 and summary.shards_written == 0
    trimmed = SampleStore.open(store)
    assert trimmed.num_rows == trimmed.finished_rows  # the no-op re-run finished the store
    assert summary.samples_in_store == 9 and len(summary.skipped) == 5
    assert summary.skip_reasons() == reference[1].skip_reasons()
    with pytest.raises(ValueError, match=r"generator\.seed.*--overwrite"):  # still checked
        run_generate(tiny_config(store, corpus[0], seed=8))


NO_OP_RUN = """
import json, sys
from dmd3c.cli import app

app(sys.argv[2:], standalone_mode=False)
with open(sys.argv[1], "w") as out:
    json.dump(sorted(sys.modules), out)
"""


def test_no_op_rerun_through_the_cli_imports_neither_ray_nor_the_teacher(reference, corpus,
                                                                          tmp_path) -> None:
    """A finished store is recognised with light modules only: the re-run is quick."""
    store = tmp_path / "store.zarr"
    shutil.copytree(reference[0], store)
    modules = tmp_path / "modules.json"
    args = ["generate", "--corpus", str(corpus[0]), "--store", str(store), "--teacher",
            "tiny-random", "--height", "48", "--width", "96", "--min-side", "16",
            "--max-pixels", "4000000", "--shard-size", "3", "--sensor", "vlp16",
            "--teacher-input-size", "42", "--seed", "7", "--no-progress", "--json"]
    done = subprocess.run([sys.executable, "-c", NO_OP_RUN, str(modules), *args], env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)
    assert summary["up_to_date"] is True and summary["shards_resumed"] == 5
    loaded = {m.split(".")[0] for m in json.loads(modules.read_text())}
    assert "zarr" in loaded  # the store was read...
    assert not loaded & {"ray", "torch", "transformers", "cv2", "dask", "scipy", "open3d"}


def test_changed_config_is_refused_unless_overwrite(reference, corpus, ray_session,
                                                    tmp_path) -> None:
    store = tmp_path / "store.zarr"
    shutil.copytree(reference[0], store)
    with pytest.raises(ValueError, match=r"generator\.seed.*--overwrite"):
        run_generate(tiny_config(store, corpus[0], seed=8), ray_session)
    summary = run_generate(tiny_config(store, corpus[0], seed=8,
                                       run=RunConfig(overwrite=True, progress=False)),
                           ray_session)
    assert summary.shards_written == 5
    assert SampleStore.open(store).attrs["generator"]["seed"] == 8
    assert not (store / LEASE_NAME).exists()


def test_a_store_leased_by_a_live_job_is_refused_before_any_work(corpus, tmp_path) -> None:
    store = tmp_path / "store.zarr"
    store.mkdir()
    now = time.time()
    holder = LeaseRecord("bob@far-host:77:x", "dmd3c generate", "bob", "far-host", 77, None,
                         now - 100, now - 2)
    (store / LEASE_NAME).write_bytes(holder.to_json())
    with pytest.raises(StoreBusyError, match="in use by dmd3c generate of bob@far-host pid 77"):
        run_generate(tiny_config(store, corpus[0]))
    assert sorted(p.name for p in store.iterdir()) == [LEASE_NAME]  # nothing written


def test_worker_killed_mid_run_still_commits_every_shard_once(reference, corpus, ray_session,
                                                              tmp_path) -> None:
    marker = tmp_path / "killed-once"
    run = RunConfig(progress=False, fault=FaultInjection(kill_shard=2, marker=str(marker)))
    store = tmp_path / "store.zarr"
    summary = run_generate(tiny_config(store, corpus[0], run=run), ray_session)
    assert marker.is_file(), "the fault was not injected"
    assert summary.shards_written == 5 and summary.samples_written == 9
    assert summary.tasks_retried == 1
    keys = SampleStore.open(store).keys()
    assert len(keys) == len(set(keys)) == 9
    assert store_arrays(store) == store_arrays(reference[0])


def test_unreachable_ray_address_fails_within_seconds(corpus, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    start = time.perf_counter()
    with pytest.raises(ValueError, match="cannot reach the Ray cluster at 127.0.0.1:1"):
        run_generate(tiny_config(tmp_path / "s.zarr", corpus[0]))
    assert time.perf_counter() - start < 15


def test_empty_corpus_is_a_user_error_and_writes_nothing(tmp_path) -> None:
    from data_schemas.errors import InputError

    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no file matching"):
        run_generate(replace(tiny_config(tmp_path / "s.zarr", tmp_path / "empty")))
    assert not (tmp_path / "s.zarr").exists()


def cli_args(store: Path, corpus: Path) -> list[str]:
    """The CLI equivalent of ``cli_config``."""
    return ["generate", "--corpus", str(corpus), "--store", str(store), "--teacher",
            "tiny-random", "--height", "48", "--width", "96", "--shard-size", "2", "--sensor",
            "vlp16", "--teacher-input-size", "42", "--seed", "7", "--no-progress"]


def cli_config(store: Path, corpus: Path) -> object:
    from pipeline.corpus import CanvasConfig

    return tiny_config(store, corpus, canvas=CanvasConfig(48, 96), shard_size=2)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}


def _wait_for_a_commit(store: Path, driver: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while not list((store / "commits").glob("shard-*.json")) and time.monotonic() < deadline:
        assert driver.poll() is None, "the driver ended before it could be killed"
        time.sleep(0.2)


def test_driver_sigkill_leaves_no_ray_behind_and_rerun_equals_uninterrupted_run(
        ray_session, tmp_path) -> None:
    corpus = tmp_path / "corpus"
    make_corpus(corpus, 10)
    reference = tmp_path / "reference.zarr"
    run_generate(cli_config(reference, corpus), ray_session)
    store = tmp_path / "store.zarr"
    command = [sys.executable, "-m", "dmd3c", *cli_args(store, corpus), "--workers", "1"]
    driver = subprocess.Popen([*command, "--fault-shard-delay", "1.5"], env=_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_a_commit(store, driver)
    # one job per store: a second one is refused with one line naming the first
    second = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=120)
    assert second.returncode == 2, second.stderr[-2000:]
    assert second.stderr.count("\n") == 1 and second.stderr.startswith("dmd3c: error: ")
    assert "in use by dmd3c generate of " in second.stderr
    assert f" pid {driver.pid} " in second.stderr and "--break-lease" in second.stderr
    ray_processes = psutil.Process(driver.pid).children(recursive=True)
    assert any(p.name() == "raylet" for p in ray_processes)
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=30)
    committed = len(list((store / "commits").glob("shard-*.json")))
    assert 1 <= committed < 5, f"kill landed too late: {committed} shards committed"
    # the embedded Ray ends with its driver (Ray's own agents would linger ~60 s)
    _, alive = psutil.wait_procs(ray_processes, timeout=20)
    assert not alive, [p.name() for p in alive]
    # the dead driver's lease is taken over at once on this host
    rerun = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=180)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "already committed" in rerun.stdout and "taking over the lease" in rerun.stderr
    time.sleep(2)  # any orphan worker of the killed driver would have written by now
    assert store_arrays(store) == store_arrays(reference)
    validate(store)


def test_json_stdout_is_only_json_after_a_worker_death_and_counts_the_retry(
        corpus, tmp_path) -> None:
    store = tmp_path / "store.zarr"
    marker = tmp_path / "killed-once"
    command = [sys.executable, "-m", "dmd3c", *cli_args(store, corpus[0]), "--json",
               "--workers", "2"]
    done = subprocess.run([*command, "--fault-kill-shard", "1", "--fault-marker", str(marker)],
                          env=_env(), capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert marker.is_file(), "the fault was not injected"
    assert "(raylet)" in done.stderr  # Ray's worker-death lines went to stderr...
    body = json.loads(done.stdout)  # ...and stdout is the JSON alone
    # the command line's canvas keeps the default 100 MP limit: the 6 MP "bomb" is a sample
    assert body["tasks_retried"] == 1 and body["samples_written"] == 10
    assert body["skip_reasons"]["too small"] == 1 and len(body["skipped"]) == 4
    # a no-op re-run: recognised before Ray starts, skips from the commit records
    again = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    rerun = json.loads(again.stdout)
    assert rerun["up_to_date"] is True and rerun["samples_written"] == 0
    assert rerun["samples_in_store"] == 10 and rerun["skip_reasons"] == body["skip_reasons"]
