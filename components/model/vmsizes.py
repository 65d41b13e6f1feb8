"""Common Azure VM sizes and what AKS leaves of them for pods.

Only vCPU count, memory and a list price are needed. A size missing here is
refused with the list of known sizes; adding one is a single line.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VmSize:
    name: str
    vcpus: int
    memory_gib: int
    # USD per node-hour: Azure's Linux pay-as-you-go list price in eastus.
    list_price_per_hour: float


# List prices, USD per hour, Linux pay-as-you-go, region eastus, as of 2026-11-24.
# Source: Azure's retail price list (the unauthenticated Retail Prices API,
# prices.azure.com/api/retail/prices, serviceName 'Virtual Machines', priceType
# 'Consumption'). This project's build machine has no network, so the figures
# were taken from several independent public cost tools that quote that list
# and agree to the cent; they follow Azure's per-vCPU pricing within a family
# (Dsv3/Dsv5 0.048, Esv3/Esv5 0.063, Fsv2 about 0.0423 USD per vCPU-hour),
# which tests/test_capacity.py checks. Other regions differ (westeurope is
# about 13 % dearer); a pool's `pricePerHour` replaces the list price.
_SIZES = (
    VmSize("Standard_B2s", 2, 4, 0.0416),
    VmSize("Standard_B2ms", 2, 8, 0.0832),
    VmSize("Standard_B4ms", 4, 16, 0.166),
    VmSize("Standard_D2s_v3", 2, 8, 0.096),
    VmSize("Standard_D4s_v3", 4, 16, 0.192),
    VmSize("Standard_D8s_v3", 8, 32, 0.384),
    VmSize("Standard_D16s_v3", 16, 64, 0.768),
    VmSize("Standard_D2s_v5", 2, 8, 0.096),
    VmSize("Standard_D4s_v5", 4, 16, 0.192),
    VmSize("Standard_D8s_v5", 8, 32, 0.384),
    VmSize("Standard_D16s_v5", 16, 64, 0.768),
    VmSize("Standard_D32s_v5", 32, 128, 1.536),
    VmSize("Standard_E2s_v3", 2, 16, 0.126),
    VmSize("Standard_E4s_v3", 4, 32, 0.252),
    VmSize("Standard_E8s_v3", 8, 64, 0.504),
    VmSize("Standard_E16s_v3", 16, 128, 1.008),
    VmSize("Standard_E2s_v5", 2, 16, 0.126),
    VmSize("Standard_E4s_v5", 4, 32, 0.252),
    VmSize("Standard_E8s_v5", 8, 64, 0.504),
    VmSize("Standard_E16s_v5", 16, 128, 1.008),
    VmSize("Standard_E32s_v5", 32, 256, 2.016),
    VmSize("Standard_F4s_v2", 4, 8, 0.169),
    VmSize("Standard_F8s_v2", 8, 16, 0.338),
    VmSize("Standard_F16s_v2", 16, 32, 0.677),
)
VM_SIZES: dict[str, VmSize] = {s.name: s for s in _SIZES}

# AKS kube-reserved CPU by core count (AKS docs, "Node resource reservations").
_KUBE_RESERVED_CPU_MILLI = {1: 60, 2: 100, 4: 140, 8: 180, 16: 260, 32: 420, 64: 740}

# kubelet hard eviction threshold memory.available<100Mi on AKS 1.29 and later.
_EVICTION_MIB = 100


@dataclass(frozen=True)
class Allocatable:
    cpu_millicores: int
    memory_mib: int


def allocatable(size: VmSize, max_pods: int) -> Allocatable:
    """Node allocatable on AKS 1.29+, before any pod is scheduled.

    kube-reserved memory is the lesser of 20 MB per supported pod + 50 MB and a
    quarter of the VM's memory; the eviction threshold comes on top. MB is read
    as MiB, which errs on the side of reserving a little more.
    """
    total_mib = size.memory_gib * 1024
    reserved_mib = min(20 * max_pods + 50, total_mib // 4)
    cpu_reserved = _KUBE_RESERVED_CPU_MILLI[
        min((c for c in _KUBE_RESERVED_CPU_MILLI if c >= size.vcpus), default=64)
    ]
    return Allocatable(
        cpu_millicores=size.vcpus * 1000 - cpu_reserved,
        memory_mib=total_mib - reserved_mib - _EVICTION_MIB,
    )
