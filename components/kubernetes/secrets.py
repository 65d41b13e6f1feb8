"""Generated secrets and the Kubernetes Secrets that carry them.

Every value comes from a pulumi-random resource, so it is created once and then
kept in the stack's state: a JWT secret or fernet key that changed on each
deploy would break running tasks and stored connections.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import pulumi
import pulumi_random as random

from components.kubernetes import k8s
from components.kubernetes.external_database import DIRECT_SSLMODE, ExternalDatabase
from components.kubernetes.k8s import KubeObject
from components.kubernetes.pgbouncer import USERLIST_KEY, userlist
from components.model import component_secrets, names
from components.model.settings import Settings

# The migration Job's connection: straight to PostgreSQL, not through PgBouncer.
DIRECT_CONN_KEY = component_secrets.DIRECT_CONN
# The database superuser's password (in names.POSTGRES_SECRET): the in-cluster
# server's generated one, or the flexible server's admin password. Only the
# server itself, the roles Job and the backups use it.
PASSWORD_KEY = "password"
# The least-privilege roles' passwords (components/model/database_roles.py),
# in names.POSTGRES_SECRET beside the superuser's or admin's: the roles Job
# sets them, the URLs, PgBouncer's userlist and KEDA's trigger use them.
ROLE_PASSWORD_KEYS = {
    names.DATABASE_OWNER_ROLE: "owner-password",
    names.DATABASE_APP_ROLE: "app-password",
    names.DATABASE_KEDA_ROLE: "keda-password",
    names.DATABASE_RESULTS_ROLE: "results-password",
}
AUTH_PASSWORDS_KEY = "simple_auth_manager_passwords.json"


def _url_safe(standard_b64: str) -> str:
    # A fernet key is 32 bytes in url-safe base64; RandomBytes gives standard base64.
    return standard_b64.replace("+", "-").replace("/", "_")


def secret_specs(settings: Settings) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Secret name -> (Pulumi name suffix, keys it holds)."""
    # A Secret per Airflow component, with only the values it uses: a node's
    # kubelet may read only the Secrets of the pods it runs (the Node
    # authorizer, kubernetes.io/docs/reference/access-authn-authz/node/),
    # so a worker node (its own tainted pool on AKS) never holds the JWT
    # secret, the Fernet key or the metadata database URL, which keys
    # projected from one shared Secret would not give.
    specs = {
        names.env_secret(c): (f"env-{c}", tuple(component_secrets.COMPONENT_SECRETS[c]))
        for c in component_secrets.components(settings.flower)
    }
    specs |= {
        names.POSTGRES_SECRET: ("postgres", (PASSWORD_KEY, *ROLE_PASSWORD_KEYS.values())),
        names.RABBITMQ_SECRET: ("rabbitmq", (PASSWORD_KEY,)),
        names.AUTH_SECRET: ("auth", (AUTH_PASSWORDS_KEY,)),
    }
    if settings.pgbouncer:
        specs[names.PGBOUNCER_SECRET] = ("pgbouncer", (USERLIST_KEY,))
    return specs


def secret_objects(settings: Settings, values: Mapping[str, pulumi.Input[str]]) -> list[KubeObject]:
    """The Secrets, with `values` keyed by "<secret name>/<key>"."""
    return [
        KubeObject("Secret", suffix, {
            "metadata": {"name": secret, "namespace": settings.namespace},
            "type": "Opaque",
            "string_data": {key: values[f"{secret}/{key}"] for key in keys},
        })
        for secret, (suffix, keys) in secret_specs(settings).items()
    ]


def component_values(settings: Settings, env_values: Mapping[str, pulumi.Input[str]]
                     ) -> dict[str, pulumi.Input[str]]:
    """The components' Secrets' values, keyed "<secret name>/<key>", from one value per key."""
    return {f"{names.env_secret(c)}/{key}": env_values[key]
            for c in component_secrets.components(settings.flower)
            for key in component_secrets.COMPONENT_SECRETS[c]}


def connection_urls(settings: Settings, app_password: pulumi.Input[str], owner_password: pulumi.Input[str],
                    external_database: ExternalDatabase | None = None,
                    results_password: pulumi.Input[str] = "") -> dict[str, pulumi.Output[str]]:
    """The metadata database (sync and async) and result backend URLs: through
    PgBouncer when it is on, each onto its own pool, as the app role; and the
    direct one for the migration Job, as the owner role (the only login that
    may change the schema); the result backend as the results role.

    With an external database every URL that reaches the server directly
    carries sslmode (libpq's keyword, which psycopg2, psycopg 3 and SQLAlchemy
    pass on from the URL's query); the URLs to PgBouncer stay inside the
    cluster (PgBouncer's own server connections use TLS, pgbouncer.py)."""

    def url(scheme: str, host: pulumi.Input[str], port: int, db: str, query: str = "", *,
            user: str = names.DATABASE_APP_ROLE, password: pulumi.Input[str] = app_password) -> pulumi.Output[str]:
        return pulumi.Output.concat(scheme, "://", user, ":", password, "@", host, ":", str(port), "/", db, query)

    direct: tuple[pulumi.Input[str], int, str, str] = (
        names.service_host(names.POSTGRES, settings.namespace), names.POSTGRES_PORT, names.POSTGRES_DB, "")
    if external_database is not None:
        direct = (external_database.host, names.POSTGRES_PORT, names.POSTGRES_DB, f"?sslmode={DIRECT_SSLMODE}")
    metadata = results = direct
    if settings.pgbouncer:
        bouncer = names.service_host(names.PGBOUNCER, settings.namespace)
        metadata = (bouncer, names.PGBOUNCER_PORT, names.PGBOUNCER_METADATA_DB, "")
        results = (bouncer, names.PGBOUNCER_PORT, names.PGBOUNCER_RESULT_BACKEND_DB, "")
    return {
        "sql-alchemy-conn": url("postgresql+psycopg2", *metadata),
        # Unset, Airflow derives postgresql+asyncpg from the URL above, and
        # asyncpg's named prepared statements fail behind PgBouncer in
        # transaction mode. psycopg 3 with preparing turned off (airflow.cfg,
        # app/config/airflow_aks_database.py) works on any PgBouncer version.
        "sql-alchemy-conn-async": url("postgresql+psycopg_async", *metadata),
        DIRECT_CONN_KEY: url("postgresql+psycopg2", *direct, user=names.DATABASE_OWNER_ROLE,
                             password=owner_password),
        "result-backend": url("db+postgresql", *results, user=names.DATABASE_RESULTS_ROLE,
                              password=results_password),
    }


