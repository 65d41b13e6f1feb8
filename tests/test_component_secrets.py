"""Each Airflow component receives only the generated secrets it uses
(components/model/component_secrets.py), and Flower is locked.

What a container receives is derived from the rendered objects alone: its
env entries, envFrom sources and mounted volumes, each Secret reference
resolved to the Secret's data. A value is named by which generated value it
is (the components' Secrets agree on one value per key), so a key handed over
under another name or through another Secret is caught as well.
"""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components.model import component_secrets, names
from components.model.airflow_cfg import SECRET_ENV
from components.model.component_secrets import COMPONENT_SECRETS, KEYS
from tests.harness import (
    ProgramRun,
    component_secret_values,
    is_secret,
    plain,
    shared_run,
    stack_file_config,
)
from tests.local_airflow import LocalDeployment, Services, deployment, free_port, wait_for
from tests.test_task_logs_and_metrics import small_fanout, task_log

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job")
FLOWER_ENV = KEYS[component_secrets.FLOWER_BASIC_AUTH].env
# The values a worker, which runs DAG authors' code, must never hold.
FORBIDDEN_ON_WORKERS = (component_secrets.JWT_SECRET, component_secrets.FERNET_KEY,
                        component_secrets.SQL_ALCHEMY_CONN, component_secrets.SQL_ALCHEMY_CONN_ASYNC,
                        component_secrets.DIRECT_CONN)


def with_flower(stack: str) -> ProgramRun:
    run = shared_run(stack, {**stack_file_config(stack), "airflow-aks:flower": True})
    assert run.error is None, run.error
    return run


@pytest.fixture(scope="module")
def variants(runs: dict[str, ProgramRun]) -> dict[str, ProgramRun]:
    return {**runs, "dev, flower": with_flower("dev"), "prod, flower": with_flower("prod")}


VARIANTS = ["dev", "prod", "dev, flower", "prod, flower"]


def secrets_of(run: ProgramRun) -> dict[str, dict[str, str]]:
    return {plain(r.inputs)["metadata"]["name"]: plain(r.inputs["stringData"])
            for r in run.of_type("kubernetes:core/v1:Secret")}


def airflow_pods(run: ProgramRun) -> Iterator[tuple[str, dict[str, Any]]]:
    """(component, pod spec) of every Airflow workload."""
    for m in run.manifests():
        if m["kind"] in WORKLOAD_KINDS:
            labels = m["spec"]["template"]["metadata"]["labels"]
            if labels.get("app.kubernetes.io/name") == "airflow":
                yield labels["app.kubernetes.io/component"], m["spec"]["template"]["spec"]


