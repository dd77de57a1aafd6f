"""The recipes in deploy/ are checked as far as this machine allows, offline.

- the systemd unit with ``systemd-analyze verify`` (every key known, the command executable) and
  ``systemd-analyze security --offline`` (its exposure score), plus the directives the docs promise;
- the Kubernetes manifests validated, strictly, against the Kubernetes API's schemas bundled with
  ``kubernetes-validate`` (offline: no schema is fetched, no cluster asked), and checked field by
  field for what the guide promises (probes, the Secret, the options);
- the compose file parsed and checked (services, the image, the commands name real options);
- every ``beamish.toml`` they carry loaded by the config loader;
- the Dockerfile read for the properties the docs promise (multi-stage, slim, non-root).

Building the image and running the demo in it needs a container engine: see test_image.py.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from beamish.cli import app
from beamish.company import load_config_data
from beamish.company._scaffold import scaffold

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "systemd" / "beamish.service"


def _unit() -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return sections


def test_the_unit_has_what_the_deployment_guide_promises() -> None:
    service = _unit()["Service"]
    assert service["Type"] == ["notify"]
    assert service["WatchdogSec"] and int(service["WatchdogSec"][0]) > 0
    assert service["Restart"] == ["always"]
    assert service["NoNewPrivileges"] == ["yes"]
    assert service["ProtectSystem"] == ["strict"]
    assert service["StateDirectory"] == ["beamish"]
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert service["KillMode"] == ["mixed"]  # SIGTERM to the node, which stops its agents in order
    assert "--health" in service["ExecStart"][0]
    assert _unit()["Install"]["WantedBy"] == ["multi-user.target"]


def _verify(unit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=30, check=False
    )


def _local_unit(tmp_path: Path, text: str | None = None) -> Path:
    """The unit with ExecStart pointing at this environment's beamish (verify checks it is executable)."""
    beamish = shutil.which("beamish") or str(Path(__import__("sys").executable).parent / "beamish")
    body = (text or UNIT.read_text()).replace("/opt/beamish/bin/beamish", beamish)
    path = tmp_path / "beamish.service"
    path.write_text(body)
    return path


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verifies_the_unit_without_a_warning(tmp_path: Path) -> None:
    done = _verify(_local_unit(tmp_path))
    assert done.returncode == 0 and done.stderr.strip() == "" and done.stdout.strip() == "", done.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_would_catch_a_mistyped_key(tmp_path: Path) -> None:
    """The check above can fail: verify names an unknown key (on stderr, with exit code 0)."""
    bad = _local_unit(tmp_path, UNIT.read_text().replace("WatchdogSec=", "WatchdogSecs="))
    assert "Unknown key" in _verify(bad).stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_the_unit_is_hardened_by_systemd_analyze_security(tmp_path: Path) -> None:
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(_local_unit(tmp_path))],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if "--offline" in done.stderr and "unrecognized" in done.stderr:
        pytest.skip("this systemd-analyze has no --offline security check")
    score = re.search(r"Overall exposure level for \S+: ([\d.]+)", done.stdout + done.stderr)
    assert score, done.stdout[-2000:] + done.stderr[-2000:]
    assert float(score.group(1)) <= 4.0  # "OK" on systemd's scale (0 safest, 10 exposed)


def _manifests() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_every_kubernetes_object_has_the_fields_the_api_requires() -> None:
    docs = _manifests()
    assert {d["kind"] for d in docs} >= {"Deployment", "ConfigMap"}
    for doc in docs:
        assert doc["apiVersion"] in {"v1", "apps/v1"}, doc["apiVersion"]
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"])


def test_the_manifests_validate_strictly_against_the_kubernetes_schemas() -> None:
    import kubernetes_validate

    version = "1.30.0"  # the oldest minor the manifests claim to fit; the newest bundled too
    for doc in _manifests():
        for k8s in (version, kubernetes_validate.latest_version()):
            kubernetes_validate.validate(doc, k8s, strict=True)


