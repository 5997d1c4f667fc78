"""A real two-node Ray cluster on this machine (``ray start --head`` + a worker node)."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from data_schemas import SampleStore, validate
from tests.pipeline.generate_fixtures import make_corpus

RAY = Path(sys.executable).with_name("ray")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ray(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(RAY), *args], env=env, capture_output=True, text=True,
                          timeout=90)


@pytest.fixture
def two_node_cluster(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """Head (1 CPU) + worker node (2 CPUs) on 127.0.0.1; stopped afterwards."""
    if not RAY.is_file():
        pytest.skip(f"no ray executable next to {sys.executable}")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    # Ray 2.60 `ray start` clusters authenticate with a token; share one with every process.
    env.update(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token",
               RAY_AUTH_TOKEN=secrets.token_hex(32))
    address = f"127.0.0.1:{_free_port()}"
    head = _ray("start", "--head", f"--port={address.split(':')[1]}", "--num-cpus=1",
                "--node-ip-address=127.0.0.1", "--include-dashboard=false",
                "--disable-usage-stats", env=env)
    if head.returncode != 0:
        pytest.skip(f"ray start --head failed here: {head.stderr[-500:]}")
    try:
        worker = _ray("start", f"--address={address}", "--num-cpus=2",
                      "--node-ip-address=127.0.0.1", "--disable-usage-stats", env=env)
        assert worker.returncode == 0, worker.stderr[-1000:]
        yield address, env
    finally:
        _ray("stop", "--force", env=env)


@pytest.mark.slow
def test_generate_on_a_two_node_cluster_through_ray_address(two_node_cluster,
                                                            tmp_path: Path) -> None:
    address, env = two_node_cluster
    corpus = tmp_path / "corpus"
    make_corpus(corpus, 6)
    store = tmp_path / "store.zarr"
    env = {**env, "RAY_ADDRESS": address}
    command = [sys.executable, "-m", "dmd3c", "generate", "--corpus", str(corpus), "--store",
               str(store), "--teacher", "tiny-random", "--height", "48", "--width", "96",
               "--shard-size", "2", "--sensor", "vlp16", "--teacher-input-size", "42",
               "--no-progress", "--json"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stderr[-2000:]
    nodes = subprocess.run([sys.executable, "-c", "import ray; ray.init(); "
                            "print(len([n for n in ray.nodes() if n['Alive']]))"],
                           env=env, capture_output=True, text=True, timeout=60)
    assert nodes.stdout.strip().endswith("2"), nodes.stdout + nodes.stderr[-500:]
    assert validate(store).num_samples == 6
    assert SampleStore.open(store).committed_shards == [0, 1, 2]
