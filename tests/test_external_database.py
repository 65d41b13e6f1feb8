"""`database: azure` on the Kubernetes side, under Pulumi mocks: no PostgreSQL in
the cluster, PgBouncer and every direct client onto the flexible server over
TLS, and NetworkPolicies that let exactly those clients reach its subnet.

The program runs for prod with `database: azure` as __main__.py wires it: the
flexible server components/azure declares (the mocks answer its FQDN as Azure
names a server in a VNet) is what Workloads connects to.
"""

from __future__ import annotations

import shutil
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, parse_qs, urlsplit

import kubernetes_validate
import pytest

from components.config import stack_file_config
from components.kubernetes import k8s
from components.kubernetes.external_database import ExternalDatabase, server_root_cas
from components.kubernetes.pgbouncer import CONFIG_DIR, ROOT_CAS_KEY
from components.kubernetes.secrets import DIRECT_CONN_KEY, PASSWORD_KEY, ROLE_PASSWORD_KEYS
from components.kubernetes.workloads import kube_objects
from components.model import names, vnet
from components.render import EXTERNAL_DATABASE_PLACEHOLDER, SECRET_PLACEHOLDER
from tests.conftest import config_for
from tests.harness import ROOT, ProgramRun, component_secret_values, is_secret, plain, shared_run
from tests.local_airflow import declared
from tests.schemas import SchemaError, validate_manifest
from tests.test_render import manifests as rendered_manifests
from tests.test_render import render_in_process, without_deploy_time_values
from tests.test_workloads import all_strings

SERVER_TYPE = "azure-native:dbforpostgresql:Server"
# What libpq calls TLS with no fallback to plain TCP.
TLS_SSLMODES = {"require", "verify-ca", "verify-full"}
AIRFLOW_DB_COMPONENTS = {"migrate", "api-server", "scheduler", "dag-processor", "triggerer", "worker"}


def azure_config(**changes: Any) -> dict[str, Any]:
    config = {**stack_file_config("prod"), "airflow-aks:database": "azure"}
    config.update({f"airflow-aks:{k}": v for k, v in changes.items()})
    return config


def program(config: dict[str, Any]) -> ProgramRun:
    run = shared_run("prod", config)
    assert run.error is None, run.error
    return run


@pytest.fixture(scope="module")
def azure() -> ProgramRun:
    return program(azure_config())


@pytest.fixture(scope="module")
def azure_no_bouncer() -> ProgramRun:
    return program(azure_config(pgbouncer=False))


def declared_server(run: ProgramRun) -> ExternalDatabase:
    """The flexible server as the program declared it: its FQDN, admin login,
    generated admin password and delegated subnet."""
    server = run.one(SERVER_TYPE).inputs
    password = plain(server["administratorLoginPassword"])
    assert password in run.generated
    [subnet] = [plain(r.inputs)["addressPrefix"] for r in run.of_type("azure-native:network:Subnet")
                if plain(r.inputs).get("delegations")]
    return ExternalDatabase(host=run.outputs["databaseHost"], admin_user=server["administratorLogin"],
                            password=password, cidr=subnet)


@pytest.fixture(scope="module")
def server(azure: ProgramRun) -> ExternalDatabase:
    found = declared_server(azure)
    assert found.host.endswith(".postgres.database.azure.com"), "the name on the server's certificate"
    assert found.cidr == vnet.DATABASE_SUBNET_CIDR
    return found


def secret_data(run: ProgramRun, name: str) -> dict[str, str]:
    [r] = [r for r in run.of_type("kubernetes:core/v1:Secret") if plain(r.inputs)["metadata"]["name"] == name]
    return plain(r.inputs["stringData"])


def is_postgres_object(m: dict[str, Any]) -> bool:
    labels = m["metadata"].get("labels", {})
    named = m["metadata"].get("name") in (names.POSTGRES, f"{names.POSTGRES}-data") and m["kind"] != "Secret"
    return named or labels.get("app.kubernetes.io/name") == "postgres"