def test_a_mistyped_manifest_field_would_be_caught() -> None:
    import kubernetes_validate

    (deployment,) = [d for d in _manifests() if d["kind"] == "Deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["periodSecs"] = 10
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, kubernetes_validate.latest_version(), strict=True)


def test_the_deployment_probes_healthz_and_readyz_and_reads_the_store_from_a_secret() -> None:
    (deployment,) = [d for d in _manifests() if d["kind"] == "Deployment"]
    spec = deployment["spec"]
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["name"] and container["image"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] in ports
    args = container["args"]
    assert args[0] == "run"
    assert str(ports["health"]) == args[args.index("--health") + 1]
    assert args[args.index("--health-host") + 1] == "0.0.0.0"  # the kubelet probes the pod's address
    env = {e["name"]: e for e in container["env"]}
    store = args[args.index("--store") + 1]
    name = re.fullmatch(r"\$\((\w+)\)", store)
    assert name, "the store URL comes from the environment"
    assert env[name.group(1)]["valueFrom"]["secretKeyRef"]["key"]
    for ref in re.findall(r"\$\((\w+)\)", " ".join(args)):
        assert ref in env, f"args name ${ref} that no env defines"
    mounts = {m["name"] for m in container["volumeMounts"]}
    assert mounts <= {v["name"] for v in pod["volumes"]}
    _options_exist(args)


def _options_exist(args: list[str]) -> None:
    root = typer.main.get_command(app)
    command: Any = root.commands[args[0]]  # type: ignore[attr-defined]
    known = {o for p in command.params for o in p.opts}
    for word in args[1:]:
        if word.startswith("--"):
            assert word in known, f"beamish {args[0]} has no option {word}"


def _company(text: str, tmp_path: Path) -> None:
    scaffold(tmp_path, template="minimal", model="scripted")  # my_tools.py and scripts/, as in the image
    load_config_data(tomllib.loads(text), tmp_path / "beamish.toml", shown="deploy")


def test_the_configs_in_deploy_load(tmp_path: Path) -> None:
    (config_map,) = [d for d in _manifests() if d["kind"] == "ConfigMap"]
    _company(config_map["data"]["beamish.toml"], tmp_path / "k8s")
    _company((DEPLOY / "docker" / "company.toml").read_text(), tmp_path / "compose")


def test_the_compose_file_runs_postgres_two_nodes_and_the_dashboard() -> None:
    compose = yaml.safe_load((DEPLOY / "docker" / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "node-1", "node-2", "dashboard"}
    assert services["postgres"]["image"].startswith("postgres:")
    node_ids = []
    for name in ("node-1", "node-2"):
        node = services[name]
        assert node["build"]["dockerfile"] == "deploy/docker/Dockerfile"
        assert (DEPLOY / "docker" / node["build"]["context"] / node["build"]["dockerfile"]).is_file()
        assert node["depends_on"]["postgres"]["condition"] == "service_healthy"
        command = node["command"]
        _options_exist(command)
        node_ids.append(command[command.index("--node-id") + 1])
        assert "/readyz" in " ".join(node["healthcheck"]["test"])
    assert len(set(node_ids)) == 2
    dashboard = services["dashboard"]["command"]
    assert dashboard[0] == "dashboard" and "--host" in dashboard
    _options_exist(dashboard)
    assert "BEAMISH_DASHBOARD_TOKEN" in services["dashboard"]["environment"]  # beyond loopback: a token
    assert all(p.startswith("127.0.0.1:") for p in services["dashboard"]["ports"])


def test_the_dockerfile_is_multi_stage_slim_and_non_root() -> None:
    text = (DEPLOY / "docker" / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", text, flags=re.M)
    assert len(stages) >= 2 and all("slim" in s for s in stages)
    assert re.search(r"^COPY --from=build ", text, flags=re.M)
    users = re.findall(r"^USER (\S+)", text, flags=re.M)
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert re.search(r'^ENTRYPOINT \["beamish"\]', text, flags=re.M)
