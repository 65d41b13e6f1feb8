"""Generated secrets and the Kubernetes Secrets that carry them.

Every value comes from a pulumi-random resource, so it is created once and then
kept in the stack's state: a JWT secret or fernet key that changed on each
deploy would break running tasks and stored connections.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_kubernetes as kubernetes
import pulumi_random as random

from components import names

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


class AirflowSecrets(pulumi.ComponentResource):
    """Passwords, fernet key, API secret key and JWT secret, as Kubernetes Secrets."""

    env_secret_name: pulumi.Output[str]
    postgres_secret_name: pulumi.Output[str]
    rabbitmq_secret_name: pulumi.Output[str]
    auth_secret_name: pulumi.Output[str]
    admin_password: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        namespace: pulumi.Input[str],
        namespace_name: str,
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

        pg_host = names.service_host(names.POSTGRES, namespace_name)
        mq_host = names.service_host(names.RABBITMQ, namespace_name)
        pg_auth = pulumi.Output.concat(names.POSTGRES_USER, ":", pg_password, "@", pg_host, ":",
                                       str(names.POSTGRES_PORT), "/", names.POSTGRES_DB)
        env_values = {
            "sql-alchemy-conn": pulumi.Output.concat("postgresql+psycopg2://", pg_auth),
            "result-backend": pulumi.Output.concat("db+postgresql://", pg_auth),
            "broker-url": pulumi.Output.concat("amqp://", names.RABBITMQ_USER, ":", mq_password, "@", mq_host,
                                               ":", str(names.RABBITMQ_PORT), "/", names.RABBITMQ_VHOST),
            "fernet-key": fernet_key,
            "api-secret-key": api_secret_key,
            "jwt-secret": jwt_secret,
        }

        def secret(suffix: str, secret_name: str, data: dict[str, pulumi.Input[str]]) -> kubernetes.core.v1.Secret:
            return kubernetes.core.v1.Secret(
                f"{name}-{suffix}",
                metadata={"name": secret_name, "namespace": namespace},
                type="Opaque",
                string_data={k: pulumi.Output.secret(v) for k, v in data.items()},
                opts=child,
            )

        env = secret("env", names.ENV_SECRET, env_values)
        pg = secret("postgres", names.POSTGRES_SECRET, {PASSWORD_KEY: pg_password})
        mq = secret("rabbitmq", names.RABBITMQ_SECRET, {PASSWORD_KEY: mq_password})
        auth = secret("auth", names.AUTH_SECRET, {
            AUTH_PASSWORDS_KEY: admin_password.apply(lambda pw: json.dumps({names.ADMIN_USER: pw})),
        })

        self.env_secret_name = env.metadata.name
        self.postgres_secret_name = pg.metadata.name
        self.rabbitmq_secret_name = mq.metadata.name
        self.auth_secret_name = auth.metadata.name
        self.admin_password = pulumi.Output.secret(admin_password)
        self.register_outputs({
            "env_secret_name": self.env_secret_name,
            "postgres_secret_name": self.postgres_secret_name,
            "rabbitmq_secret_name": self.rabbitmq_secret_name,
            "auth_secret_name": self.auth_secret_name,
        })
