"""The metadata database when it runs outside the cluster (`database: azure`).

How the pods reach the flexible server, every connection over TLS (the
server refuses others: require_secure_transport=on):

- PgBouncer, which every Airflow component goes through when it is on,
  verifies the server's certificate against Azure's root CAs and its host
  name (`server_tls_sslmode = verify-full`, components/kubernetes/pgbouncer.py).
- The clients that connect straight to the server (the migration Job,
  KEDA's PostgreSQL trigger, every Airflow component with PgBouncer off) use
  `sslmode=require`: encrypted, no fallback to plain TCP, but the
  certificate is not checked. verify-full there would need the CA file in
  each image at a path libpq and pgx read (libpq takes `sslrootcert=system`
  only from version 16, and psycopg2's wheels bundle their own libpq), for
  the same private network PgBouncer already authenticates the server on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pulumi

# libpq's (and pgx's) sslmode of every direct client: TLS or no connection.
DIRECT_SSLMODE = "require"
# PgBouncer's server side (PgBouncer doc/config.md, server_tls_sslmode:
# verify-full checks the certificate against server_tls_ca_file and the host
# name against it; require only encrypts).
PGBOUNCER_SERVER_SSLMODE = "verify-full"
# Azure's root CAs for Azure Database for PostgreSQL, from Mozilla's CA list
# (Debian's ca-certificates): DigiCert Global Root G2 and Microsoft RSA Root
# Certificate Authority 2017 (the server certificates are signed under both),
# and DigiCert Global Root CA (China regions). Azure rotates intermediates,
# not these roots, so trusting the roots alone survives a rotation
# (learn.microsoft.com/azure/postgresql/flexible-server/concepts-networking-ssl-tls,
# "Root CAs used by Azure Database for PostgreSQL"). Shipped with the program
# rather than taken from the PgBouncer image's own bundle: whether that
# image carries a CA bundle, and where, is the image's to change.
ROOT_CAS_FILE = Path(__file__).with_name("azure_database_root_cas.pem")


def server_root_cas() -> str:
    """The PEM bundle PgBouncer verifies the flexible server's certificate with."""
    return ROOT_CAS_FILE.read_text()


@dataclass(frozen=True)
class ExternalDatabase:
    """An Azure Database for PostgreSQL flexible server, as the pods reach it.

    Declared by components/azure (the server, its network and its admin
    password); the Kubernetes side only connects to it.
    """

    # The server's FQDN, <server>.postgres.database.azure.com (the server's
    # fullyQualifiedDomainName), which the VNet's private DNS zone resolves
    # to its private address. It must be the name on the server's
    # certificate: PgBouncer checks it (verify-full).
    host: pulumi.Input[str]
    admin_user: str
    # A Pulumi secret.
    password: pulumi.Input[str]
    # The subnet the server's private address is in: NetworkPolicies allow egress to it.
    cidr: str
    # What must exist before a client connects, beyond the server itself
    # (which `host` and `password` already carry as Output dependencies):
    # Airflow's database on it and its parameters (max_connections,
    # require_secure_transport). PgBouncer and the migration Job wait for them.
    ready: Sequence[pulumi.Resource] = ()
