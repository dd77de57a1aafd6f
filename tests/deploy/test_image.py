"""The container image builds and runs the offline demo, when this machine can build one.

It needs a container engine (podman, or docker with a daemon) and the base image ``python:3.11-slim``
already present: the test never pulls (no registry may be reachable). Without them it skips and says
which is missing. The build runs on the host network with the host's pip configuration mounted, so
it installs from the same package index the project's own install uses.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

pytestmark = [pytest.mark.timeout(1200), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
BASE = "docker.io/library/python:3.11-slim"


def _engine() -> str:
    podman = shutil.which("podman")
    if podman is None:
        pytest.skip("no podman here (the image test needs a container engine)")
    found = subprocess.run([podman, "image", "exists", BASE], capture_output=True, timeout=60, check=False)
    if found.returncode != 0:
        pytest.skip(f"the base image {BASE} is not present and is never pulled by the tests")
    return podman


def _host_pip_mounts() -> list[str]:
    mounts = []
    for path in ("/etc/pip.conf", "/etc/xdg/pip", "/opt/wheels", "/etc/ssl/certs"):
        if Path(path).exists():
            mounts += ["-v", f"{path}:{path}:ro"]
    return mounts


def test_the_image_builds_runs_as_non_root_and_runs_the_demo() -> None:
    podman = _engine()
    tag = f"localhost/beamish-test:{uuid.uuid4().hex[:8]}"
    build = subprocess.run(
        [
            podman,
            "build",
            "--network=host",
            *_host_pip_mounts(),
            "-f",
            "deploy/docker/Dockerfile",
            "-t",
            tag,
            ".",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1000,
        check=False,
    )
    try:
        assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
        who = subprocess.run(
            [podman, "run", "--rm", "--entrypoint", "id", tag, "-u"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert who.stdout.strip() == "10001", who.stderr
        demo = subprocess.run(
            [podman, "run", "--rm", "--network=none", tag, "demo", "--duration", "8", "--json"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-3000:]
        summary = json.loads(demo.stdout.strip().splitlines()[-1])
        assert summary["runs_completed"] > 0
        assert (summary["lost_steps"], summary["duplicate_effects"]) == (0, 0)
    finally:
        subprocess.run([podman, "rmi", "-f", tag], capture_output=True, timeout=120, check=False)
