"""Day 2: what a config change does to a running deployment, under Pulumi mocks.

Where a test relies on how a provider diffs, its comment names the provider's
source file; tests/preview.py models those rules for whole-program previews.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import urllib.error
from pathlib import Path
from typing import Any

import pytest

# Modules, not names: each test then fails on its own when what it checks is missing.
from components.azure import acr_auth, image, platform
from components.kubernetes import rabbitmq
from components.model import capacity, names
from components.model.settings import DEFAULTS
from tests.harness import KUBELET_OBJECT_ID, ROOT, ProgramRun, plain, shared_run, stack_file_config
from tests.preview import preview
from tests.real_airflow import run_airflow_python

APP_DIR = ROOT / "app"

POOL = "azure-native:containerservice:AgentPool"
AKS = "azure-native:containerservice:ManagedCluster"
ROLE = "azure-native:authorization:RoleAssignment"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # how the SDK sends an unknown value


def changed(stack: str, **keys: Any) -> dict[str, Any]:
    config = stack_file_config(stack)
    for key, value in keys.items():
        config[f"airflow-aks:{key}"] = value
    return config


def ok(run: ProgramRun) -> ProgramRun:
    assert run.error is None, run.error
    return run


# 1. RabbitMQ's cookie is not on its volume -------------------------------------------------


def test_rabbitmq_volume_holds_the_node_data_and_home_is_an_empty_dir(runs: dict[str, ProgramRun]) -> None:
    sts = runs["prod"].manifest("StatefulSet", names.RABBITMQ)
    pod = sts["spec"]["template"]["spec"]
    [container] = pod["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["data"] == rabbitmq.DATA_DIR, f"{names.RABBITMQ}: the claim holds the mnesia base only"
    assert {"name": "RABBITMQ_MNESIA_BASE", "value": rabbitmq.DATA_DIR} in container["env"]
    assert mounts["home"] == rabbitmq.HOME_DIR and volumes["home"] == {"name": "home", "emptyDir": {}}, \
        f"{names.RABBITMQ}: HOME, where Erlang writes its cookie, starts empty in every pod"
    assert not Path(rabbitmq.HOME_DIR).is_relative_to(mounts["data"])


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_rabbitmq_starts_on_the_mnesia_base_of_a_claim_from_before_the_split(runs: dict[str, ProgramRun],
                                                                             stack: str) -> None:
    """A claim first mounted at HOME (before commit 8a2887f) has its base in a
    directory named mnesia: the container looks for it, then runs the image's
    own entrypoint and command (tests/test_rabbitmq_volume.py runs it on a real
    node)."""
    what = f"{stack} StatefulSet/{names.RABBITMQ}"
    [container] = runs[stack].manifest("StatefulSet", names.RABBITMQ)["spec"]["template"]["spec"]["containers"]
    assert container.get("command") == ["sh", "-c", rabbitmq.ADOPT_OLD_DATA_LAYOUT, "sh"], f"{what}: command"
    assert container.get("args") == ["docker-entrypoint.sh", "rabbitmq-server"], \
        f"{what}: the official image's ENTRYPOINT and CMD, which a declared command replaces"
    script = rabbitmq.ADOPT_OLD_DATA_LAYOUT.splitlines()
    assert script == [
        'if [ -d "$RABBITMQ_MNESIA_BASE/mnesia" ]; then export RABBITMQ_MNESIA_BASE="$RABBITMQ_MNESIA_BASE/mnesia"; fi',
        'exec "$@"'], f"{what}: the layout check"
    assert {"name": "RABBITMQ_MNESIA_BASE", "value": rabbitmq.DATA_DIR} in container["env"], \
        f"{what}: the check looks in the claim's mount"


@pytest.mark.parametrize("name", [names.RABBITMQ, names.POSTGRES])
def test_data_volumes_change_ownership_only_on_mismatch(runs: dict[str, ProgramRun], name: str) -> None:
    pod = runs["prod"].manifest("StatefulSet", name)["spec"]["template"]["spec"]
    assert pod["securityContext"]["fsGroupChangePolicy"] == "OnRootMismatch", f"{name}: fsGroupChangePolicy"


# 2. VM sizes -----------------------------------------------------------------------------------


def test_worker_pool_name_follows_the_vm_size() -> None:
    assert platform.worker_pool_name("Standard_E4s_v3") == "we4sv3"
    assert platform.worker_pool_name("Standard_E32ads_v5") == "we32adsv5"
    assert platform.worker_pool_name("Standard_D2s_v5") != platform.worker_pool_name("Standard_D4s_v5")
    for size in ("Standard_E104ids_v5", "Standard_M416ms_v2"):
        assert len(platform.worker_pool_name(size)) <= 12, "AKS Linux pool names have at most 12 characters"


def test_a_worker_vm_size_change_creates_the_new_pool_before_the_old_one_goes(runs: dict[str, ProgramRun]) -> None:
    # pulumi-azure-native replaces an AgentPool whose vmSize changes
    # (provider/pkg/gen/replacement.go) and deletes an explicitly named
    # resource before creating its replacement (provider/pkg/provider/
    # provider.go, deleteBeforeReplace). A new logical name makes it a create
    # now and a delete at the end of the update instead.
    before = runs["prod"].one(POOL)
    after = ok(shared_run("prod", changed("prod", workerPool={"vmSize": "Standard_E8s_v5"}))).one(POOL)
    assert before.name != after.name, "a new logical name: created, not replaced in place"
    assert (before.inputs["agentPoolName"], after.inputs["agentPoolName"]) == ("we4sv3", "we8sv5")
    assert after.inputs["nodeLabels"] == before.inputs["nodeLabels"], "workers may land on either pool meanwhile"
    assert after.inputs["nodeTaints"] == before.inputs["nodeTaints"]


def test_a_system_vm_size_change_is_refused_at_preview_with_the_way_to_do_it() -> None:
    run = shared_run("prod", changed("prod", systemPool={"vmSize": "Standard_D16s_v5", "count": 2}),
                      preview=True, updating=frozenset({"airflow-aks"}), live_system_vm_size="Standard_D8s_v5")
    assert run.error is not None, "AKS rejects a changed vmSize of the inline pool: the preview must stop"
    message = str(run.error)
    assert "airflow-aks:systemPool.vmSize" in message
    assert "runs Standard_D8s_v5" in message and "az aks nodepool add" in message
    assert f"-n {platform.SYSTEM_POOL_NAME} --mode System --node-vm-size Standard_D16s_v5" in message


def test_an_unchanged_system_pool_passes_the_live_check() -> None:
    ok(shared_run("prod", preview=True, updating=frozenset({"airflow-aks"}),
                   live_system_vm_size="Standard_D8s_v5"))


# 3. Volume sizes -------------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "name"), [("postgresStorageGiB", names.POSTGRES),
                                           ("rabbitmqStorageGiB", names.RABBITMQ)])
def test_storage_lives_in_a_claim_the_statefulset_mounts(runs: dict[str, ProgramRun], key: str, name: str) -> None:
    # pulumi-kubernetes replaces a StatefulSet whose volumeClaimTemplates
    # change (provider/pkg/provider/diff.go): none is declared, so a size
    # change touches the claim alone.
    run = runs["prod"]
    sts = run.manifest("StatefulSet", name)
    assert "volumeClaimTemplates" not in sts["spec"], f"{name}: no volumeClaimTemplates"
    claim = run.manifest("PersistentVolumeClaim", f"{name}-data")
    assert {"name": "data", "persistentVolumeClaim": {"claimName": f"{name}-data"}} in \
        sts["spec"]["template"]["spec"]["volumes"]
    bigger = ok(shared_run("prod", changed("prod", **{key: 100})))
    assert bigger.manifest("StatefulSet", name) == sts, f"{name}: the StatefulSet is unchanged"
    assert bigger.manifest("PersistentVolumeClaim", f"{name}-data")["spec"]["resources"]["requests"] == \
        {"storage": "100Gi"}
    assert claim["spec"]["resources"]["requests"]["storage"] != "100Gi"


def test_claims_wait_for_nothing_but_the_namespace_and_statefulsets_wait_for_them(runs: dict[str, ProgramRun]) -> None:
    run = runs["prod"]
    for component in ("postgres", "rabbitmq"):
        claim = run.options_of(f"workloads-{component}-data")
        sts = run.options_of(f"workloads-{component}-statefulset")
        assert claim.resource in sts.depends_on, f"workloads-{component}-statefulset waits for its claim"
        assert claim.protect is True, f"workloads-{component}-data: prod protects the disk"


def test_dev_claims_are_not_protected(runs: dict[str, ProgramRun]) -> None:
    assert runs["dev"].options_of("workloads-postgres-data").protect is False


# 4. ConfigMaps are updated in place, and what reads them waits for them ---------------------


@pytest.mark.parametrize("stack", ["dev", "prod", "local"])
def test_the_kubernetes_provider_updates_config_maps_in_place(stack: str) -> None:
    # pulumi-kubernetes replaces a changed ConfigMap unless the provider has
    # enableConfigMapMutable (provider/pkg/provider/provider.go).
    [provider] = ok(shared_run(stack)).of_type("pulumi:providers:kubernetes")
    assert provider.inputs["enableConfigMapMutable"] == "true", f"{provider.name}: enableConfigMapMutable"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_everything_that_mounts_a_config_map_depends_on_it(runs: dict[str, ProgramRun], stack: str) -> None:
    run = runs[stack]
    config_maps = {plain(r.inputs)["metadata"]["name"]: run.options_of(r.name).resource
                   for r in run.of_type("kubernetes:core/v1:ConfigMap")}
    checked = 0
    for r in run.resources:
        if r.type not in ("kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:StatefulSet",
                          "kubernetes:batch/v1:Job"):
            continue
        pod = plain(r.inputs)["spec"]["template"]["spec"]
        used = {v["configMap"]["name"] for v in pod.get("volumes", []) if "configMap" in v}
        used |= {ref["configMapRef"]["name"] for c in pod["containers"] for ref in c.get("envFrom", [])}
        for name in used:
            assert config_maps[name] in run.options_of(r.name).depends_on, f"{r.name} must depend on {name}"
            checked += 1
    assert checked >= 13


# 5. The build context does not depend on where the project is checked out --------------------
# (nor on the checkout's file modes: tests/test_image_context.py)


def test_no_declared_input_carries_the_checkout_path(runs: dict[str, ProgramRun]) -> None:
    # pulumi-docker-build compares context.location and dockerfile.location as
    # strings (provider/internal/image.go, Diff) and resolves relative paths
    # against the program's directory, where `pulumi` runs it.
    for stack, run in runs.items():
        for r in run.resources:
            assert str(ROOT) not in repr(r.inputs), f"{stack}: {r.name} holds {ROOT}"
    image = runs["prod"].one("docker-build:index:Image")
    assert (image.inputs["context"]["location"], image.inputs["dockerfile"]["location"]) == (
        "build/image-context/app", "build/image-context/app/Dockerfile")
    assert (ROOT / image.inputs["dockerfile"]["location"]).is_file()


def test_the_context_path_is_relative_to_the_project(tmp_path: Path) -> None:
    assert image.build_context_path(APP_DIR) == "app"
    assert image.build_context_path(tmp_path / "x" / "app", tmp_path / "x") == "app"
    (tmp_path / "x" / "app").mkdir(parents=True)
    (tmp_path / "x" / "app" / "Dockerfile").write_text("FROM scratch\n")
    assert image.prepare_build_context(tmp_path / "x" / "app", tmp_path / "x") == "build/image-context/app"


# 6. AcrPull stays put in the preview of a cluster update -------------------------------------


def test_acr_pull_principal_is_known_in_the_preview_of_a_cluster_update() -> None:
    # The cluster's identityProfile is unknown in such a preview
    # (pulumi-azure-native provider.go, Update with preview: inputs projected
    # onto outputs), and a changed principalId replaces a RoleAssignment
    # (provider/pkg/gen/replacement.go).
    run = ok(shared_run("prod", changed("prod", systemPool={"vmSize": "Standard_D8s_v5", "count": 3}),
                         preview=True, updating=frozenset({"airflow-aks"})))
    [role] = [r for r in run.of_type(ROLE) if r.name == "airflow-acr-pull"]
    assert role.inputs["principalId"] == KUBELET_OBJECT_ID, f"{role.name}: principalId must stay known"
    [(_, args)] = [(t, a) for t, a in run.invokes if t == "azure-native:containerservice:getManagedCluster"]
    assert args["resourceName"] == run.outputs["clusterName"]


def test_the_kubelet_identity_would_be_unknown_from_the_cluster_outputs() -> None:
    """What the mocks do for a cluster under update: no identityProfile (the reason for the read)."""
    run = ok(shared_run("prod", preview=True, updating=frozenset({"airflow-aks"})))
    [cluster] = run.of_type(AKS)
    assert "identityProfile" not in cluster.inputs


# 7. Lowering parallelism: the workers go before their nodes ------------------------------------

WORKERS = "workloads-airflow-worker"
E4 = "we4sv3"  # platform.worker_pool_name("Standard_E4s_v3"), tested above


def deployed_pool(count: int, autoscale: bool = False, max_count: int | None = None) -> dict[str, Any]:
    """A worker pool as getManagedCluster lists it for a deployed prod stack."""
    return {"name": E4, "count": count, "vmSize": "Standard_E4s_v3", "mode": "User",
            "enableAutoScaling": autoscale, **({"maxCount": max_count} if max_count else {})}


def scaled(parallelism: int, live: dict[str, Any], preview: bool = True) -> ProgramRun:
    # workerScaling fixed: the program, not KEDA, sets the worker replicas.
    return ok(shared_run("prod", changed("prod", parallelism=parallelism, workerScaling="fixed"), preview=preview,
                          updating=frozenset({"airflow-aks"}), live_worker_pools=[live]))


def pool_of(run: ProgramRun) -> tuple[str, Any]:
    [pool] = [o for o in run.options if o.type == POOL]
    return pool.name, run.options_of(pool.name)


def registration_order(run: ProgramRun) -> list[str]:
    return [r.name for r in run.resources]


def test_which_side_of_a_scale_change_goes_first() -> None:
    pool = type("Profile", (), {"name": "we4sv3", "count": 4, "enable_auto_scaling": False, "max_count": None})
    assert platform.workers_shrink_first([pool], "we4sv3", 2), "fewer nodes: workers first"
    assert not platform.workers_shrink_first([pool], "we4sv3", 4)
    assert not platform.workers_shrink_first([pool], "we4sv3", 6), "more nodes: the pool first"
    assert not platform.workers_shrink_first([pool], "we8sv5", 1), "a new pool is created first"
    assert not platform.workers_shrink_first(None, "we4sv3", 1), "nothing read yet (a first preview)"
    auto = type("Profile", (), {"name": "we4sv3", "count": 1, "enable_auto_scaling": True, "max_count": 6})
    assert platform.workers_shrink_first([auto], "we4sv3", 4), "a lower autoscaler ceiling: workers first"


def test_lowering_parallelism_shrinks_the_workers_before_the_pool() -> None:
    # prod runs 4 x E4s_v3 (28 workers); 500 tasks need 14 workers on 2 nodes.
    run = scaled(500, deployed_pool(4))
    name, pool = pool_of(run)
    assert plain(run.one(POOL).inputs)["count"] == 2, f"{name}: the plan's node count"
    assert WORKERS in pool.waits_for(), f"{name}: a shrinking pool waits for the worker StatefulSet"
    assert name not in run.options_of(WORKERS).waits_for(), f"{WORKERS}: must not wait for the pool it lets shrink"
    order = registration_order(run)
    assert order.index(WORKERS) < order.index(name), f"{name} is updated after {WORKERS}"


def test_raising_parallelism_grows_the_pool_before_the_workers() -> None:
    run = scaled(1000, deployed_pool(2))
    name, pool = pool_of(run)
    assert name in run.options_of(WORKERS).waits_for(), f"{WORKERS}: more workers wait for their nodes"
    assert WORKERS not in pool.waits_for(), f"{name}: a growing pool waits for nothing of the workers"
    order = registration_order(run)
    assert order.index(name) < order.index(WORKERS), f"{WORKERS} is updated after {name}"


def test_a_first_deployment_creates_nodes_before_workers() -> None:
    # No live pool (a new stack, or a new VM size's pool): nodes first.
    run = ok(shared_run("prod", preview=True))
    name, pool = pool_of(run)
    assert name in run.options_of(WORKERS).waits_for() and WORKERS not in pool.waits_for()
    assert plain(run.one(POOL).inputs)["maxCount"] == 3, f"{name}: known in a first preview"


def test_lowering_an_autoscaled_pool_ceiling_also_waits_for_the_workers() -> None:
    config = changed("prod", workerPool={"vmSize": "Standard_E4s_v3", "minCount": 0, "maxCount": 2},
                     parallelism=500)
    run = ok(shared_run("prod", config, preview=True, updating=frozenset({"airflow-aks"}),
                         live_worker_pools=[deployed_pool(3, autoscale=True, max_count=4)]))
    name, pool = pool_of(run)
    assert WORKERS in pool.waits_for(), f"{name}: a lower maxCount waits for the worker StatefulSet"


def test_the_worker_scale_down_completes_only_when_removed_workers_have_exited() -> None:
    # pulumi-kubernetes provider/pkg/metadata/readiness.go (ReadyCondition):
    # waitFor replaces the default StatefulSet await on create and update,
    # and skipAwait would override it, so the worker must not carry skipAwait.
    fixed = ok(shared_run("prod", changed("prod", workerScaling="fixed")))
    sts = fixed.manifest("StatefulSet", names.WORKER)
    annotations = sts["metadata"]["annotations"]
    assert "pulumi.com/skipAwait" not in annotations, f"{names.WORKER}: skipAwait would end the wait at once"
    assert annotations["pulumi.com/waitFor"] == f"jsonpath={{.status.replicas}}={sts['spec']['replicas']}"
    grace = sts["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert int(annotations["pulumi.com/timeoutSeconds"]) > grace, f"{names.WORKER}: the wait outlasts a warm shutdown"


def test_node_upgrades_drain_a_worker_node_for_as_long_as_its_tasks_may_run(runs: dict[str, ProgramRun]) -> None:
    pool = plain(runs["prod"].one(POOL).inputs)
    grace = runs["prod"].manifest("StatefulSet", names.WORKER)["spec"]["template"]["spec"][
        "terminationGracePeriodSeconds"]
    drain = pool["upgradeSettings"]["drainTimeoutInMinutes"]
    assert drain * 60 > grace and drain > 30, "beyond a worker's warm shutdown and AKS's 30-minute default"
    assert capacity.worker_drain_minutes(7 * 24 * 3600) == 1440, "AKS's ceiling"


def test_the_autoscaler_leaves_nodes_with_busy_workers_alone(runs: dict[str, ProgramRun]) -> None:
    template = runs["prod"].manifest("StatefulSet", names.WORKER)["spec"]["template"]
    assert template["metadata"]["annotations"]["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false", \
        f"{names.WORKER}: pods the cluster autoscaler must not evict to consolidate nodes"


# 8. Tier ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("stack", "tier"), [("dev", "Free"), ("prod", "Standard")])
def test_cluster_tier_from_config(runs: dict[str, ProgramRun], stack: str, tier: str) -> None:
    cluster = runs[stack].one(AKS)
    assert cluster.inputs["sku"] == {"name": "Base", "tier": tier}, f"{cluster.name}: sku"


# 9. RabbitMQ 4.3 -------------------------------------------------------------------------------


def test_celery_runs_with_the_settings_module_the_image_ships(runs: dict[str, ProgramRun]) -> None:
    cfg = runs["prod"].manifest("ConfigMap", names.CONFIG_MAP)["data"]["airflow.cfg"]
    assert f"celery_config_options = {names.CELERY_CONFIG_OPTIONS}" in cfg
    module, _, attr = names.CELERY_CONFIG_OPTIONS.rpartition(".")
    source = (APP_DIR / "config" / f"{module}.py").read_text()
    assert f"{attr} = {{" in source and '"control_queue_exclusive": True' in source
    assert "COPY --chown=airflow:root config/ /opt/airflow/config/" in (APP_DIR / "Dockerfile").read_text()


def test_the_image_pins_the_celery_and_kombu_the_tests_run() -> None:
    def pins(path: Path) -> dict[str, str]:
        found = {}
        for line in path.read_text().splitlines():
            name, sep, version = line.partition("==")
            if sep and name.strip().lower() in ("celery", "kombu"):
                found[name.strip().lower()] = version.strip()
        return found

    constraints = APP_DIR / "constraints" / f"constraints-{DEFAULTS['airflowVersion']}.txt"
    assert pins(APP_DIR / "platform-requirements.txt") == pins(constraints) != {}


QOS_GLOBAL = """
import json, types
from celery.worker.consumer.tasks import Tasks
from kombu.transport.pyamqp import Transport

