"""The metadata database's roles: the SQL that makes them and grants them what they need.

Three roles beside the superuser (in-cluster) or the flexible server's admin,
which the roles Job connects as and which nothing else of Airflow uses:

- the owner (names.DATABASE_OWNER_ROLE) owns the database and every table,
  sequence and type in `public`; only the migration Job logs in as it;
- the app role (names.DATABASE_APP_ROLE), every Airflow component's login:
  DML on every table and sequence, including those later migrations create
  (default privileges of the owner), no DDL, no superuser;
- KEDA's role (names.DATABASE_KEDA_ROLE): SELECT on the columns its query
  reads, granted after each migration (after_migration_sql), once the table
  exists;
- the results role (names.DATABASE_RESULTS_ROLE), the Celery result
  backend's login, which the workers carry: DML on Celery's two tables
  alone, granted after each migration too, so task code that reads the
  worker's URL reaches nothing of Airflow's.

The text is for psql (the PostgreSQL image's client): it reads the passwords
from the environment with \\getenv (psql 15 and later) rather than carrying
them, so the SQL itself holds no secret and can sit in the Job's template.
Every statement is idempotent: the Job runs again whenever its template
changes, on a new database as on one a 0.7.0 release left, whose tables the
superuser owns.
"""

from __future__ import annotations

from collections.abc import Sequence

from components.model import names

# The environment variables the roles Job passes the passwords in.
OWNER_PASSWORD_ENV = "DATABASE_OWNER_PASSWORD"
APP_PASSWORD_ENV = "DATABASE_APP_PASSWORD"
KEDA_PASSWORD_ENV = "DATABASE_KEDA_PASSWORD"
RESULTS_PASSWORD_ENV = "DATABASE_RESULTS_PASSWORD"
ROLE_PASSWORD_ENVS = {
    names.DATABASE_OWNER_ROLE: OWNER_PASSWORD_ENV,
    names.DATABASE_APP_ROLE: APP_PASSWORD_ENV,
    names.DATABASE_KEDA_ROLE: KEDA_PASSWORD_ENV,
    names.DATABASE_RESULTS_ROLE: RESULTS_PASSWORD_ENV,
}
# Celery's database result backend (celery/backends/database/models.py:
# Task and TaskSet, each with its id sequence): all the results role may touch.
RESULT_TABLES = ("celery_taskmeta", "celery_tasksetmeta")
RESULT_SEQUENCES = ("task_id_sequence", "taskset_id_sequence")
SCHEMA = "public"
APP_TABLE_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"
APP_SEQUENCE_PRIVILEGES = "USAGE, SELECT, UPDATE"
# pg_class.relkind -> the ALTER command that changes its owner. Sequences a
# column owns (serial, identity) follow their table and refuse their own
# ALTER (PostgreSQL docs, ALTER SEQUENCE: "cannot change ownership of an
# identity sequence"; ALTER TABLE ... OWNER recurses to owned sequences).
_RELATION_KINDS = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE",
                   "f": "FOREIGN TABLE"}


def _ident(name: str) -> str:
    """A role, table or column name as an SQL identifier; the names here are
    the program's constants, checked rather than escaped."""
    if not name.replace("_", "").isalnum() or not name[0].isalpha() or name.lower() != name:
        raise ValueError(f"not a plain SQL identifier: {name!r}")
    return name


def _create_roles() -> list[str]:
    roles = ", ".join(f"'{_ident(r)}'" for r in ROLE_PASSWORD_ENVS)
    lines = [f"\\getenv {role}_password {env}" for role, env in ROLE_PASSWORD_ENVS.items()]
    # CREATE ROLE has no IF NOT EXISTS: psql's \gexec runs what the SELECT returns.
    lines.append(f"SELECT format('CREATE ROLE %I', r) FROM unnest(ARRAY[{roles}]) AS r "
                 "WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) \\gexec")
    # Only LOGIN and the password: a CREATEROLE admin that is not a superuser
    # (the flexible server's) may not even name SUPERUSER, REPLICATION or
    # BYPASSRLS, which a role it created lacks already.
    lines += [f"ALTER ROLE {role} WITH LOGIN PASSWORD :'{role}_password';" for role in ROLE_PASSWORD_ENVS]
    return lines


