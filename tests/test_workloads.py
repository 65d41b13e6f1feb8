"""Every Kubernetes object of the deployment under Pulumi mocks, and its wiring."""

from __future__ import annotations

import base64
import configparser
import json
import re
from typing import Any

import kubernetes_validate
import pytest

from components.config import stack_file_config
from components.model import component_secrets, names
from components.model.airflow_cfg import SECRET_ENV
from components.model.names import WORKER_POOL_LABEL_KEY, WORKER_POOL_LABEL_VALUE, WORKER_POOL_TAINT
from components.model.settings import DEFAULTS
from tests.conftest import config_for
from tests.harness import (
    TASK_LOG_CLIENT_ID,
    ProgramRun,
    component_secret_values,
    is_secret,
    plain,
    run_program,
    shared_run,
)
from tests.schemas import SchemaError, validate_manifest

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job")


def cfg_of(run: ProgramRun) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(run.manifest("ConfigMap", names.CONFIG_MAP)["data"]["airflow.cfg"])
    return parser


def airflow_workloads(run: ProgramRun) -> list[dict[str, Any]]:
    """Deployments, StatefulSets and Jobs whose pods run the Airflow image."""
    return [m for m in run.manifests() if m["kind"] in WORKLOAD_KINDS
            and m["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/name") == "airflow"]


def label(m: dict[str, Any]) -> str:
    return f"{m['kind']}/{m['metadata'].get('name') or m['metadata']['labels']['app.kubernetes.io/component']}"


