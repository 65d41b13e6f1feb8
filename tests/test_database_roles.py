"""The database's least-privilege roles (issue 28): the SQL, the Job that runs
it, what logs in as which role, and (real) what each role may do on a real
PostgreSQL after a real migration."""

from __future__ import annotations

import subprocess
from typing import Any

import psycopg
import pytest

from components.kubernetes.database_roles import SQL_ENV
from components.kubernetes.keda import QUERY_COLUMNS, QUERY_TABLE, TRIGGER_AUTH, worker_query
from components.kubernetes.secrets import PASSWORD_KEY, ROLE_PASSWORD_KEYS
from components.model import names
from components.model.database_roles import ROLE_PASSWORD_ENVS, after_migration_sql, roles_sql
from tests.harness import ProgramRun, component_secret_values, plain, shared_run, stack_file_config
from tests.local_airflow import LocalDeployment, Services, declared, image_command, stack_config

ROLES = (names.DATABASE_OWNER_ROLE, names.DATABASE_APP_ROLE, names.DATABASE_KEDA_ROLE, names.DATABASE_RESULTS_ROLE)


# -- the SQL -------------------------------------------------------------------

def test_the_script_makes_each_role_once_and_sets_its_password_from_the_environment() -> None:
    sql = roles_sql()
    assert sql.startswith("\\set ON_ERROR_STOP on\n"), "psql stops at the first error"
    for role, env in ROLE_PASSWORD_ENVS.items():
        assert f"\\getenv {role}_password {env}\n" in sql, f"{role}: its password from {env}"
        assert f"ALTER ROLE {role} WITH LOGIN PASSWORD :'{role}_password';" in sql, role
    assert "CREATE ROLE %I" in sql and "WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) \\gexec" in sql
    assert "SUPERUSER" not in sql and "CREATEROLE" not in sql, "no role gets (or names) an attribute beyond LOGIN"


def test_the_owner_takes_the_database_and_what_a_superuser_made_in_it() -> None:
    sql = roles_sql("airflow")
    owner = names.DATABASE_OWNER_ROLE
    assert f"ALTER DATABASE airflow OWNER TO {owner};" in sql
    assert f"OWNER TO {owner}', CASE c.relkind" in sql and f"c.relowner <> '{owner}'::regrole" in sql
    assert sql.index(f"GRANT {owner} TO CURRENT_USER;") < sql.index("ALTER DATABASE"), \
        "the admin may SET ROLE to the owner before it hands it anything"


def test_the_app_role_gets_dml_now_and_on_what_later_migrations_create() -> None:
    sql = roles_sql()
    owner, app = names.DATABASE_OWNER_ROLE, names.DATABASE_APP_ROLE
    assert f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {app};" in sql
    assert (f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE "
            f"ON TABLES TO {app};") in sql
    assert f"ON SEQUENCES TO {app};" in sql
    grants = sql[sql.index(f"SET ROLE {owner};"):sql.index("RESET ROLE;")]
    assert "GRANT" in grants and "TRUNCATE" not in sql and "CREATE ON SCHEMA" not in sql


def test_kedas_grant_is_the_columns_of_its_query_and_the_results_role_celerys_tables() -> None:
    assert after_migration_sql(QUERY_TABLE, QUERY_COLUMNS).splitlines() == [
        f"GRANT SELECT (state, queue) ON public.task_instance TO {names.DATABASE_KEDA_ROLE};",
        # and the results role's: Celery's tables and their sequences, nothing else.
        "GRANT SELECT, INSERT, UPDATE, DELETE ON public.celery_taskmeta, public.celery_tasksetmeta "
        f"TO {names.DATABASE_RESULTS_ROLE};",
        "GRANT USAGE, SELECT, UPDATE ON SEQUENCE public.task_id_sequence, public.taskset_id_sequence "
        f"TO {names.DATABASE_RESULTS_ROLE};"]
    query = worker_query(16)
    assert f"FROM {QUERY_TABLE} " in query and all(c in query for c in QUERY_COLUMNS)
    with pytest.raises(ValueError, match="plain SQL identifier"):
        after_migration_sql("task_instance; DROP TABLE x", ["state"])
    with pytest.raises(ValueError, match="at least one column"):
        after_migration_sql(QUERY_TABLE, [])


