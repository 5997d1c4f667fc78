"""``.ci/system-libs`` (run by ``make setup`` and ``.ci/run``): finds missing system libraries
through the dynamic loader's cache and, when it may not install them, stops with the exact
command. The loader cache is a stand-in ``ldconfig`` here; installing is never exercised."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / ".ci" / "system-libs"
ALL = {"libusb-1.0.so.0": "libusb-1.0-0", "libGL.so.1": "libgl1", "libEGL.so.1": "libegl1",
       "libX11.so.6": "libx11-6", "libudev.so.1": "libudev1"}

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the check reads the Linux loader cache")


def run_with_cache(tmp_path: Path, present: list[str]) -> subprocess.CompletedProcess[str]:
    """Run the script with an ``ldconfig -p`` that lists only ``present`` (and libc)."""
    lines = [f"\t{name} (libc6,x86-64) => /lib/x86_64-linux-gnu/{name}"
             for name in ["libc.so.6", *present]]
    fake = tmp_path / "bin" / "ldconfig"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\ncat <<'END'\n" + f"{len(lines)} libs found in cache\n"
                    + "\n".join(lines) + "\nEND\n")
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}",
           "SYSTEM_LIBS_INSTALL": "no"}
    return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True,
                          timeout=60)


def test_nothing_missing_is_silent_success(tmp_path: Path) -> None:
    done = run_with_cache(tmp_path, list(ALL))
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_missing_libraries_stop_with_the_exact_command(tmp_path: Path) -> None:
    done = run_with_cache(tmp_path, ["libGL.so.1", "libudev.so.1"])
    assert done.returncode == 1
    assert "not installed: libusb-1.0.so.0 libEGL.so.1 libX11.so.6" in done.stderr
    if shutil.which("apt-get"):
        assert ("sudo apt-get update && sudo apt-get install -y --no-install-recommends "
                "libusb-1.0-0 libegl1 libx11-6\n") in done.stderr
    else:
        assert "Debian/Ubuntu: libusb-1.0-0 libegl1 libx11-6" in done.stderr


def test_the_readme_names_every_library_and_package() -> None:
    readme = (REPO / "README.md").read_text()
    for soname, package in ALL.items():
        assert f"`{soname}`" in readme and package in readme