def containers(m: dict[str, Any]) -> list[dict[str, Any]]:
    spec = m["spec"]["template"]["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def stack_value(stack: str, key: str) -> Any:
    value = stack_file_config(stack).get(f"airflow-aks:{key}", DEFAULTS[key])
    return int(value) if isinstance(value, (int, str)) and str(value).isdigit() else value


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_object_is_declared(runs: dict[str, ProgramRun], stack: str) -> None:
    found = {(m["kind"], m["metadata"].get("name")) for m in runs[stack].manifests()}
    expected = {
        ("Namespace", "airflow"),
        *(("Secret", names.env_secret(c)) for c in component_secrets.components(flower=False)),
        ("Secret", names.POSTGRES_SECRET),
        ("Secret", names.RABBITMQ_SECRET), ("Secret", names.AUTH_SECRET),
        ("ConfigMap", names.CONFIG_MAP), ("ConfigMap", names.ENV_CONFIG_MAP), ("ConfigMap", names.RABBITMQ),
        ("StatefulSet", names.POSTGRES), ("Service", names.POSTGRES),
        ("PersistentVolumeClaim", "airflow-postgres-data"),
        ("StatefulSet", names.RABBITMQ), ("Service", names.RABBITMQ),
        ("PersistentVolumeClaim", "airflow-rabbitmq-data"),
        ("Deployment", names.API_SERVER), ("Service", names.API_SERVER),
        ("Deployment", names.SCHEDULER), ("Deployment", names.DAG_PROCESSOR),
        ("StatefulSet", names.TRIGGERER), ("Service", names.TRIGGERER),
        ("StatefulSet", names.WORKER), ("Service", names.WORKER),
        ("Job", None),
        ("Secret", names.PGBOUNCER_SECRET), ("ConfigMap", names.PGBOUNCER),
        ("Deployment", names.PGBOUNCER), ("Service", names.PGBOUNCER),
        ("ScaledObject", names.WORKER), ("TriggerAuthentication", "airflow-keda"),
        # Task logs in Blob Storage and StatsD metrics, both on by default on AKS.
        ("ServiceAccount", names.TASK_LOG_SERVICE_ACCOUNT), ("Secret", names.TASK_LOG_SECRET),
        # The api-server's own account and connection, for the log reader's identity
        # (tests/test_task_log_storage.py).
        ("ServiceAccount", names.API_SERVER_SERVICE_ACCOUNT), ("Secret", names.TASK_LOG_READER_SECRET),
        ("ConfigMap", names.STATSD), ("Deployment", names.STATSD), ("Service", names.STATSD),
        ("PodDisruptionBudget", names.API_SERVER), ("PodDisruptionBudget", names.SCHEDULER),
        ("PodDisruptionBudget", names.PGBOUNCER), ("PodDisruptionBudget", names.WORKER),
        # One NetworkPolicy per workload, DNS for all, the default deny (tests/test_network_policies.py).
        *{("NetworkPolicy", n) for n in (
            names.API_SERVER, names.SCHEDULER, names.DAG_PROCESSOR, names.TRIGGERER, names.WORKER, names.MIGRATE,
            names.POSTGRES, names.PGBOUNCER, names.RABBITMQ, names.STATSD, "airflow-all-pods",
            "airflow-default-deny", names.DATABASE_ROLES)},
        # Nightly dumps of the in-cluster database (tests/test_backups.py).
        ("CronJob", names.DATABASE_BACKUP), ("ConfigMap", names.BACKUP_CONFIG_MAP),
        ("ServiceAccount", names.BACKUP_SERVICE_ACCOUNT), ("NetworkPolicy", names.DATABASE_BACKUP),
    }
    assert found == expected


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_object_validates_strictly_against_the_kubernetes_schema(runs: dict[str, ProgramRun], stack: str) -> None:
    version = config_for(stack).settings.kubernetes_version
    version = version if version.count(".") == 2 else f"{version}.0"
    failures = []
    manifests = runs[stack].manifests()
    for m in manifests:
        try:
            validate_manifest(m, version)
        except kubernetes_validate.ValidationError as err:
            failures.append(f"{label(m)}: {err.message} at {'/'.join(map(str, err.path))}")
        except SchemaError as err:
            failures.append(f"{label(m)}: {err}")
    assert not failures, "\n".join(failures)
    assert len(manifests) >= 20
    assert {m["kind"] for m in manifests} >= {"ScaledObject", "TriggerAuthentication"}, "KEDA's are checked too"


def test_keda_schema_check_can_fail(runs: dict[str, ProgramRun]) -> None:
    scaler = runs["prod"].manifest("ScaledObject", names.WORKER)
    validate_manifest(scaler, "1.35.0")
    scaler["spec"]["maxReplicaCountt"] = 3
    with pytest.raises(SchemaError, match="maxReplicaCountt"):
        validate_manifest(scaler, "1.35.0")
    scaler["spec"].pop("maxReplicaCountt")
    scaler["spec"]["triggers"][0]["metadata"] = "not a map"
    with pytest.raises(SchemaError):
        validate_manifest(scaler, "1.35.0")


def test_schema_check_can_fail(runs: dict[str, ProgramRun]) -> None:
    broken = runs["dev"].manifest("Deployment", names.SCHEDULER)
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.35.0", strict=True)


def most_workers(run: ProgramRun) -> int:
    """The most worker replicas the deployment runs: KEDA's maximum, or the fixed count."""
    scalers = [m for m in run.manifests() if m["kind"] == "ScaledObject"]
    if scalers:
        return scalers[0]["spec"]["maxReplicaCount"]
    return run.manifest("StatefulSet", names.WORKER)["spec"]["replicas"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_worker_slots_cover_parallelism_from_the_config(runs: dict[str, ProgramRun], stack: str) -> None:
    run = runs[stack]
    replicas = most_workers(run)
    concurrency = int(cfg_of(run)["celery"]["worker_concurrency"])
    parallelism = stack_value(stack, "parallelism")
    assert concurrency == stack_value(stack, "workerConcurrency")
    assert replicas * concurrency >= parallelism, f"{names.WORKER}: {replicas} x {concurrency} < {parallelism}"


def test_prod_runs_up_to_28_workers_of_36(runs: dict[str, ProgramRun]) -> None:
    assert most_workers(runs["prod"]) == 28
    assert cfg_of(runs["prod"])["celery"]["worker_concurrency"] == "36"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_airflow_pod_mounts_the_same_airflow_cfg(runs: dict[str, ProgramRun], stack: str) -> None:
    run = runs[stack]
    workloads = airflow_workloads(run)
    assert len(workloads) == 6, [label(m) for m in workloads]
    checksums = set()
    for m in workloads:
        spec = m["spec"]["template"]["spec"]
        config = [v for v in spec["volumes"] if v["name"] == "config"]
        assert config == [{"name": "config", "configMap": {"name": names.CONFIG_MAP}}], label(m)
        for c in spec["containers"]:
            assert {"name": "config", "mountPath": "/opt/airflow/airflow.cfg", "subPath": "airflow.cfg",
                    "readOnly": True} in c["volumeMounts"], f"{label(m)}/{c['name']}"
            assert c["image"] == run.outputs["image"], f"{label(m)}/{c['name']}: the pushed image"
        checksums.add(m["spec"]["template"]["metadata"]["annotations"]["airflow-aks/config-checksum"])
    assert len(checksums) == 1, "every Airflow pod carries the same config checksum"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_airflow_pods_read_secrets_from_secret_references(runs: dict[str, ProgramRun], stack: str) -> None:
    for m in airflow_workloads(runs[stack]):
        for c in m["spec"]["template"]["spec"]["containers"]:
            env = {e["name"]: e for e in c["env"]}
            own = names.env_secret(m["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"])
            for name in SECRET_ENV:
                if name not in env:
                    continue
                if c["name"] == "worker" and env[name].get("value") == "sqlite://":
                    # The worker's placeholder database: in memory, no secret (airflow_worker.py).
                    continue
                assert "value" not in env[name], f"{label(m)}/{c['name']}: {name} is a literal"
                assert env[name]["valueFrom"]["secretKeyRef"]["name"] == own, \
                    f"{label(m)}/{c['name']}: {name} from its component's own Secret {own}"


def all_strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in all_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in all_strings(v)]
    return [value] if isinstance(value, str) else []


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_no_secret_literal_in_any_config_map_or_env_value(runs: dict[str, ProgramRun], stack: str) -> None:
    run = runs[stack]
    secrets = [r for r in run.resources if r.type == "kubernetes:core/v1:Secret"]
    # postgres, rabbitmq, auth, pgbouncer, the writers' and the api-server's task-log
    # connections, and a Secret per Airflow component.
    assert len(secrets) == 6 + len(component_secrets.components(flower=False))
    for r in secrets:
        assert is_secret(r.inputs["stringData"]), f"{r.name}: stringData is a Pulumi secret"
    # Every password and key the program generates (recorded by the mocks).
    needles = set(run.generated)
    assert len(needles) >= 6
    in_secrets = " ".join(s for r in secrets for s in all_strings(plain(r.inputs["stringData"])))
    assert all(n in in_secrets for n in needles if "-" not in n and "_" not in n), "they do reach the Secrets"
    for m in run.manifests():
        if m["kind"] == "Secret":
            continue
        if m["kind"] == "ConfigMap":
            texts = all_strings(m["data"])
        elif m["kind"] in WORKLOAD_KINDS:
            texts = [e.get("value", "") for c in containers(m) for e in c.get("env", [])]
            texts += [a for c in containers(m) for a in c.get("args", []) + c.get("command", [])]
        else:
            texts = all_strings(m)
        leaked = [n for n in needles for t in texts if n in t]
        assert not leaked, f"{label(m)} holds a secret value"


def test_fernet_key_is_32_url_safe_bytes(runs: dict[str, ProgramRun]) -> None:
    env = plain(next(r for r in runs["prod"].resources
                     if r.name == "workloads-secrets-env-api-server").inputs["stringData"])
    key = env["fernet-key"]
    assert "+" not in key and "/" not in key
    assert len(base64.urlsafe_b64decode(key)) == 32


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_migration_job_precedes_the_components(runs: dict[str, ProgramRun], stack: str) -> None:
    run = runs[stack]
    job = run.options_of("workloads-airflow-migrate")
    assert {o.name for o in run.options if o.resource in job.depends_on} >= {
        "workloads-postgres-statefulset", "workloads-rabbitmq-statefulset"}, "the job waits for the databases"
    for name in ("api-server", "scheduler", "dag-processor", "triggerer", "worker"):
        opts = run.options_of(f"workloads-airflow-{name}")
        assert job.resource in opts.depends_on, f"workloads-airflow-{name} must wait for the migration job"
    manifest = next(m for m in run.manifests() if m["kind"] == "Job"
                    and m["metadata"]["labels"]["app.kubernetes.io/component"] == "migrate")
    command = manifest["spec"]["template"]["spec"]["containers"][0]["args"][-1]
    slots = config_for(stack).plan.default_pool_slots
    assert command.startswith("airflow db migrate && ")
    assert f"airflow pools set default_pool {slots} " in command


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_image_and_acr_pull_are_dependencies_of_every_pulling_workload(runs: dict[str, ProgramRun],
                                                                        stack: str) -> None:
    run = runs[stack]
    image = run.options_of("airflow-image").resource
    acr_pull = run.options_of("airflow-acr-pull").resource
    pulling = [o for o in run.options if o.type in (
        "kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:StatefulSet", "kubernetes:batch/v1:Job")
        and o.name.startswith("workloads-airflow")]
    assert len(pulling) == 6
    for o in pulling:
        assert image in o.depends_on, f"{o.name} must wait for the image push"
        assert acr_pull in o.depends_on, f"{o.name} must wait for AcrPull"
    worker = run.options_of("workloads-airflow-worker")
    [pool] = [o for o in run.options if o.type == "azure-native:containerservice:AgentPool"]
    # On a first deployment (no live pool) the gate on spec.replicas carries
    # the pool (tests/test_day2.py covers a shrink, where it does not).
    assert pool.name in worker.waits_for(), "workers wait for their node pool"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_workers_land_on_the_worker_pool_and_shut_down_warm(runs: dict[str, ProgramRun], stack: str) -> None:
    run = runs[stack]
    plan = config_for(stack).plan
    sts = run.manifest("StatefulSet", names.WORKER)
    spec = sts["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {WORKER_POOL_LABEL_KEY: WORKER_POOL_LABEL_VALUE}
    key, rest = WORKER_POOL_TAINT.split("=")
    value, effect = rest.split(":")
    assert spec["tolerations"] == [{"key": key, "operator": "Equal", "value": value, "effect": effect}]
    longest = stack_value(stack, "longestTaskSeconds")
    assert spec["terminationGracePeriodSeconds"] > longest, "the grace period covers the longest task"
    [worker] = spec["containers"]
    assert worker["args"] == ["celery", "worker"]
    assert {"name": "DUMB_INIT_SETSID", "value": "0"} in worker["env"], "SIGTERM must reach Celery only"
    assert worker["resources"]["requests"] == {"cpu": f"{plan.worker.cpu_request_millicores}m",
                                               "memory": f"{plan.worker.memory_request_mib}Mi"}
    assert worker["resources"]["limits"] == {"memory": f"{plan.worker.memory_limit_mib}Mi"}
    service = run.manifest("Service", names.WORKER)
    assert service["spec"]["clusterIP"] == "None", "headless: one DNS name per worker for log fetching"
    assert sts["spec"]["serviceName"] == names.WORKER
    assert service["spec"]["selector"].items() <= sts["spec"]["template"]["metadata"]["labels"].items()
    assert service["spec"]["ports"][0]["port"] == names.WORKER_LOG_PORT


def test_only_workers_get_the_task_start_import_timeout(runs: dict[str, ProgramRun]) -> None:
    # A full E4s_v3 node starts 360 tasks at once, each parsing the DAG (the
    # plan's "task start"), so the workers' tasks get 140 s instead of Airflow's
    # 30; the other pods, and airflow.cfg, keep Airflow's.
    run = runs["prod"]
    [worker] = run.manifest("StatefulSet", names.WORKER)["spec"]["template"]["spec"]["containers"]
    assert {"name": "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT", "value": "140.0"} in worker["env"], "worker"
    assert not cfg_of(run).has_option("core", "dagbag_import_timeout")
    for m in airflow_workloads(run):
        if m["kind"] != "StatefulSet" or m["metadata"]["name"] != names.WORKER:
            for c in m["spec"]["template"]["spec"]["containers"]:
                assert all(e["name"] != "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT" for e in c.get("env", [])), label(m)


def test_a_stack_import_timeout_applies_everywhere_instead() -> None:
    config = stack_file_config("prod")
    config["airflow-aks:airflowConfig"] = {"core": {"dagbag_import_timeout": 600}}
    run = shared_run("prod", config)
    [worker] = run.manifest("StatefulSet", names.WORKER)["spec"]["template"]["spec"]["containers"]
    assert all(e["name"] != "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT" for e in worker["env"]), \
        "an env var would shadow the stack's value on the workers"
    assert cfg_of(run).get("core", "dagbag_import_timeout") == "600"


@pytest.mark.parametrize(("kind", "component"), [("Deployment", "api-server"), ("Deployment", "scheduler"),
                                                   ("Deployment", "dag-processor"), ("StatefulSet", "triggerer")])
def test_control_plane_pods_have_probes_limits_and_run_as_airflow(runs: dict[str, ProgramRun], kind: str,
                                                                   component: str) -> None:
    m = runs["prod"].manifest(kind, f"airflow-{component}")
    spec = m["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsUser"] == names.AIRFLOW_UID
    assert spec["securityContext"]["runAsNonRoot"] is True
    for c in spec["containers"]:
        assert "livenessProbe" in c and "readinessProbe" in c, f"{label(m)}: probes"
        assert set(c["resources"]["requests"]) == {"cpu", "memory"}, f"{label(m)}: requests"
        assert set(c["resources"]["limits"]) == {"cpu", "memory"}, f"{label(m)}: limits"
        assert c["securityContext"]["allowPrivilegeEscalation"] is False


@pytest.mark.parametrize(("stack", "replicas", "workers", "cpu"), [("dev", 1, 1, "250m"), ("prod", 2, 2, "750m")])
def test_api_server_replicas_and_the_execution_api_url(runs: dict[str, ProgramRun], stack: str,
                                                        replicas: int, workers: int, cpu: str) -> None:
    run = runs[stack]
    deployment = run.manifest("Deployment", names.API_SERVER)
    service = run.manifest("Service", names.API_SERVER)
    # The plan's api-server (components/model/capacity.py): pods, uvicorn workers, CPU.
    assert deployment["spec"]["replicas"] == replicas, f"{names.API_SERVER}: replicas"
    assert cfg_of(run)["api"]["workers"] == str(workers), f"{names.API_SERVER}: [api] workers"
    [api] = deployment["spec"]["template"]["spec"]["containers"]
    assert api["resources"]["requests"]["cpu"] == cpu, f"{names.API_SERVER}: CPU request"
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    port = service["spec"]["ports"][0]["port"]
    ns = run.outputs["namespace"]
    assert cfg_of(run)["core"]["execution_api_server_url"] == \
        f"http://{service['metadata']['name']}.{ns}.svc.cluster.local:{port}/execution/"


def test_postgres_takes_max_connections_from_the_plan(runs: dict[str, ProgramRun]) -> None:
    sts = runs["prod"].manifest("StatefulSet", names.POSTGRES)
    [pg] = sts["spec"]["template"]["spec"]["containers"]
    assert f"max_connections={config_for('prod').plan.database.max_connections}" in pg["args"]
    assert "readinessProbe" in pg
    claim = runs["prod"].manifest("PersistentVolumeClaim", "airflow-postgres-data")
    assert claim["spec"]["resources"]["requests"]["storage"] == "32Gi"
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "airflow-postgres-data"}} in \
        sts["spec"]["template"]["spec"]["volumes"]
    assert {"name": "data", "mountPath": "/var/lib/postgresql/data"} in pg["volumeMounts"]


