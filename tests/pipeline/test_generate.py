"""``dmd3c generate`` in-process on one shared embedded Ray: end to end, skips, resume, faults."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from data_schemas import SampleStore, validate
from pipeline.generate import FaultInjection, GenerateSummary, RunConfig
from pipeline.orchestrate import run_generate
from tests.pipeline.generate_fixtures import add_bad_files, make_corpus, store_arrays, tiny_config


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    """One embedded Ray for the whole module (start-up is the slow part)."""
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False,
                 logging_level="ERROR")
    yield
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """8 good images and 5 bad ones: 13 items, shards of 3 -> 5 shards, shard 0 all bad."""
    root = tmp_path_factory.mktemp("corpus")
    make_corpus(root, 8)
    return root, add_bad_files(root)


@pytest.fixture(scope="module")
def reference(ray_local, corpus, tmp_path_factory) -> tuple[Path, GenerateSummary]:
    """An uninterrupted run: the store every other run must equal bit for bit."""
    store = tmp_path_factory.mktemp("ref") / "store.zarr"
    return store, run_generate(tiny_config(store, corpus[0]))


def test_end_to_end_store_validates_and_inspects(reference, corpus) -> None:
    store, summary = reference
    assert summary.shards_total == 5 and summary.shards_written == 5
    assert summary.samples_written == 8 and len(summary.skipped) == 5
    report = validate(store)
    assert report.num_samples == 8 and report.committed == [0, 1, 2, 3, 4]
    opened = SampleStore.open(store)
    assert opened.records[0].count == 0 and len(opened.records[0].skipped) == 3  # empty shard
    reasons = {s.key: s.reason for r in opened.records.values() for s in r.skipped}
    for key, prefix in corpus[1].items():
        assert reasons[key].startswith(prefix), reasons[key]
    assert opened.attrs["teacher"]["test_teacher"] is True
    assert opened.attrs["generator"]["corpus"]["num_items"] == 13
    sample = opened.read_sample(0)
    assert np.count_nonzero(sample["sparse_depth"]) > 0
    assert np.count_nonzero(sample["teacher_depth"]) > sample["teacher_depth"].size // 2
    from dmd3c.cli import app

    result = CliRunner().invoke(app, ["inspect", str(store), "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["num_samples"] == 8 and body["num_skipped"] == 5


def test_resume_redoes_only_uncommitted_shards_bit_identically(reference, corpus,
                                                               tmp_path) -> None:
    store = tmp_path / "store.zarr"
    shutil.copytree(reference[0], store)
    for shard in (2, 4):  # as if the job died while writing them
        (store / "commits" / f"shard-{shard:06d}.json").unlink()
    (store / "rgb" / "c" / "2" / "0" / "0" / "0").write_bytes(b"half a shard")
    summary = run_generate(tiny_config(store, corpus[0]))
    assert (summary.shards_resumed, summary.shards_written) == (3, 2)
    assert store_arrays(store) == store_arrays(reference[0])


def test_changed_config_is_refused_unless_overwrite(reference, corpus, tmp_path) -> None:
    store = tmp_path / "store.zarr"
    shutil.copytree(reference[0], store)
    with pytest.raises(ValueError, match=r"generator\.seed.*--overwrite"):
        run_generate(tiny_config(store, corpus[0], seed=8))
    summary = run_generate(tiny_config(store, corpus[0], seed=8,
                                       run=RunConfig(overwrite=True, progress=False)))
    assert summary.shards_written == 5
    assert SampleStore.open(store).attrs["generator"]["seed"] == 8


def test_worker_killed_mid_run_still_commits_every_shard_once(reference, corpus,
                                                              tmp_path) -> None:
    marker = tmp_path / "killed-once"
    run = RunConfig(progress=False, fault=FaultInjection(kill_shard=2, marker=str(marker)))
    store = tmp_path / "store.zarr"
    summary = run_generate(tiny_config(store, corpus[0], run=run))
    assert marker.is_file(), "the fault was not injected"
    assert summary.shards_written == 5 and summary.samples_written == 8
    keys = SampleStore.open(store).keys()
    assert len(keys) == len(set(keys)) == 8
    assert store_arrays(store) == store_arrays(reference[0])


def test_unreachable_ray_address_fails_within_seconds(corpus, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    start = time.perf_counter()
    with pytest.raises(ValueError, match="cannot reach the Ray cluster at 127.0.0.1:1"):
        run_generate(tiny_config(tmp_path / "s.zarr", corpus[0]))
    assert time.perf_counter() - start < 15


def test_empty_corpus_is_a_user_error(ray_local, tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no file matching"):
        run_generate(replace(tiny_config(tmp_path / "s.zarr", tmp_path / "empty")))


def cli_args(store: Path, corpus: Path) -> list[str]:
    """The CLI equivalent of ``cli_config``."""
    return ["generate", "--corpus", str(corpus), "--store", str(store), "--teacher",
            "tiny-random", "--height", "48", "--width", "96", "--shard-size", "2", "--sensor",
            "vlp16", "--teacher-input-size", "42", "--seed", "7", "--no-progress"]


def cli_config(store: Path, corpus: Path) -> object:
    from pipeline.corpus import CanvasConfig

    return tiny_config(store, corpus, canvas=CanvasConfig(48, 96), shard_size=2)


def test_driver_sigkill_then_rerun_equals_uninterrupted_run(ray_local, tmp_path) -> None:
    import os
    import signal
    import subprocess
    import sys

    corpus = tmp_path / "corpus"
    make_corpus(corpus, 10)
    reference = tmp_path / "reference.zarr"
    run_generate(cli_config(reference, corpus))
    store = tmp_path / "store.zarr"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    command = [sys.executable, "-m", "dmd3c", *cli_args(store, corpus), "--workers", "1"]
    driver = subprocess.Popen([*command, "--fault-shard-delay", "1.5"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    while not list((store / "commits").glob("shard-*.json")) and time.monotonic() < deadline:
        assert driver.poll() is None, "the driver ended before it could be killed"
        time.sleep(0.2)
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=30)
    committed = len(list((store / "commits").glob("shard-*.json")))
    assert 1 <= committed < 5, f"kill landed too late: {committed} shards committed"
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "already committed" in rerun.stdout
    time.sleep(2)  # any orphan worker of the killed driver would have written by now
    assert store_arrays(store) == store_arrays(reference)
    validate(store)