def qos_global(version):
    server = types.SimpleNamespace(server_properties={"product": "RabbitMQ", "version": version})
    connection = types.SimpleNamespace(qos_semantics_matches_spec=Transport.qos_semantics_matches_spec(None, server))
    app = types.SimpleNamespace(conf=types.SimpleNamespace(worker_detect_quorum_queues=False))
    return Tasks.qos_global(None, types.SimpleNamespace(connection=connection, app=app))

print(json.dumps({v: qos_global(v) for v in ("3.13.7", "4.2.0", "4.3.0")}))
"""


@pytest.mark.real
def test_the_pinned_celery_sets_no_global_qos_on_rabbitmq_4(tmp_path: Path) -> None:
    # RabbitMQ 4.3 denies global QoS (its global_qos deprecated feature);
    # celery's worker asks kombu whether the broker's QoS follows the spec.
    done = run_airflow_python(QOS_GLOBAL, home=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    decided = json.loads(done.stdout.strip().splitlines()[-1])
    assert decided == {"3.13.7": True, "4.2.0": False, "4.3.0": False}, decided


# Smaller points --------------------------------------------------------------------------------


def test_a_401_from_the_token_exchange_blames_the_entra_token(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(request: object, timeout: float) -> None:
        raise urllib.error.HTTPError("https://r.azurecr.io/oauth2/exchange", 401, "Unauthorized", None, None)

    monkeypatch.setattr(acr_auth.urllib.request, "urlopen", refuse)
    with pytest.raises(RuntimeError) as err:
        acr_auth.exchange_for_refresh_token("r.azurecr.io", "tenant", "token")
    assert "rejected the Entra access token (HTTP 401)" in str(err.value)
    assert "push rights" not in str(err.value)


def test_deferred_tasks_logs_have_a_service(runs: dict[str, ProgramRun]) -> None:
    run = runs["prod"]
    sts = run.manifest("StatefulSet", names.TRIGGERER)
    service = run.manifest("Service", names.TRIGGERER)
    cfg = run.manifest("ConfigMap", names.CONFIG_MAP)["data"]["airflow.cfg"]
    assert f"trigger_log_server_port = {names.TRIGGERER_LOG_PORT}" in cfg
    assert service["spec"]["clusterIP"] == "None", f"{names.TRIGGERER}: headless, one DNS name per pod"
    assert sts["spec"]["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["selector"].items() <= sts["spec"]["template"]["metadata"]["labels"].items()
    assert service["spec"]["ports"] == [{"name": "triggerer-logs", "port": names.TRIGGERER_LOG_PORT,
                                         "targetPort": "triggerer-logs"}]
    [container] = sts["spec"]["template"]["spec"]["containers"]
    assert {"name": "triggerer-logs", "containerPort": names.TRIGGERER_LOG_PORT} in container["ports"]



# KEDA (issue 11) -------------------------------------------------------------------------------


def test_prod_workers_scale_with_keda_from_zero_to_the_plan(runs: dict[str, ProgramRun]) -> None:
    run = runs["prod"]
    cluster = plain(run.one(AKS).inputs)
    assert cluster["workloadAutoScalerProfile"] == {"keda": {"enabled": True}}, "AKS's managed KEDA add-on"
    scaler = run.manifest("ScaledObject", names.WORKER)["spec"]
    assert scaler["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": names.WORKER}
    assert (scaler["minReplicaCount"], scaler["maxReplicaCount"]) == (0, 28)
    # Beside it, the cron trigger of the pre-warm (tests/test_prewarm.py).
    [trigger] = [t for t in scaler["triggers"] if t["type"] == "postgresql"]
    assert trigger["authenticationRef"] == {"name": "airflow-keda"}
    assert "/ 36)" in trigger["metadata"]["query"], "divided by workerConcurrency"
    assert trigger["metadata"]["host"].startswith(names.POSTGRES + "."), "straight to PostgreSQL, not PgBouncer"
    auth = run.manifest("TriggerAuthentication", "airflow-keda")["spec"]
    # KEDA's own read-only role's password (tests/test_database_roles.py).
    assert auth["secretTargetRef"] == [{"parameter": "password", "name": names.POSTGRES_SECRET,
                                        "key": "keda-password"}]


def test_a_later_up_leaves_the_worker_replicas_to_keda(runs: dict[str, ProgramRun]) -> None:
    run = runs["prod"]
    assert run.options_of(WORKERS).ignore_changes == ["spec.replicas"], f"{WORKERS}: KEDA owns spec.replicas"
    sts = run.manifest("StatefulSet", names.WORKER)
    assert sts["spec"]["replicas"] == 0 and sts["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true"
    scaler = run.options_of("workloads-airflow-worker-scaler")
    assert run.options_of(WORKERS).resource in scaler.depends_on, "the ScaledObject comes after its target"


# 9. A cluster made before the NetworkPolicy engine is kept, never replaced -------------------


def test_a_cluster_created_without_a_policy_engine_is_not_replaced(runs: dict[str, ProgramRun]) -> None:
    """A cluster created before the engine (no networkPolicy, no networkDataplane)
    against today's program: pulumi-azure-native replaces ManagedCluster for
    either (provider/pkg/gen/replacement.go), so the program leaves both as
    deployed (ignoreChanges) and refuses until AKS has migrated the cluster in
    place (tests/test_upgrade.py)."""
    today = runs["prod"]
    [cluster] = [r for r in today.registrations if r.type == AKS]
    assert cluster.ignore_changes == ["networkProfile.networkDataplane", "networkProfile.networkPolicy"]
    older = copy.deepcopy(cluster)
    profile = older.inputs["networkProfile"]
    for key in ("networkPolicy", "networkDataplane"):
        assert profile.pop(key, None) is not None, f"{cluster.name}: networkProfile.{key} is declared"
    before = dataclasses.replace(today, registrations=[older if r is cluster else r for r in today.registrations])
    assert preview(before, today).step(cluster.name) is None, f"{cluster.name}: kept as deployed"
    unguarded = copy.deepcopy(cluster)
    unguarded.ignore_changes = []
    after = dataclasses.replace(today, registrations=[unguarded if r is cluster else r for r in today.registrations])
    step = preview(before, after).step(cluster.name)
    assert step is not None and step.op == "replace", f"{cluster.name}: without it, replaced"
    assert set(step.paths) == {"networkProfile.networkPolicy", "networkProfile.networkDataplane"}


# 10. RabbitMQ enables its feature flags itself ----------------------------------------------


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_rabbitmq_enables_every_stable_feature_flag_once_it_has_booted(runs: dict[str, ProgramRun],
                                                                       stack: str) -> None:
    """The next minor release refuses to start while a flag it requires is
    disabled: the postStart hook enables them after every start
    (tests/test_rabbitmq_feature_flags.py runs it on a real node)."""
    what = f"{stack} StatefulSet/{names.RABBITMQ}"
    [container] = runs[stack].manifest("StatefulSet", names.RABBITMQ)["spec"]["template"]["spec"]["containers"]
    hook = container.get("lifecycle", {}).get("postStart")
    assert hook is not None, f"{what}: no postStart hook"
    assert hook == {"exec": {"command": ["sh", "-c", rabbitmq.ENABLE_FEATURE_FLAGS]}}, f"{what}: postStart"
    lines = [line.strip() for line in rabbitmq.ENABLE_FEATURE_FLAGS.splitlines()]
    wait = "until rabbitmqctl --quiet await_startup --timeout 60; do"
    enable = "rabbitmqctl --quiet enable_feature_flag all >>/proc/1/fd/1 2>&1 ||"
    assert wait in lines and enable in lines and lines.index(wait) < lines.index(enable), \
        f"{what}: postStart waits for the node, then enables every stable flag"
    assert lines[-1] == "exit 0", f"{what}: a failed postStart would kill the broker; the hook never fails"