class AirflowSecrets(pulumi.ComponentResource):
    """Passwords, fernet key, API secret key and JWT secret, as Kubernetes Secrets."""

    admin_password: pulumi.Output[str]
    secrets: list[pulumi.CustomResource]

    def __init__(
        self,
        name: str,
        settings: Settings,
        after: Sequence[pulumi.Resource] = (),
        external_database: ExternalDatabase | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """external_database: its admin password replaces the generated
        superuser password (no RandomPassword for it then); the roles'
        passwords are generated either way."""
        super().__init__("airflow-aks:secrets:AirflowSecrets", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        def password(suffix: str, length: int = 32) -> pulumi.Output[str]:
            # Letters and digits only: the values go into URLs unescaped.
            return random.RandomPassword(f"{name}-{suffix}", length=length, special=False, opts=child).result

        if external_database is None:
            pg_password = password("postgres")
            pg_user = names.POSTGRES_USER
        else:
            pg_password = pulumi.Output.from_input(external_database.password)
            pg_user = external_database.admin_user
        # On either server: the roles Job makes them (database_roles.py).
        role_passwords = {role: password(f"postgres-{role.removeprefix('airflow_')}")
                          for role in ROLE_PASSWORD_KEYS}
        app_password = role_passwords[names.DATABASE_APP_ROLE]
        mq_password = password("rabbitmq")
        api_secret_key = password("api-secret-key", 64)
        jwt_secret = password("jwt-secret", 64)
        admin_password = password("admin", 24)
        fernet_key = random.RandomBytes(f"{name}-fernet-key", length=32, opts=child).base64.apply(_url_safe)

        mq_host = names.service_host(names.RABBITMQ, settings.namespace)
        # One value per key, whichever components' Secrets carry it: the same
        # random resources as before, so no value changes on an upgrade.
        env_values: dict[str, pulumi.Input[str]] = {
            **connection_urls(settings, app_password, role_passwords[names.DATABASE_OWNER_ROLE],
                              external_database, role_passwords[names.DATABASE_RESULTS_ROLE]),
            component_secrets.BROKER_URL: pulumi.Output.concat(
                "amqp://", names.RABBITMQ_USER, ":", mq_password, "@", mq_host, ":", str(names.RABBITMQ_PORT),
                "/", names.RABBITMQ_VHOST),
            component_secrets.FERNET_KEY: fernet_key,
            component_secrets.API_SECRET_KEY: api_secret_key,
            component_secrets.JWT_SECRET: jwt_secret,
        }
        if settings.flower:
            # Created when Flower is turned on, kept in state like the others.
            env_values[component_secrets.FLOWER_BASIC_AUTH] = pulumi.Output.concat(
                names.FLOWER_USER, ":", password("flower"))
        values: dict[str, pulumi.Input[str]] = {
            **component_values(settings, env_values),
            # PgBouncer's clients are the components: it logs in to the server as the app role too.
            f"{names.PGBOUNCER_SECRET}/{USERLIST_KEY}": pulumi.Output.all(
                app_password, role_passwords[names.DATABASE_RESULTS_ROLE], pg_password).apply(
                lambda pws: userlist(pws[0], names.DATABASE_APP_ROLE, upgrade_login=(pg_user, pws[2]),
                                     results_password=pws[1])),
            f"{names.POSTGRES_SECRET}/{PASSWORD_KEY}": pg_password,
            **{f"{names.POSTGRES_SECRET}/{ROLE_PASSWORD_KEYS[role]}": pw for role, pw in role_passwords.items()},
            f"{names.RABBITMQ_SECRET}/{PASSWORD_KEY}": mq_password,
            f"{names.AUTH_SECRET}/{AUTH_PASSWORDS_KEY}": admin_password.apply(
                lambda pw: json.dumps({names.ADMIN_USER: pw})),
        }
        secret_values = {k: pulumi.Output.secret(v) for k, v in values.items()}
        in_order = pulumi.ResourceOptions(parent=self, depends_on=list(after))
        self.secrets = [k8s.declare(obj, name, in_order) for obj in secret_objects(settings, secret_values)]
        self.admin_password = pulumi.Output.secret(admin_password)
        self.register_outputs({})