def test_rabbitmq_consumer_timeout_is_above_the_longest_task() -> None:
    for longest in (3600, 4 * 3600):
        config = stack_file_config("prod")
        config["airflow-aks:longestTaskSeconds"] = longest
        run = shared_run("prod", config)
        conf = run.manifest("ConfigMap", names.RABBITMQ)["data"]["20-airflow-aks.conf"]
        timeout_ms = int(re.search(r"^consumer_timeout = (\d+)$", conf, re.M).group(1))
        assert timeout_ms > longest * 1000, f"{names.RABBITMQ}: consumer_timeout {timeout_ms} ms"
        sts = run.manifest("StatefulSet", names.RABBITMQ)
        assert "volumeClaimTemplates" not in sts["spec"], "its volume is a claim of its own"


def test_changing_worker_concurrency_changes_the_cfg_and_rolls_the_workers(runs: dict[str, ProgramRun]) -> None:
    config = stack_file_config("prod")
    config["airflow-aks:workerConcurrency"] = 20
    changed = shared_run("prod", config)
    assert changed.error is None, changed.error
    before_cfg = runs["prod"].manifest("ConfigMap", names.CONFIG_MAP)["data"]["airflow.cfg"]
    after_cfg = changed.manifest("ConfigMap", names.CONFIG_MAP)["data"]["airflow.cfg"]
    assert "worker_concurrency = 36" in before_cfg and "worker_concurrency = 20" in after_cfg
    before = runs["prod"].manifest("StatefulSet", names.WORKER)["spec"]
    after = changed.manifest("StatefulSet", names.WORKER)["spec"]
    annotation = "airflow-aks/config-checksum"
    assert after["template"]["metadata"]["annotations"][annotation] != \
        before["template"]["metadata"]["annotations"][annotation], "a new pod template rolls the workers"
    assert (most_workers(runs["prod"]), most_workers(changed)) == (28, 50)