def test_no_postgresql_in_the_cluster(azure: ProgramRun, server: ExternalDatabase,
                                      runs: dict[str, ProgramRun]) -> None:
    in_cluster = [f"{m['kind']}/{m['metadata']['name']}" for m in runs["prod"].manifests() if is_postgres_object(m)]
    assert {"StatefulSet/airflow-postgres", "Service/airflow-postgres", "PersistentVolumeClaim/airflow-postgres-data",
            "NetworkPolicy/airflow-postgres"} <= set(in_cluster), "what the in-cluster shape declares"
    assert [m for m in azure.manifests() if is_postgres_object(m)] == []
    assert not any(r.name.endswith("-postgres") for r in azure.of_type("random:index/randomPassword:RandomPassword")), \
        "no generated database password: the server's admin password is used"
    # The postgres Secret holds the server's admin password (for the roles
    # Job alone) and the generated passwords of the roles the pods log in as.
    data = secret_data(azure, names.POSTGRES_SECRET)
    assert data.pop(PASSWORD_KEY) == server.password
    assert set(data) == set(ROLE_PASSWORD_KEYS.values()) and server.password not in data.values()


def test_pgbouncer_verifies_the_server_over_tls(azure: ProgramRun, server: ExternalDatabase) -> None:
    config_map = azure.manifest("ConfigMap", names.PGBOUNCER)["data"]
    ini = config_map["pgbouncer.ini"].splitlines()
    target = f"host={server.host} port={names.POSTGRES_PORT} dbname={names.POSTGRES_DB}"
    aliases = [line for line in ini if line.startswith(("airflow-metadata =", "airflow-result-backend ="))]
    assert len(aliases) == 2 and all(target in line for line in aliases), aliases
    settings = dict(line.split(" = ", 1) for line in ini if " = " in line and not line.startswith("airflow-"))
    assert settings["server_tls_sslmode"] == "verify-full"
    assert settings["server_tls_protocols"] == "secure"
    assert settings["stats_users"] == names.DATABASE_APP_ROLE
    # The CA file is where the pod mounts the ConfigMap's roots.
    ca_file = settings["server_tls_ca_file"]
    pod = azure.manifest("Deployment", names.PGBOUNCER)["spec"]["template"]
    [volume] = pod["spec"]["volumes"]
    [mount] = pod["spec"]["containers"][0]["volumeMounts"]
    assert mount["name"] == volume["name"] and mount["mountPath"] == CONFIG_DIR
    items = [i for s in volume["projected"]["sources"] if "configMap" in s for i in s["configMap"]["items"]]
    assert {"key": ROOT_CAS_KEY, "path": ROOT_CAS_KEY} in items and ca_file == f"{CONFIG_DIR}/{ROOT_CAS_KEY}"
    # Azure's roots, as a PEM bundle the TLS library reads.
    assert config_map[ROOT_CAS_KEY] == server_root_cas()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=config_map[ROOT_CAS_KEY])
    common_names = {v for cert in context.get_ca_certs() for rdn in cert["subject"] for k, v in rdn
                    if k == "commonName"}
    assert common_names == {"DigiCert Global Root G2", "Microsoft RSA Root Certificate Authority 2017",
                            "DigiCert Global Root CA"}
    # A changed ini or roots file rolls the pod.
    assert pod["metadata"]["annotations"][k8s.CHECKSUM_ANNOTATION] == k8s.checksum(
        config_map["pgbouncer.ini"], config_map[ROOT_CAS_KEY])
    app_password = secret_data(azure, names.POSTGRES_SECRET)[ROLE_PASSWORD_KEYS[names.DATABASE_APP_ROLE]]
    admin_password = secret_data(azure, names.POSTGRES_SECRET)[PASSWORD_KEY]
    results_password = secret_data(azure, names.POSTGRES_SECRET)[ROLE_PASSWORD_KEYS[names.DATABASE_RESULTS_ROLE]]
    # The admin's entry only lets 0.7.0's pods in until they roll; the ini's
    # user= serves them as the app role (tests/test_database_roles.py).
    expected = (f'"{names.DATABASE_APP_ROLE}" "{app_password}"\n'
                f'"{names.DATABASE_RESULTS_ROLE}" "{results_password}"\n'
                f'"{names.POSTGRES_USER}" "{admin_password}"\n')
    assert secret_data(azure, names.PGBOUNCER_SECRET)["users.txt"] == expected, \
        "PgBouncer logs in as the app and results roles, not the admin"