def _take_ownership(owner: str, database: str) -> list[str]:
    """The database and what is in `public` to the owner: on a stack from
    0.7.0 the superuser (or admin) made them all. The connected role joins
    the owner role first: PostgreSQL 16 and later give a CREATEROLE admin only
    ADMIN OPTION on the roles it creates, and an owner change needs SET ROLE
    to the new owner (PostgreSQL docs, ALTER TABLE / ALTER DATABASE)."""
    kinds = ", ".join(f"'{k}'" for k in _RELATION_KINDS)
    cases = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in _RELATION_KINDS.items())
    return [
        f"GRANT {owner} TO CURRENT_USER;",
        f"ALTER DATABASE {database} OWNER TO {owner};",
        f"SELECT format('ALTER %s %I.%I OWNER TO {owner}', CASE c.relkind {cases} END, n.nspname, c.relname) "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE n.nspname = '{SCHEMA}' AND c.relkind IN ({kinds}) AND c.relowner <> '{owner}'::regrole "
        "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass "
        "AND d.objid = c.oid AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')) \\gexec",
        # Enums and domains; a table's row type follows its table.
        f"SELECT format('ALTER %s %I.%I OWNER TO {owner}', CASE t.typtype WHEN 'e' THEN 'TYPE' ELSE 'DOMAIN' END, "
        "n.nspname, t.typname) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
        f"WHERE n.nspname = '{SCHEMA}' AND t.typtype IN ('e', 'd') AND t.typowner <> '{owner}'::regrole \\gexec",
    ]


def _app_grants(owner: str, app: str, keda: str, database: str) -> list[str]:
    """As the owner, so the grants are the owner's and the default privileges
    cover what the owner's later migrations create."""
    return [
        f"SET ROLE {owner};",
        f"GRANT CONNECT ON DATABASE {database} TO {app}, {keda}, {names.DATABASE_RESULTS_ROLE};",
        f"GRANT USAGE ON SCHEMA {SCHEMA} TO {app}, {keda}, {names.DATABASE_RESULTS_ROLE};",
        f"GRANT {APP_TABLE_PRIVILEGES} ON ALL TABLES IN SCHEMA {SCHEMA} TO {app};",
        f"GRANT {APP_SEQUENCE_PRIVILEGES} ON ALL SEQUENCES IN SCHEMA {SCHEMA} TO {app};",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {SCHEMA} GRANT {APP_TABLE_PRIVILEGES} "
        f"ON TABLES TO {app};",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {SCHEMA} GRANT {APP_SEQUENCE_PRIVILEGES} "
        f"ON SEQUENCES TO {app};",
        *_grants_on_existing(),
        "RESET ROLE;",
    ]


def _grants_on_existing() -> list[str]:
    """The results role's grants on Celery's tables where they already exist (a
    database 0.7.0 left): given here too, before PgBouncer's result pool
    logs in as that role, not only after the next migration."""
    results = names.DATABASE_RESULTS_ROLE
    tables = ", ".join(f"'{_ident(t)}'" for t in RESULT_TABLES)
    sequences = ", ".join(f"'{_ident(q)}'" for q in RESULT_SEQUENCES)
    return [
        f"SELECT format('GRANT {APP_TABLE_PRIVILEGES} ON %I.%I TO {results}', schemaname, tablename) "
        f"FROM pg_tables WHERE schemaname = '{SCHEMA}' AND tablename IN ({tables}) \\gexec",
        f"SELECT format('GRANT {APP_SEQUENCE_PRIVILEGES} ON SEQUENCE %I.%I TO {results}', schemaname, "
        f"sequencename) FROM pg_sequences WHERE schemaname = '{SCHEMA}' AND sequencename IN ({sequences}) "
        "\\gexec",
    ]


def roles_sql(database: str = names.POSTGRES_DB) -> str:
    """The psql script the roles Job runs as the superuser or admin, before the migration."""
    owner, app, keda = names.DATABASE_OWNER_ROLE, names.DATABASE_APP_ROLE, names.DATABASE_KEDA_ROLE
    lines = [
        "\\set ON_ERROR_STOP on",
        *_create_roles(),
        *_take_ownership(owner, _ident(database)),
        *_app_grants(owner, app, keda, _ident(database)),
    ]
    return "\n".join(lines) + "\n"


def after_migration_sql(table: str, columns: Sequence[str]) -> str:
    """What the migration Job runs as the owner once the schema exists: KEDA's
    column-level SELECT. A query that names only these columns (count(*)
    needs SELECT on one column of the table, PostgreSQL docs, GRANT) runs;
    any other column or table is refused."""
    if not columns:
        raise ValueError("KEDA's grant needs at least one column")
    cols = ", ".join(_ident(c) for c in columns)
    results = names.DATABASE_RESULTS_ROLE
    tables = ", ".join(f"{SCHEMA}.{_ident(t)}" for t in RESULT_TABLES)
    sequences = ", ".join(f"{SCHEMA}.{_ident(q)}" for q in RESULT_SEQUENCES)
    return (f"GRANT SELECT ({cols}) ON {SCHEMA}.{_ident(table)} TO {names.DATABASE_KEDA_ROLE};\n"
            f"GRANT {APP_TABLE_PRIVILEGES} ON {tables} TO {results};\n"
            f"GRANT {APP_SEQUENCE_PRIVILEGES} ON SEQUENCE {sequences} TO {results};\n")