def test_unchanged_config_gives_identical_objects() -> None:
    def by_object(run: ProgramRun) -> list[str]:
        # Registration order varies between runs; the objects must not.
        return sorted(json.dumps(m, sort_keys=True) for m in run.manifests())

    assert by_object(run_program("prod")) == by_object(run_program("prod"))


def test_flower_is_optional() -> None:
    config = stack_file_config("dev")
    config["airflow-aks:flower"] = True
    run = shared_run("dev", config)
    assert run.error is None, run.error
    assert run.manifest("Deployment", names.FLOWER)["spec"]["template"]["spec"]["containers"][0]["args"] == \
        ["celery", "flower"]
    assert run.manifest("Service", names.FLOWER)["spec"]["ports"][0]["port"] == names.FLOWER_PORT


def test_every_kubernetes_object_goes_through_the_cluster_provider(runs: dict[str, ProgramRun]) -> None:
    for r in runs["prod"].resources:
        if r.type.startswith("kubernetes:"):
            assert r.provider and "::airflow-k8s::" in r.provider, f"{r.name}: provider {r.provider}"


def test_stack_outputs_for_the_ui(runs: dict[str, ProgramRun]) -> None:
    run = runs["prod"]
    assert run.outputs["namespace"] == "airflow"
    assert run.outputs["portForwardCommand"] == \
        f"kubectl --namespace airflow port-forward svc/{names.API_SERVER} 8080:8080"
    assert "adminPassword" in run.secret_outputs, "the admin password is a secret output"
    auth = plain(next(r for r in run.resources if r.name == "workloads-secrets-auth").inputs["stringData"])
    assert json.loads(auth["simple_auth_manager_passwords.json"]) == {"admin": run.outputs["adminPassword"]}


