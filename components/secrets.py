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

from components import k8s, names
from components.k8s import KubeObject
from components.settings import Settings

# Environment variable -> key in the airflow-env Secret.
ENV_SECRET_KEYS: dict[str, str] = {
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "sql-alchemy-conn",
    "AIRFLOW__CELERY__BROKER_URL": "broker-url",
    "AIRFLOW__CELERY__RESULT_BACKEND": "result-backend",
    "AIRFLOW__CORE__FERNET_KEY": "fernet-key",
    "AIRFLOW__API__SECRET_KEY": "api-secret-key",
    "AIRFLOW__API_AUTH__JWT_SECRET": "jwt-secret",
}
PASSWORD_KEY = "password"
AUTH_PASSWORDS_KEY = "simple_auth_manager_passwords.json"


def _url_safe(standard_b64: str) -> str:
    # A fernet key is 32 bytes in url-safe base64; RandomBytes gives standard base64.
    return standard_b64.replace("+", "-").replace("/", "_")


# Secret name -> (Pulumi name suffix, keys it holds).
SECRETS: dict[str, tuple[str, tuple[str, ...]]] = {
    names.ENV_SECRET: ("env", tuple(ENV_SECRET_KEYS.values())),
    names.POSTGRES_SECRET: ("postgres", (PASSWORD_KEY,)),
    names.RABBITMQ_SECRET: ("rabbitmq", (PASSWORD_KEY,)),
    names.AUTH_SECRET: ("auth", (AUTH_PASSWORDS_KEY,)),
}


def secret_objects(settings: Settings, values: Mapping[str, pulumi.Input[str]]) -> list[KubeObject]:
    """The Secrets, with `values` keyed by "<secret name>/<key>"."""
    return [
        KubeObject("Secret", suffix, {
            "metadata": {"name": secret, "namespace": settings.namespace},
            "type": "Opaque",
            "string_data": {key: values[f"{secret}/{key}"] for key in keys},
        })
        for secret, (suffix, keys) in SECRETS.items()
    ]


class AirflowSecrets(pulumi.ComponentResource):
    """Passwords, fernet key, API secret key and JWT secret, as Kubernetes Secrets."""

    admin_password: pulumi.Output[str]
    secrets: list[pulumi.CustomResource]

    def __init__(
        self,
        name: str,
        settings: Settings,
        after: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("airflow-aks:secrets:AirflowSecrets", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        def password(suffix: str, length: int = 32) -> pulumi.Output[str]:
            # Letters and digits only: the values go into URLs unescaped.
            return random.RandomPassword(f"{name}-{suffix}", length=length, special=False, opts=child).result

        pg_password = password("postgres")
        mq_password = password("rabbitmq")
        api_secret_key = password("api-secret-key", 64)
        jwt_secret = password("jwt-secret", 64)
        admin_password = password("admin", 24)
        fernet_key = random.RandomBytes(f"{name}-fernet-key", length=32, opts=child).base64.apply(_url_safe)

        pg_host = names.service_host(names.POSTGRES, settings.namespace)
        mq_host = names.service_host(names.RABBITMQ, settings.namespace)
        pg_auth = pulumi.Output.concat(names.POSTGRES_USER, ":", pg_password, "@", pg_host, ":",
                                       str(names.POSTGRES_PORT), "/", names.POSTGRES_DB)
        env = names.ENV_SECRET
        values: dict[str, pulumi.Input[str]] = {
            f"{env}/sql-alchemy-conn": pulumi.Output.concat("postgresql+psycopg2://", pg_auth),
            f"{env}/result-backend": pulumi.Output.concat("db+postgresql://", pg_auth),
            f"{env}/broker-url": pulumi.Output.concat("amqp://", names.RABBITMQ_USER, ":", mq_password, "@",
                                                      mq_host, ":", str(names.RABBITMQ_PORT), "/",
                                                      names.RABBITMQ_VHOST),
            f"{env}/fernet-key": fernet_key,
            f"{env}/api-secret-key": api_secret_key,
            f"{env}/jwt-secret": jwt_secret,
            f"{names.POSTGRES_SECRET}/{PASSWORD_KEY}": pg_password,
            f"{names.RABBITMQ_SECRET}/{PASSWORD_KEY}": mq_password,
            f"{names.AUTH_SECRET}/{AUTH_PASSWORDS_KEY}": admin_password.apply(
                lambda pw: json.dumps({names.ADMIN_USER: pw})),
        }
        secret_values = {k: pulumi.Output.secret(v) for k, v in values.items()}
        in_order = pulumi.ResourceOptions(parent=self, depends_on=list(after))
        self.secrets = [k8s.declare(obj, name, in_order) for obj in secret_objects(settings, secret_values)]
        self.admin_password = pulumi.Output.secret(admin_password)
        self.register_outputs({})
