"""Pod security of every pod the deployment declares, under Pulumi mocks.

The namespace enforces Pod Security Admission `restricted`, so every pod must
satisfy it: `restricted_violations` restates that profile's rules
(kubernetes.io/docs/concepts/security/pod-security-standards) and each pod of
dev, prod and local is held to them, plus what checkov asks beyond them.
"""

from __future__ import annotations

from typing import Any

import pytest

from components.kubernetes import k8s
from components.kubernetes.pgbouncer import pgbouncer_ini
from components.model import names
from tests.conftest import config_for
from tests.harness import ProgramRun, shared_run

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job", "CronJob")
# Volume types the restricted profile admits.
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                      "projected", "secret"}
STACKS = ("dev", "prod", "local")


@pytest.fixture(scope="module")
def all_runs(runs: dict[str, ProgramRun]) -> dict[str, ProgramRun]:
    local = shared_run("local")
    assert local.error is None, f"local: {local.error}"
    return {**runs, "local": local}


def label(m: dict[str, Any]) -> str:
    return f"{m['kind']}/{m['metadata'].get('name') or m['metadata']['labels']['app.kubernetes.io/component']}"


def workloads(run: ProgramRun) -> list[dict[str, Any]]:
    return [m for m in run.manifests() if m["kind"] in WORKLOAD_KINDS]


def pod_spec(m: dict[str, Any]) -> dict[str, Any]:
    """A workload's pod spec (a CronJob's is in its Job template)."""
    return (m["spec"]["jobTemplate"]["spec"] if m["kind"] == "CronJob" else m["spec"])["template"]["spec"]


def all_containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return pod.get("initContainers", []) + pod["containers"]


def skipped_checks(m: dict[str, Any]) -> dict[str, str]:
    """checkov checks the object skips, with their reasons."""
    skips = {}
    for key, value in m["metadata"].get("annotations", {}).items():
        if key.startswith(k8s.CHECKOV_SKIP_PREFIX):
            check, _, reason = value.partition("=")
            skips[check] = reason
    return skips


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """What keeps a pod spec out of the Pod Security Standards' `restricted` profile."""
    found = []
    pod_sc = pod.get("securityContext", {})
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field):
            found.append(field)
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            found.append(f"volume {volume['name']}: {sorted(kinds)}")
    if pod_sc.get("runAsUser") == 0:
        found.append("pod runAsUser 0")
    for c in all_containers(pod):
        sc = c.get("securityContext", {})
        name = c["name"]
        if sc.get("privileged"):
            found.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation not false")
        caps = sc.get("capabilities", {})
        if "ALL" not in caps.get("drop", []):
            found.append(f"{name}: capabilities not all dropped")
        if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            found.append(f"{name}: capabilities added")
        if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
            found.append(f"{name}: runAsNonRoot not true")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            found.append(f"{name}: runAsUser 0")
        seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"{name}: seccompProfile {seccomp}")
        if any("hostPort" in p for p in c.get("ports", [])):
            found.append(f"{name}: hostPort")
    return found


@pytest.mark.parametrize("stack", STACKS)
def test_the_namespace_enforces_restricted_pod_security(all_runs: dict[str, ProgramRun], stack: str) -> None:
    labels = all_runs[stack].manifest("Namespace", "airflow")["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels.get(f"pod-security.kubernetes.io/{mode}") == "restricted", f"Namespace: {mode} label"


@pytest.mark.parametrize("stack", STACKS)
def test_every_pod_satisfies_the_restricted_profile(all_runs: dict[str, ProgramRun], stack: str) -> None:
    found = workloads(all_runs[stack])
    assert {label(m) for m in found} >= {f"StatefulSet/{names.POSTGRES}", f"StatefulSet/{names.RABBITMQ}",
                                         f"StatefulSet/{names.WORKER}", f"Deployment/{names.API_SERVER}",
                                         *([f"CronJob/{names.DATABASE_BACKUP}"] if stack != "local" else [])}
    for m in found:
        assert restricted_violations(pod_spec(m)) == [], f"{stack} {label(m)}"


def test_the_restricted_check_finds_what_the_defaults_leave_out() -> None:
    """The rules above catch a pod left at Kubernetes' defaults, one finding per rule."""
    bare = {"containers": [{"name": "c"}], "volumes": [{"name": "h", "hostPath": {"path": "/"}}]}
    assert restricted_violations(bare) == [
        "volume h: ['hostPath']", "c: allowPrivilegeEscalation not false", "c: capabilities not all dropped",
        "c: runAsNonRoot not true", "c: seccompProfile None",
    ]


@pytest.mark.parametrize("stack", STACKS)
def test_no_pod_mounts_a_service_account_token(all_runs: dict[str, ProgramRun], stack: str) -> None:
    """Nothing in the deployment talks to the Kubernetes API. The task-log
    identity's pods get the token Azure workload identity projects, not the
    API token."""
    for m in workloads(all_runs[stack]):
        assert pod_spec(m).get("automountServiceAccountToken") is False, \
            f"{stack} {label(m)}: automountServiceAccountToken"


@pytest.mark.parametrize("stack", STACKS)
def test_every_container_runs_on_a_read_only_root(all_runs: dict[str, ProgramRun], stack: str) -> None:
    """What each one writes is a declared volume: tests/test_written_paths.py
    shows it for Airflow, PostgreSQL, RabbitMQ and PgBouncer."""
    for m in workloads(all_runs[stack]):
        for c in all_containers(pod_spec(m)):
            assert c["securityContext"].get("readOnlyRootFilesystem") is True, f"{stack} {label(m)}: {c['name']}"
        assert "CKV_K8S_22" not in skipped_checks(m), f"{stack} {label(m)}: skips CKV_K8S_22"


def test_pgbouncer_writes_no_file() -> None:
    """On a read-only root: no unix socket, no log file, no pid file."""
    config = config_for("prod")
    assert config.plan.database.pgbouncer is not None
    lines = [line.strip() for line in pgbouncer_ini(config.settings, config.plan.database.pgbouncer).splitlines()]
    assert "unix_socket_dir =" in lines
    assert not [line for line in lines if line.split("=")[0].strip() in ("logfile", "pidfile")]


@pytest.mark.parametrize("stack", STACKS)
def test_every_checkov_skip_names_a_check_and_gives_a_reason(all_runs: dict[str, ProgramRun], stack: str) -> None:
    for m in all_runs[stack].manifests():
        for key, value in m["metadata"].get("annotations", {}).items():
            if key.startswith(k8s.CHECKOV_SKIP_PREFIX):
                check, sep, reason = value.partition("=")
                assert check.startswith(("CKV_K8S_", "CKV2_K8S_")) and sep and reason.strip(), \
                    f"{stack} {label(m)}: {key}: {value!r}"


def test_a_skip_without_a_reason_is_refused() -> None:
    with pytest.raises(ValueError, match="CKV_K8S_22"):
        k8s.checkov_skips({"CKV_K8S_22": " "})
    assert k8s.checkov_skips({"CKV_K8S_9": "why", "CKV_K8S_11": "why not"}) == {
        "checkov.io/skip1": "CKV_K8S_9=why", "checkov.io/skip2": "CKV_K8S_11=why not"}