def _db_key(m: dict[str, Any]) -> str:
    [key] = [e["valueFrom"]["secretKeyRef"]["key"] for c in containers(m) for e in c.get("env", [])
             if e["name"] == "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    return key


def test_airflow_goes_through_pgbouncer_and_the_migration_goes_direct(runs: dict[str, ProgramRun]) -> None:
    run = runs["prod"]
    env = component_secret_values(run)
    bouncer = f"@{names.service_host(names.PGBOUNCER, 'airflow')}:{names.PGBOUNCER_PORT}"
    assert env["sql-alchemy-conn"].endswith(f"{bouncer}/{names.PGBOUNCER_METADATA_DB}")
    assert env["result-backend"].startswith("db+postgresql://")
    assert env["result-backend"].endswith(f"{bouncer}/{names.PGBOUNCER_RESULT_BACKEND_DB}")
    assert env["sql-alchemy-conn-direct"].endswith(
        f"@{names.service_host(names.POSTGRES, 'airflow')}:{names.POSTGRES_PORT}/{names.POSTGRES_DB}")
    for m in run.manifests():
        if m["kind"] in WORKLOAD_KINDS and m["metadata"].get("labels", {}).get("app.kubernetes.io/name") == "airflow":
            component = m["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
            if component in ("worker", "flower"):
                continue  # no metadata database URL (test_component_secrets.py)
            want = "sql-alchemy-conn-direct" if m["kind"] == "Job" else "sql-alchemy-conn"
            assert _db_key(m) == want, f"{label(m)}: its database connection"


def test_pgbouncer_config_comes_from_the_plan_and_its_users_from_a_secret(runs: dict[str, ProgramRun]) -> None:
    run = runs["prod"]
    b = config_for("prod").plan.database.pgbouncer
    assert b is not None
    ini = run.manifest("ConfigMap", names.PGBOUNCER)["data"]["pgbouncer.ini"]
    assert "pool_mode = transaction" in ini and f"max_client_conn = {b.max_client_conn}" in ini
    assert f"{names.PGBOUNCER_METADATA_DB} = host=" in ini and f"pool_size={b.metadata_pool}" in ini
    assert f"pool_size={b.result_backend_pool}" in ini
    assert not any(n in ini for n in run.generated), "no password in the ConfigMap"
    [users] = [plain(r.inputs["stringData"]) for r in run.of_type("kubernetes:core/v1:Secret")
               if plain(r.inputs)["metadata"]["name"] == names.PGBOUNCER_SECRET]
    assert users["users.txt"].startswith(f'"{names.DATABASE_APP_ROLE}" "MOCKSECRET'), \
        "PgBouncer's user: the components' role, not the superuser"
    assert f"stats_users = {names.DATABASE_APP_ROLE}\n" in ini, "pgbouncer.ini: its stats user is the userlist's"
    pod = run.manifest("Deployment", names.PGBOUNCER)["spec"]["template"]["spec"]
    sources = pod["volumes"][0]["projected"]["sources"]
    assert {"secret": {"name": names.PGBOUNCER_SECRET, "items": [{"key": "users.txt", "path": "users.txt"}]}} \
        in sources


def test_pgbouncer_off_connects_straight_to_postgres() -> None:
    run = shared_run("dev", {**stack_file_config("dev"), "airflow-aks:pgbouncer": False})
    assert run.error is None, run.error
    assert not [m for m in run.manifests() if m["metadata"].get("name") == names.PGBOUNCER]
    env = component_secret_values(run)
    # The same server and database; the components as the app role, the migration as the owner.
    assert env["sql-alchemy-conn"].split("@")[1] == env["sql-alchemy-conn-direct"].split("@")[1]
    assert env["sql-alchemy-conn"].startswith(f"postgresql+psycopg2://{names.DATABASE_APP_ROLE}:")
    assert env["sql-alchemy-conn-direct"].startswith(f"postgresql+psycopg2://{names.DATABASE_OWNER_ROLE}:")


def test_only_the_log_pods_get_the_azure_identity(runs: dict[str, ProgramRun]) -> None:
    # Workload identity acts on the pod label and the ServiceAccount's
    # client-id annotation; pods without both get no Azure token.
    run = runs["prod"]
    account = run.manifest("ServiceAccount", names.TASK_LOG_SERVICE_ACCOUNT)
    # The mocks give the UserAssignedIdentity this client ID (tests/harness.py).
    assert account["metadata"]["annotations"]["azure.workload.identity/client-id"] == TASK_LOG_CLIENT_ID, \
        "the ServiceAccount names the log identity"
    assert account["automountServiceAccountToken"] is False
    with_identity = set()
    for m in airflow_workloads(run):
        template = m["spec"]["template"]
        uses = template["metadata"]["labels"].get("azure.workload.identity/use") == "true"
        account_name = template["spec"].get("serviceAccountName")
        component = template["metadata"]["labels"]["app.kubernetes.io/component"]
        # The api-server runs as its own account, the log reader's (tests/test_task_log_storage.py).
        own = names.API_SERVER_SERVICE_ACCOUNT if component == "api-server" else names.TASK_LOG_SERVICE_ACCOUNT
        assert uses == (account_name == own), label(m)
        if uses:
            with_identity.add(component)
        secret = names.TASK_LOG_READER_SECRET if component == "api-server" else names.TASK_LOG_SECRET
        for c in template["spec"]["containers"]:
            [conn] = [e for e in c["env"] if e["name"] == "AIRFLOW_CONN_WASB_DEFAULT"]
            assert conn["valueFrom"]["secretKeyRef"] == {"name": secret, "key": "connection"}, label(m)
    # Prod's keyVault adds the dag-processor, which reads the vault (tests/test_key_vault.py).
    assert with_identity == {"worker", "triggerer", "api-server", "dag-processor"}, \
        "they write or read task logs, or read the vault; nothing else"


def test_the_log_connections_hold_no_key(runs: dict[str, ProgramRun]) -> None:
    run = runs["prod"]
    secrets = {plain(r.inputs)["metadata"]["name"]: plain(r.inputs["stringData"]) for r in run.resources
               if r.type == "kubernetes:core/v1:Secret"
               and plain(r.inputs)["metadata"]["name"] in (names.TASK_LOG_SECRET, names.TASK_LOG_READER_SECRET)}
    assert sorted(secrets) == sorted([names.TASK_LOG_SECRET, names.TASK_LOG_READER_SECRET]), \
        "the writers' connection and the api-server's"
    for name, data in secrets.items():
        assert list(data) == ["connection"], name
        connection = json.loads(data["connection"])
        assert connection["host"].startswith("https://") and connection["host"].endswith(
            ".blob.core.windows.net"), f"{name}: {connection}"
        assert set(connection["extra"]) == {"managed_identity_client_id", "workload_identity_tenant_id"}, \
            f"{name}: identity only, no key, SAS or connection string"
        assert "password" not in connection and "login" not in connection, name
