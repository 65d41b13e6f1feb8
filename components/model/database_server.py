"""Azure Database for PostgreSQL flexible server sizes, and the one the plan needs.

Pure data and arithmetic (`database: azure`): components/model/capacity.py
calls `cheapest_sku` with the plan's PostgreSQL figures, the same ones the
in-cluster StatefulSet gets (components/kubernetes/postgres.py), and
components/azure/database.py declares the server it plans.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

BURSTABLE = "Burstable"
GENERAL_PURPOSE = "GeneralPurpose"

# Azure keeps 15 of a server's max_connections for physical replication and
# monitoring: a server's user connections are max_connections - 15
# (learn.microsoft.com/azure/postgresql/flexible-server/concepts-limits,
# "Maximum connections").
AZURE_RESERVED_CONNECTIONS = 15


@dataclass(frozen=True)
class ServerSku:
    name: str
    tier: str
    vcores: int
    memory_gib: int
    # The SKU's default max_connections, from the same concepts-limits table.
    # Azure advises against raising max_connections above it ("While it is
    # possible to increase the value of max_connections beyond the default
    # setting, it is not advisable"), so it is the SKU's ceiling here.
    max_connections: int
    # The CPU the server sustains, in millicores. A B-series VM runs at a
    # baseline and bursts above it only on CPU credits it saved while below;
    # out of credits it falls back to the baseline
    # (learn.microsoft.com/azure/virtual-machines/sizes-b-series-burstable,
    # "Base CPU performance of VM": B1ms 20 %, B2s 40 %, B2ms 60 %, B4ms 90 %,
    # B8ms 135 % of one vCPU). The D-series sustains every vCore.
    sustained_millicores: int
    # USD per hour, pay-as-you-go, eastus: the Retail Prices API
    # (prices.azure.com/api/retail/prices, serviceName 'Azure Database for
    # PostgreSQL'). "Azure Database for PostgreSQL Flexible Server General
    # Purpose Ddsv5 Series Compute" is priced per vCore, 0.089 USD per
    # vCore-hour (D2ds_v5 0.178, D8ds_v5 0.712); "... Burstable BS Series
    # Compute" per size: B1ms 0.017 and B2s 0.034 as quoted, the larger sizes
    # taken in proportion to their memory, as the B-series VMs are priced
    # (0.0085 USD per GiB-hour; not read for each size). This machine has no
    # network: the figures are as quoted by public tools that read that API
    # (as in components/model/vmsizes.py); tests check the rules.
    price_per_hour: float

    @property
    def memory_mib(self) -> int:
        return self.memory_gib * 1024

    @property
    def user_connections(self) -> int:
        return self.max_connections - AZURE_RESERVED_CONNECTIONS


# USD per hour: a Burstable GiB of memory (B1ms 0.017 for 2 GiB), a Ddsv5 vCore.
_BURSTABLE_GIB_PRICE = 0.0085
_GP_VCORE_PRICE = 0.089

SERVER_SKUS: dict[str, ServerSku] = {s.name: s for s in (
    ServerSku("Standard_B1ms", BURSTABLE, 1, 2, 50, 200, round(_BURSTABLE_GIB_PRICE * 2, 3)),
    ServerSku("Standard_B2s", BURSTABLE, 2, 4, 429, 400, round(_BURSTABLE_GIB_PRICE * 4, 3)),
    ServerSku("Standard_B2ms", BURSTABLE, 2, 8, 859, 600, round(_BURSTABLE_GIB_PRICE * 8, 3)),
    ServerSku("Standard_B4ms", BURSTABLE, 4, 16, 1718, 900, round(_BURSTABLE_GIB_PRICE * 16, 3)),
    ServerSku("Standard_B8ms", BURSTABLE, 8, 32, 3437, 1350, round(_BURSTABLE_GIB_PRICE * 32, 3)),
    ServerSku("Standard_D2ds_v5", GENERAL_PURPOSE, 2, 8, 859, 2000, round(_GP_VCORE_PRICE * 2, 3)),
    ServerSku("Standard_D4ds_v5", GENERAL_PURPOSE, 4, 16, 1718, 4000, round(_GP_VCORE_PRICE * 4, 3)),
    ServerSku("Standard_D8ds_v5", GENERAL_PURPOSE, 8, 32, 3437, 8000, round(_GP_VCORE_PRICE * 8, 3)),
    ServerSku("Standard_D16ds_v5", GENERAL_PURPOSE, 16, 64, 5000, 16000, round(_GP_VCORE_PRICE * 16, 3)),
    ServerSku("Standard_D32ds_v5", GENERAL_PURPOSE, 32, 128, 5000, 32000, round(_GP_VCORE_PRICE * 32, 3)),
)}

# Premium SSD sizes a flexible server takes (concepts-storage: 32 GiB to 32 TiB
# in these steps); a size in between is rounded up.
STORAGE_SIZES_GIB = (32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32767)
# "Az DB for PostgreSQL Flexible Server Storage", Storage Data Stored, eastus:
# 0.115 USD per GB-month (the same Retail Prices API); 730 hours a month.
STORAGE_PRICE_PER_GIB_MONTH = 0.115
HOURS_PER_MONTH = 730
# PostgreSQL majors Azure offers (pulumi-azure-native's PostgresMajorVersion
# for API 2025-08-01: 14 to 18); 17 when the image's tag names none.
AZURE_POSTGRES_VERSIONS = ("14", "15", "16", "17", "18")
DEFAULT_POSTGRES_VERSION = "17"
# Zone-redundant HA runs a standby of the same SKU and storage in another
# zone, billed like the primary (learn.microsoft.com/azure/postgresql/
# flexible-server/concepts-high-availability: "not supported in the
# Burstable tier").
HA_BILLED_SERVERS = 2


def postgres_major(image: str) -> str | None:
    """The PostgreSQL major a `postgres:<tag>` image runs, from its tag (None: the tag names none)."""
    tag = image.rsplit("@", 1)[0]
    tag = tag.rsplit(":", 1)[1] if ":" in tag.rsplit("/", 1)[-1] else ""
    found = re.match(r"(\d+)", tag)
    return found.group(1) if found else None


def storage_gib(wanted: int) -> int:
    """The smallest storage size a flexible server offers that holds `wanted` GiB."""
    return next((s for s in STORAGE_SIZES_GIB if s >= wanted), STORAGE_SIZES_GIB[-1])


def needed_max_connections(plan_max_connections: int) -> int:
    """The server's max_connections: the plan's (every connection it counts
    plus PostgreSQL's superuser reserve) and Azure's own 15 on top."""
    return plan_max_connections + AZURE_RESERVED_CONNECTIONS


def sku_shortfalls(sku: ServerSku, max_connections: int, memory_mib: int, cpu_millicores: int,
                   high_availability: bool) -> list[str]:
    """Why `sku` cannot carry the plan's database (empty: it can)."""
    why = []
    if sku.max_connections < max_connections:
        why.append(f"its max_connections is {sku.max_connections}, the plan needs {max_connections}")
    if sku.memory_mib < memory_mib:
        why.append(f"it has {sku.memory_gib} GiB of memory, the plan's PostgreSQL may use {memory_mib} MiB")
    if sku.sustained_millicores < cpu_millicores:
        why.append(f"it sustains {sku.sustained_millicores}m CPU, the plan's PostgreSQL may use {cpu_millicores}m")
    if high_availability and sku.tier == BURSTABLE:
        why.append("zone-redundant high availability needs the General Purpose tier")
    return why


def cheapest_sku(max_connections: int, memory_mib: int, cpu_millicores: int,
                 high_availability: bool) -> ServerSku | None:
    """The cheapest SKU that carries the plan: Burstable while its baseline
    holds the plan's PostgreSQL CPU, General Purpose once it does not."""
    fits = [s for s in SERVER_SKUS.values()
            if not sku_shortfalls(s, max_connections, memory_mib, cpu_millicores, high_availability)]
    return min(fits, key=lambda s: (s.price_per_hour, s.vcores)) if fits else None


def storage_price_per_hour(gib: int) -> float:
    return gib * STORAGE_PRICE_PER_GIB_MONTH / HOURS_PER_MONTH