# -- what the program declares ---------------------------------------------------

@pytest.fixture(scope="module")
def prod() -> ProgramRun:
    run = shared_run("prod", stack_file_config("prod"))
    assert run.error is None, run.error
    return run


def roles_job(run: ProgramRun) -> dict[str, Any]:
    [job] = [m for m in run.manifests() if m["kind"] == "Job"
             and m["metadata"]["labels"]["app.kubernetes.io/component"] == "database-roles"]
    return job


def test_the_roles_job_runs_the_script_as_the_superuser(prod: ProgramRun) -> None:
    [container] = roles_job(prod)["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env[SQL_ENV] == roles_sql(), "roles Job: the builder's script"
    assert env["PGUSER"] == names.POSTGRES_USER and env["PGHOST"].startswith(f"{names.POSTGRES}.")
    assert env["PGPASSWORD"] == {"secretKeyRef": {"name": names.POSTGRES_SECRET, "key": PASSWORD_KEY}}
    for role, var in ROLE_PASSWORD_ENVS.items():
        assert env[var] == {"secretKeyRef": {"name": names.POSTGRES_SECRET, "key": ROLE_PASSWORD_KEYS[role]}}, role
    assert "psql" in container["command"][-1] and container["image"] == prod.manifest(
        "StatefulSet", names.POSTGRES)["spec"]["template"]["spec"]["containers"][0]["image"]


def test_pgbouncer_and_the_migration_wait_for_the_roles(prod: ProgramRun) -> None:
    roles = prod.options_of("workloads-database-roles-database-roles")
    assert prod.options_of("workloads-postgres-statefulset").resource in roles.depends_on, \
        "roles Job: after the server"
    for name in ("workloads-pgbouncer-deployment", "workloads-airflow-migrate"):
        assert roles.resource in prod.options_of(name).depends_on, f"{name}: after the roles Job"


def test_each_client_logs_in_as_its_own_role(prod: ProgramRun) -> None:
    secrets = {plain(r.inputs)["metadata"]["name"]: plain(r.inputs["stringData"])
               for r in prod.of_type("kubernetes:core/v1:Secret")}
    env = component_secret_values(prod)
    for key in ("sql-alchemy-conn", "sql-alchemy-conn-async"):
        assert f"://{names.DATABASE_APP_ROLE}:" in env[key], f"{names.ENV_SECRET}-*/{key}: the app role"
    assert f"://{names.DATABASE_RESULTS_ROLE}:" in env["result-backend"], \
        f"{names.ENV_SECRET}-*/result-backend: the results role"
    assert f"://{names.DATABASE_OWNER_ROLE}:" in env["sql-alchemy-conn-direct"], "the migration: the owner"
    assert secrets[names.PGBOUNCER_SECRET]["users.txt"].startswith(f'"{names.DATABASE_APP_ROLE}" ')
    assert not any(f"://{names.POSTGRES_USER}:" in v for v in env.values() if "postgres" in v.split("://")[0]), \
        "no database URL as the superuser"
    [trigger] = [t for t in prod.manifest("ScaledObject", names.WORKER)["spec"]["triggers"]
                 if t["type"] == "postgresql"]
    assert trigger["metadata"]["userName"] == names.DATABASE_KEDA_ROLE
    auth = prod.manifest("TriggerAuthentication", TRIGGER_AUTH)["spec"]["secretTargetRef"]
    assert auth == [{"parameter": "password", "name": names.POSTGRES_SECRET, "key": "keda-password"}]


def test_pgbouncer_serves_every_client_as_its_pools_role(prod: ProgramRun) -> None:
    """The userlist keeps 0.7.0's login for pods that have not rolled yet; the
    ini's user= makes every server connection the app role's."""
    secrets = {plain(r.inputs)["metadata"]["name"]: plain(r.inputs["stringData"])
               for r in prod.of_type("kubernetes:core/v1:Secret")}
    users = secrets[names.PGBOUNCER_SECRET]["users.txt"].splitlines()
    assert [u.split('"')[1] for u in users] == [names.DATABASE_APP_ROLE, names.DATABASE_RESULTS_ROLE,
                                                names.POSTGRES_USER], \
        f"{names.PGBOUNCER_SECRET}: the app and results roles, then the upgrade's login"
    ini = prod.manifest("ConfigMap", names.PGBOUNCER)["data"]["pgbouncer.ini"]
    pools = dict(line.split(" = ", 1) for line in ini.splitlines() if " = host=" in line)
    assert f" user={names.DATABASE_APP_ROLE} " in pools[names.PGBOUNCER_METADATA_DB], \
        f"{names.PGBOUNCER} pgbouncer.ini: the metadata pool logs in as the app role"
    assert f" user={names.DATABASE_RESULTS_ROLE} " in pools[names.PGBOUNCER_RESULT_BACKEND_DB], \
        f"{names.PGBOUNCER} pgbouncer.ini: the result backend's pool logs in as the results role"


def test_the_roles_passwords_are_generated_secrets(prod: ProgramRun) -> None:
    generated = {r.name for r in prod.of_type("random:index/randomPassword:RandomPassword")}
    assert {f"workloads-secrets-postgres-{r.removeprefix('airflow_')}" for r in ROLES} <= generated
    [pg] = [r for r in prod.of_type("kubernetes:core/v1:Secret")
            if plain(r.inputs)["metadata"]["name"] == names.POSTGRES_SECRET]
    assert set(plain(pg.inputs["stringData"])) == {PASSWORD_KEY, *ROLE_PASSWORD_KEYS.values()}


# -- real: a 0.7.0 database, the roles, the migration ---------------------------

def as_role(d: LocalDeployment, role: str) -> psycopg.Connection:
    password = d._secret(names.POSTGRES_SECRET)[ROLE_PASSWORD_KEYS[role]]
    return psycopg.connect(host="127.0.0.1", port=d.services.postgres.port, user=role, password=password,
                           dbname=d.database, autocommit=True)


def migrate_as_release_0_7_0(d: LocalDeployment) -> None:
    """What 0.7.0 left: the schema migrated by the superuser and Celery's
    tables made on the workers' first use, as that superuser too."""
    superuser = d._secret(names.POSTGRES_SECRET)[PASSWORD_KEY]
    url = (f"postgresql+psycopg2://{names.POSTGRES_USER}:{superuser}@127.0.0.1:{d.services.postgres.port}/"
           f"{d.database}")
    job = d.workloads["migrate"]
    env = d.process_env(job) | {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url}
    for command in (["db", "migrate"],
                    ["python", "-c", "import os, sqlalchemy; from celery.backends.database.models import "
                     "ResultModelBase as B; B.metadata.create_all(sqlalchemy.create_engine("
                     "os.environ['AIRFLOW__DATABASE__SQL_ALCHEMY_CONN']))"]):
        done = subprocess.run(image_command(command), env=env, cwd=d.home, capture_output=True, text=True,
                              timeout=600, check=False)
        assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.real
def test_a_0_7_0_database_gets_its_roles_and_each_role_only_its_rights(services: Services) -> None:
    d = LocalDeployment(declared("dev", stack_config("dev")), services)
    create_roles = d.create_roles
    d.create_roles = lambda *args: None  # type: ignore[method-assign]
    try:
        d.prepare()
        migrate_as_release_0_7_0(d)
        owners = {r[0] for r in d.query("SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class c JOIN "
                                        "pg_namespace n ON n.oid = relnamespace WHERE nspname = 'public'")}
        assert owners == {names.POSTGRES_USER}, "the 0.7.0 shape: the superuser owns it all"
        create_roles(*d.roles_job())
        # Before any migration: PgBouncer's result pool may already log in as
        # the results role, so the roles Job grants it 0.7.0's Celery tables.
        with as_role(d, names.DATABASE_RESULTS_ROLE) as results:
            results.execute("INSERT INTO celery_taskmeta (id, task_id, status) "
                            "VALUES (nextval('task_id_sequence'), 'before-migrate', 'SUCCESS')")
            results.execute("DELETE FROM celery_taskmeta WHERE task_id = 'before-migrate'")
        d.migrate()
        owners = {r[0] for r in d.query("SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class c JOIN "
                                        "pg_namespace n ON n.oid = relnamespace WHERE nspname = 'public'")}
        assert owners == {names.DATABASE_OWNER_ROLE}, "every table and sequence is the owner's"
        assert d.query("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
                       [d.database]) == [(names.DATABASE_OWNER_ROLE,)]
        supers = dict(d.query("SELECT rolname, rolsuper FROM pg_roles WHERE rolname = ANY(%s)", [list(ROLES)]))
        assert supers == dict.fromkeys(ROLES, False), "no role of Airflow's is a superuser"
        with as_role(d, names.DATABASE_APP_ROLE) as app:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute("COPY (SELECT 1) TO PROGRAM 'true'")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute("CREATE TABLE public.not_yours (x int)")
            app.execute("INSERT INTO variable (key, val, is_encrypted) VALUES ('roles-test', 'x', false)")
            app.execute("INSERT INTO celery_taskmeta (id, task_id, status) "
                        "VALUES (nextval('task_id_sequence'), 'roles-test', 'PENDING')")
            assert app.execute("SELECT count(*) FROM celery_taskmeta").fetchone() == (1,)
        # The workers' result backend login: Celery's tables, nothing of Airflow's.
        with as_role(d, names.DATABASE_RESULTS_ROLE) as results:
            results.execute("INSERT INTO celery_taskmeta (id, task_id, status) "
                            "VALUES (nextval('task_id_sequence'), 'results-test', 'SUCCESS')")
            assert results.execute("SELECT count(*) FROM celery_taskmeta").fetchone() == (2,)
            for table in ("connection", "variable", "task_instance", "dag_run"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    results.execute(f"SELECT * FROM {table}")
        with as_role(d, names.DATABASE_KEDA_ROLE) as keda:
            assert keda.execute(worker_query(16)).fetchone() == (0,), "KEDA's query runs as its role"
            for table in ("connection", "variable", "celery_taskmeta"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    keda.execute(f"SELECT * FROM {table}")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                keda.execute("SELECT executor_config FROM task_instance")
        # A pod of 0.7.0 not rolled yet (a worker finishing its tasks) logs in
        # to PgBouncer with the superuser's URL and is served as the app role.
        assert d.pgbouncer is not None, "dev runs PgBouncer"
        superuser = d._secret(names.POSTGRES_SECRET)[PASSWORD_KEY]
        with psycopg.connect(host="127.0.0.1", port=d.pgbouncer.port, user=names.POSTGRES_USER,
                             password=superuser, dbname=names.PGBOUNCER_RESULT_BACKEND_DB, autocommit=True,
                             prepare_threshold=None) as old_pod:
            assert old_pod.execute("SELECT current_user").fetchone() == (names.DATABASE_RESULTS_ROLE,), \
                "pgbouncer: the 0.7.0 login is served as the result backend pool's role"
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                old_pod.execute("COPY (SELECT 1) TO PROGRAM 'true'")
        # A second run of the Job (a new template) changes nothing and fails on nothing.
        create_roles(*d.roles_job())
    finally:
        d.stop(grace=0)