def received(run: ProgramRun, spec: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Container name -> every secret value it receives, by where it shows it
    (an environment variable's name, or a mounted Secret's path and key)."""
    secrets = secrets_of(run)
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    found: dict[str, dict[str, str]] = {}
    for c in [*spec.get("initContainers", []), *spec["containers"]]:
        got: dict[str, str] = {}
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                got[e["name"]] = secrets[ref["name"]][ref["key"]]
        for src in c.get("envFrom", []):
            if "secretRef" in src:
                got.update({f"{src.get('prefix', '')}{k}": v for k, v in secrets[src["secretRef"]["name"]].items()})
        for mount in c.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            sources = [volume] if "secret" in volume else volume.get("projected", {}).get("sources", [])
            for source in sources:
                if "secret" in source:
                    name = source["secret"].get("secretName") or source["secret"]["name"]
                    got.update({f"{mount['mountPath']}/{k}": v for k, v in secrets[name].items()})
        found[c["name"]] = got
    return found


def classes(run: ProgramRun) -> dict[str, set[str]]:
    """Each generated value of the components' Secrets -> the keys that hold it
    (without PgBouncer the metadata URL and the migration's direct one are one value)."""
    by_value: dict[str, set[str]] = {}
    for key, value in component_secret_values(run).items():
        by_value.setdefault(value, set()).add(key)
    return by_value


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_container_receives_exactly_its_components_keys(variants: dict[str, ProgramRun],
                                                             variant: str) -> None:
    run = variants[variant]
    by_value = classes(run)
    seen = set()
    for component, spec in airflow_pods(run):
        seen.add(component)
        allowed = set(COMPONENT_SECRETS[component])
        for container, got in received(run, spec).items():
            where = f"{variant}: {component}/{container}"
            held: set[str] = set()
            for shown_as, value in got.items():
                for generated, keys in by_value.items():
                    if generated in value:
                        assert keys & allowed, \
                            f"{where}: {shown_as} carries {sorted(keys)}, which the table does not give it"
                        held |= keys
            if container != component:
                continue  # an init container (the api-server's auth copy) needs none of them
            missing = {k for k in allowed if not by_value[component_secret_values(run)[k]] & held}
            assert not missing, f"{where}: lacks {sorted(missing)}, which the table says it uses"
            [main] = [c for c in spec["containers"] if c["name"] == container]
            env = {e["name"]: e for e in main.get("env", [])}
            for key in allowed:
                ref = env[KEYS[key].env]["valueFrom"]["secretKeyRef"]
                assert ref == {"name": names.env_secret(component), "key": key}, \
                    f"{where}: {KEYS[key].env} from its own Secret's {key}"
    assert seen == set(component_secrets.components("flower" in variant)), f"{variant}: {seen}"


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_components_secret_holds_only_its_keys(variants: dict[str, ProgramRun], variant: str) -> None:
    """What a node's kubelet may read is the Secrets of its own pods: the worker
    nodes' then hold only the workers' keys."""
    run = variants[variant]
    secrets = secrets_of(run)
    env_secrets = {n for n in secrets if n.startswith(f"{names.ENV_SECRET}-")}
    components = component_secrets.components("flower" in variant)
    assert env_secrets == {names.env_secret(c) for c in components}, f"{variant}: {sorted(env_secrets)}"
    assert names.ENV_SECRET not in secrets, f"{variant}: the shared Secret {names.ENV_SECRET} is gone"
    for c in components:
        assert set(secrets[names.env_secret(c)]) == set(COMPONENT_SECRETS[c]), f"{variant}: {names.env_secret(c)}"
    for r in run.of_type("kubernetes:core/v1:Secret"):
        assert is_secret(r.inputs["stringData"]), f"{variant}: Secret {r.name} is a Pulumi secret in the state"


@pytest.mark.parametrize("variant", VARIANTS)
def test_workers_get_no_jwt_secret_fernet_key_or_metadata_database_url(variants: dict[str, ProgramRun],
                                                                       variant: str) -> None:
    """The result backend URL they keep is the Celery results' pool; its
    database user is the metadata database's until the database roles of
    issue 28 separate them."""
    run = variants[variant]
    values = component_secret_values(run)
    forbidden = {key: values[key] for key in FORBIDDEN_ON_WORKERS}
    [(_, spec)] = [(c, s) for c, s in airflow_pods(run) if c == "worker"]
    everything = [*received(run, spec)["worker"].values(), *secrets_of(run)[names.env_secret("worker")].values()]
    for key, value in forbidden.items():
        assert not any(value in v for v in everything), f"{variant}: the worker's pod or Secret holds {key}"
    # The derivation sees them where they are.
    [(_, api)] = [(c, s) for c, s in airflow_pods(run) if c == "api-server"]
    assert values[component_secrets.JWT_SECRET] in received(run, api)["api-server"].values()


def test_the_table_names_a_reason_and_an_airflow_source_for_every_key() -> None:
    table = component_secrets.secret_table()
    for component, keys in COMPONENT_SECRETS.items():
        [row] = [line for line in table.splitlines() if line.startswith(f"| {component} |")]
        assert f"`{names.env_secret(component)}`" in row, component
        for key, why in keys.items():
            assert key in KEYS, f"{component}: unknown key {key}"
            assert f"`{key}` ({KEYS[key].env})" in row, f"{component}: {key}"
            assert ".py" in why, f"{component}/{key}: the reason cites the Airflow code that reads it"


def test_docs_show_the_table() -> None:
    docs = (Path(__file__).resolve().parents[1] / "docs" / "security.md").read_text()
    assert component_secrets.secret_table() in docs, \
        "docs/security.md: python -m components.model.component_secrets --reasons"


def test_flower_logs_in_with_a_generated_password(variants: dict[str, ProgramRun]) -> None:
    run = variants["prod, flower"]
    [(_, spec)] = [(c, s) for c, s in airflow_pods(run) if c == "flower"]
    [item] = [e for e in spec["containers"][0]["env"] if e["name"] == FLOWER_ENV]
    assert item["valueFrom"]["secretKeyRef"] == {"name": names.env_secret("flower"),
                                                 "key": component_secrets.FLOWER_BASIC_AUTH}
    user, _, password = secrets_of(run)[names.env_secret("flower")][component_secrets.FLOWER_BASIC_AUTH].partition(":")
    assert user == names.FLOWER_USER and password in run.generated, "user:password, the password generated"
    passwords = {r.name for r in run.of_type("random:index/randomPassword:RandomPassword")}
    without = {r.name for r in variants["prod"].of_type("random:index/randomPassword:RandomPassword")}
    assert passwords - without == {"workloads-secrets-flower"}, passwords - without
    assert not any(e["name"] == FLOWER_ENV for _, s in airflow_pods(variants["prod"])
                   for c in s["containers"] for e in c.get("env", []))


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, selector
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


@pytest.mark.parametrize("variant", ["dev, flower", "prod, flower"])
def test_no_policy_admits_a_connection_to_flower(variants: dict[str, ProgramRun], variant: str) -> None:
    """Flower is reached by `kubectl port-forward` only, which no policy sees."""
    run = variants[variant]
    labels = run.manifest("Deployment", names.FLOWER)["spec"]["template"]["metadata"]["labels"]
    policies = [m for m in run.manifests() if m["kind"] == "NetworkPolicy"
                and selects(m["spec"]["podSelector"], labels)]
    assert any("Ingress" in p["spec"]["policyTypes"] for p in policies), f"{variant}: Flower is isolated for ingress"
    admitting = [p["metadata"]["name"] for p in policies if p["spec"].get("ingress")]
    assert not admitting, f"{variant}: {admitting} admit connections to Flower"


# --------------------------------------------------------------------------
# Real Airflow: each component as a local process with exactly its container's env
# --------------------------------------------------------------------------


def secret_env_of(env: dict[str, str]) -> set[str]:
    # The worker's in-memory SQLite placeholder (airflow_worker.py) is no secret.
    return {name for name, value in env.items() if name in SECRET_ENV and value != "sqlite://"}


@pytest.fixture(scope="module")
def flower_on(services: Services) -> Iterator[LocalDeployment]:
    """One deployment, Flower on, for both real tests below: starting one
    (migration, five components ready) takes about 45 s on 2 cores. Flower's
    own process starts only in its test."""
    with deployment(services, small_fanout(width=2, sleep=40, flower=True)) as d:
        yield d


@pytest.mark.real
def test_a_dag_runs_with_each_component_on_its_own_keys_and_a_running_tasks_log_comes_from_the_worker(
        flower_on: LocalDeployment) -> None:
    """Migration, api-server, scheduler, dag-processor, triggerer and worker
    (and Flower, declared) each start with only the keys of their own Secret;
    the scheduler's tokens pass the api-server, tasks run, and the api-server
    fetches a running task's log from the worker's log server, signed with
    the key they share."""
    d = flower_on
    for component, w in d.workloads.items():
        assert secret_env_of(w.env) == set(component_secrets.component_env(component)), component
    run_id = d.trigger()

    def running() -> list[str]:
        return [r[0] for r in d.query("SELECT task_id FROM task_instance WHERE run_id = %s AND state = "
                                      "'running' ORDER BY task_id", [run_id])]

    wait_for("a running task", lambda: bool(running()), timeout=180, interval=0.5)
    task_id = running()[0]
    served = ""

    def from_worker() -> bool:
        nonlocal served
        served = task_log(d, run_id, task_id)
        return f":{names.WORKER_LOG_PORT}/log/" in served

    wait_for(f"{task_id}'s log from the worker's log server", from_worker, timeout=30, interval=2)
    assert "!!!!" not in served and "Could not read served logs" not in served, served[:3000]
    obs = d.observe(run_id, tasks=2, timeout=240)
    assert obs.states == {"success": 2}, obs.states


@pytest.mark.real
def test_flower_refuses_a_request_without_its_password(flower_on: LocalDeployment) -> None:
    """Flower started with its declared env (broker URL and basic auth only)."""
    d = flower_on
    flower = d.workloads["flower"]
    assert secret_env_of(flower.env) == set(component_secrets.component_env("flower"))
    port = free_port()
    d.extra_env = {"AIRFLOW__CELERY__FLOWER_PORT": str(port)}
    try:
        d.start("flower")
    finally:
        d.extra_env = {}
    url = f"http://127.0.0.1:{port}/api/workers"

    def status(headers: dict[str, str]) -> int:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def answers() -> bool:
        if d.processes["flower"].poll() is not None:
            raise RuntimeError(f"flower exited: {d.logs('flower')[-3000:]}")
        try:
            status({})
        except OSError:
            return False
        return True

    wait_for("Flower listening", answers, timeout=120, interval=1)
    assert status({}) == 401, "without credentials"
    wrong = base64.b64encode(f"{names.FLOWER_USER}:wrong".encode()).decode()
    assert status({"Authorization": f"Basic {wrong}"}) == 401, "with a wrong password"
    right = base64.b64encode(flower.env[FLOWER_ENV].encode()).decode()
    assert status({"Authorization": f"Basic {right}"}) == 200, "with the generated user:password"
