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


def _build(
    podman: str, tag: str, containerfile: str, context: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    # chroot isolation: RUN steps need no OCI runtime, cgroups or rlimits, which a container such as
    # this build machine may not grant (crun refuses here); the steps still run in the image's root
    # file system as its USER.
    return subprocess.run(
        [
            podman,
            "build",
            "--isolation=chroot",
            "--layers=false",
            *extra,
            "-f",
            containerfile,
            "-t",
            tag,
            str(context),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1000,
        check=False,
    )


def test_the_image_builds_runs_as_non_root_and_runs_the_demo(tmp_path: Path) -> None:
    podman = _engine()
    tag = f"localhost/beamish-test:{uuid.uuid4().hex[:8]}"
    build = _build(podman, tag, "deploy/docker/Dockerfile", ROOT, "--network=host", *_host_pip_mounts())
    try:
        assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
        # the demo inside the image, as its user (offline by design): one more build step over it
        (tmp_path / "Containerfile").write_text(
            f"FROM {tag}\n"
            'RUN echo "uid=$(id -u)" && beamish demo --duration 8 --json > /tmp/summary.json; '
            'echo "demo exit $?"; cat /tmp/summary.json\n'
        )
        demo = _build(podman, f"{tag}-demo", str(tmp_path / "Containerfile"), tmp_path)
        out = demo.stdout + demo.stderr
        assert demo.returncode == 0, out[-4000:]
        assert "uid=10001" in out
        assert "demo exit 0" in out, out[-4000:]
        line = next(line for line in reversed(out.splitlines()) if line.startswith("{"))
        summary = json.loads(line)
        assert summary["runs_completed"] > 0
        assert (summary["lost_steps"], summary["duplicate_effects"]) == (0, 0)
    finally:
        for image in (f"{tag}-demo", tag):
            subprocess.run([podman, "rmi", "-f", image], capture_output=True, timeout=120, check=False)