def database_urls(run: ProgramRun) -> dict[str, str]:
    return {k: v for k, v in component_secret_values(run).items() if "postgres" in v.partition("://")[0]}


def parse(url: str) -> SplitResult:
    # urlsplit takes no `_` in a scheme (postgresql+psycopg_async): parse the rest.
    return urlsplit("db://" + url.partition("://")[2])


@pytest.mark.parametrize("bouncer", [True, False])
def test_every_database_url_reaches_the_server_only_over_tls(azure: ProgramRun, azure_no_bouncer: ProgramRun,
                                                             bouncer: bool) -> None:
    run = azure if bouncer else azure_no_bouncer
    server = declared_server(run)
    urls = database_urls(run)
    assert set(urls) == {"sql-alchemy-conn", "sql-alchemy-conn-async", "result-backend", DIRECT_CONN_KEY}
    pgbouncer = names.service_host(names.PGBOUNCER, "airflow")
    passwords = secret_data(run, names.POSTGRES_SECRET)
    to_server = set()
    for key, url in urls.items():
        parts = parse(url)
        # The migration as the owner, the result backend as the results role, the rest as the app role.
        role = {DIRECT_CONN_KEY: names.DATABASE_OWNER_ROLE,
                "result-backend": names.DATABASE_RESULTS_ROLE}.get(key, names.DATABASE_APP_ROLE)
        assert (parts.username, parts.password) == (role, passwords[ROLE_PASSWORD_KEYS[role]]), key
        assert server.password not in url, key
        if parts.hostname == pgbouncer:
            assert bouncer and parts.port == names.PGBOUNCER_PORT, key
            continue
        assert (parts.hostname, parts.port, parts.path) == (server.host, names.POSTGRES_PORT,
                                                            f"/{names.POSTGRES_DB}"), key
        assert parse_qs(parts.query).get("sslmode", [""])[0] in TLS_SSLMODES, f"{key}: {url}"
        to_server.add(key)
    # With PgBouncer only the migration Job's URL goes direct; without it, all.
    assert to_server == ({DIRECT_CONN_KEY} if bouncer else set(urls))
    [job] = [m for m in run.manifests() if m["kind"] == "Job"
             and m["metadata"]["labels"]["app.kubernetes.io/component"] == "migrate"]
    migrate = job["spec"]["template"]["spec"]["containers"][0]
    [conn] = [e for e in migrate["env"] if e["name"] == "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert conn["valueFrom"]["secretKeyRef"] == {"name": names.env_secret("migrate"), "key": DIRECT_CONN_KEY}


def test_kedas_query_goes_to_the_server_over_tls(azure: ProgramRun, server: ExternalDatabase) -> None:
    [trigger] = [t for t in azure.manifest("ScaledObject", names.WORKER)["spec"]["triggers"]
                 if t["type"] == "postgresql"]
    meta = trigger["metadata"]
    assert (meta["host"], meta["port"], meta["userName"], meta["dbName"]) == (
        server.host, str(names.POSTGRES_PORT), names.DATABASE_KEDA_ROLE, names.POSTGRES_DB)
    assert meta["sslmode"] in TLS_SSLMODES
    auth = azure.manifest("TriggerAuthentication", trigger["authenticationRef"]["name"])
    assert auth["spec"]["secretTargetRef"] == [{"parameter": "password", "name": names.POSTGRES_SECRET,
                                                "key": ROLE_PASSWORD_KEYS[names.DATABASE_KEDA_ROLE]}]


@pytest.mark.parametrize("bouncer", [True, False])
def test_the_server_password_is_only_in_secrets(azure: ProgramRun, azure_no_bouncer: ProgramRun,
                                                bouncer: bool) -> None:
    run = azure if bouncer else azure_no_bouncer
    server = declared_server(run)
    secrets = run.of_type("kubernetes:core/v1:Secret")
    assert all(is_secret(r.inputs["stringData"]) for r in secrets), "Pulumi secrets in the state"
    holding = {plain(r.inputs)["metadata"]["name"] for r in secrets
               if any(server.password in s for s in all_strings(plain(r.inputs["stringData"])))}
    # The roles Job reads it from the postgres Secret; PgBouncer's userlist
    # keeps it for 0.7.0's pods until they roll (served as the app role). No URL carries it.
    assert holding == ({names.POSTGRES_SECRET, names.PGBOUNCER_SECRET} if bouncer else {names.POSTGRES_SECRET})
    for m in run.manifests():
        if m["kind"] != "Secret":
            assert not [s for s in all_strings(m) if server.password in s or "sslmode=" in s], \
                f"{m['kind']}/{m['metadata'].get('name')}: a database password or URL outside a Secret"


def egress_to_server(run: ProgramRun, server: ExternalDatabase) -> dict[str, list[dict[str, Any]]]:
    """Policy name -> its egress rules that name the server's subnet."""
    found: dict[str, list[dict[str, Any]]] = {}
    for m in run.manifests():
        if m["kind"] != "NetworkPolicy":
            continue
        for rule in m["spec"].get("egress", []):
            if any(peer.get("ipBlock", {}).get("cidr") == server.cidr for peer in rule.get("to", [])):
                found.setdefault(m["metadata"]["name"], []).append(rule)
    return found


@pytest.mark.parametrize("bouncer", [True, False])
def test_only_the_servers_clients_reach_its_subnet_on_5432(azure: ProgramRun, azure_no_bouncer: ProgramRun,
                                                            bouncer: bool) -> None:
    run = azure if bouncer else azure_no_bouncer
    server = declared_server(run)
    allowed = egress_to_server(run, server)
    clients = {names.PGBOUNCER, names.MIGRATE} if bouncer else {f"airflow-{c}" for c in AIRFLOW_DB_COMPONENTS}
    clients.add(names.DATABASE_ROLES)
    assert set(allowed) == clients
    for rules in allowed.values():
        assert rules == [{"ports": [{"port": names.POSTGRES_PORT, "protocol": "TCP"}],
                          "to": [{"ipBlock": {"cidr": server.cidr}}]}]
    # Nothing else may open 5432 (or every port) to anywhere, and nothing
    # in the namespace listens on 5432 any more.
    for m in run.manifests():
        if m["kind"] != "NetworkPolicy":
            continue
        name = m["metadata"]["name"]
        for rule in m["spec"].get("egress", []):
            ports = {p["port"] for p in rule.get("ports", [])}
            assert ports, f"{name}: an egress rule on every port"
            if names.POSTGRES_PORT in ports:
                assert name in clients and rule["to"] == [{"ipBlock": {"cidr": server.cidr}}], (name, rule)
        for rule in m["spec"].get("ingress", []):
            assert names.POSTGRES_PORT not in {p["port"] for p in rule.get("ports", [])}, name


def test_the_migration_job_waits_for_no_postgresql(azure: ProgramRun, runs: dict[str, ProgramRun]) -> None:
    def job_waits_for(run: ProgramRun) -> set[str]:
        job = run.options_of("workloads-airflow-migrate")
        return {r._name for r in job.depends_on}  # type: ignore[attr-defined]

    assert "workloads-postgres-statefulset" in job_waits_for(runs["prod"]), "the in-cluster shape waits for it"
    waits = job_waits_for(azure)
    assert not [n for n in waits if "postgres" in n and "secret" not in n], waits
    assert {"workloads-rabbitmq-statefulset", "workloads-pgbouncer-deployment"} <= waits
    # The Secrets carry the server's host: the Job waits for them.
    assert {"workloads-secrets-env-migrate", "workloads-secrets-postgres"} <= waits


@pytest.mark.parametrize("bouncer", [True, False])
def test_every_object_validates_strictly(azure: ProgramRun, azure_no_bouncer: ProgramRun, bouncer: bool) -> None:
    run = azure if bouncer else azure_no_bouncer
    version = config_for("prod").settings.kubernetes_version
    version = version if version.count(".") == 2 else f"{version}.0"
    failures = []
    for m in run.manifests():
        try:
            validate_manifest(m, version)
        except (kubernetes_validate.ValidationError, SchemaError) as err:
            failures.append(f"{m['kind']}/{m['metadata'].get('name')}: {err}")
    assert not failures, "\n".join(failures)
    assert {m["kind"] for m in run.manifests()} >= {"NetworkPolicy", "ScaledObject", "ConfigMap", "Secret"}


def test_the_external_database_comes_with_azure_and_only_with_it() -> None:
    azure_stack, in_cluster = config_for("prod", database="azure"), config_for("prod")
    with pytest.raises(ValueError, match="database: azure"):
        kube_objects(azure_stack, "image", {}, None, None)
    with pytest.raises(ValueError, match="database: azure"):
        kube_objects(in_cluster, "image", {}, None, EXTERNAL_DATABASE_PLACEHOLDER)


def test_the_offline_render_of_an_azure_stack_is_what_the_program_declares(tmp_path: Path) -> None:
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    stack = (ROOT / "Pulumi.prod.yaml").read_text() + "  airflow-aks:database: azure\n"
    (tmp_path / "Pulumi.prod.yaml").write_text(stack)
    out = tmp_path / "out"
    render_in_process("prod", out, project_dir=tmp_path)
    rendered = rendered_manifests(out)
    assert not [m for m in rendered if is_postgres_object(m)]
    [ini] = [m for m in rendered if m["kind"] == "ConfigMap" and m["metadata"]["name"] == names.PGBOUNCER]
    placeholder = EXTERNAL_DATABASE_PLACEHOLDER
    assert placeholder.host.startswith("<") and f"host={placeholder.host} " in ini["data"]["pgbouncer.ini"]
    for m in rendered:
        validate_manifest(m, "1.35.0")
        if m["kind"] == "Secret":
            assert set(m["stringData"].values()) == {SECRET_PLACEHOLDER}
    # The program, given the same placeholder server, declares the same objects.
    program = declared("prod", azure_config(), placeholder)
    assert without_deploy_time_values(rendered) == without_deploy_time_values(program.manifests())


def test_pgbouncer_and_the_migration_wait_for_the_servers_database_and_parameters() -> None:
    """The server's `airflow` database and its parameters (max_connections)
    take the StatefulSet's place in what PgBouncer and the migration Job wait
    for: on a first `pulumi up` the Job would otherwise migrate a database that
    does not exist yet."""
    run = program(azure_config())
    wanted = {r.name for r in run.resources if r.type in (
        "azure-native:dbforpostgresql:Database", "azure-native:dbforpostgresql:Configuration")}
    assert len(wanted) >= 3, f"the airflow database and at least two parameters: {wanted}"
    job = run.options_of("workloads-airflow-migrate")
    assert wanted <= {r._name for r in job.depends_on}, "the migration Job waits for the server's database"  # type: ignore[attr-defined]
    roles = run.options_of("workloads-database-roles-database-roles")
    assert wanted <= {r._name for r in roles.depends_on}, "the roles Job waits for the server's database"  # type: ignore[attr-defined]
    bouncer = run.options_of("workloads-pgbouncer-deployment")
    assert wanted <= {r._name for r in bouncer.depends_on}, "PgBouncer waits for the server's database"  # type: ignore[attr-defined]
