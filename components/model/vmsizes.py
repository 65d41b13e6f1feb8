"""Azure VM sizes the program knows, and what AKS leaves of them for pods.

Only vCPU count, memory and a list price are needed. The table is pinned in
vm_sizes.json (scripts/vm-sizes rewrites it); a size it lacks is used with the
user's own figures (a pool's vcpus, memoryGiB and pricePerHour), else refused
with that instruction (settings.py, _pool).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class VmSize:
    name: str
    vcpus: int
    memory_gib: int
    # USD per node-hour: Azure's Linux pay-as-you-go list price in eastus (or,
    # for a size outside the table, the pool's pricePerHour).
    list_price_per_hour: float
    # False: the figures are the user's (a size outside the table).
    listed: bool = True


# The figures in vm_sizes.json, as read on 2026-12-02:
# - vCPU and memory: Azure's resource SKUs for AKS node pools as generated
#   into microsoft/aspire (src/Aspire.Hosting.Azure.Kubernetes/
#   AksNodeVmSizes.Generated.cs, commit 59d405f, 2026-08-21), which agree with
#   Microsoft's size pages (learn.microsoft.com/azure/virtual-machines/sizes):
#   4 GiB per vCPU for D, 8 for E (E64s_v3: 432 GiB, E96s_v5 and E96as_v5:
#   672 GiB), 2 for F.
# - Prices: Azure's Retail Prices API, eastus, Linux pay-as-you-go, as
#   generated into Azure/karpenter-provider-azure (pkg/providers/pricing/
#   zz_generated.pricing.go, "generated at 2026-06-18T03:43:41Z", commit
#   2b431da). Within a family they follow one price per vCPU-hour (Dsv3/Dsv5
#   0.048, Dasv5 0.043, Ddsv5 0.0565, Dsv6 0.0504, Dasv6 0.0454, Esv3/Esv5
#   0.063, Easv5 0.0565, Fsv2 about 0.0423; E64s_v3, with less memory than
#   the rate's 512 GiB, is 3.629), which tests/test_vm_sizes.py checks. That
#   file has 9 Dasv5/Easv5 sizes (D2as, D64as, D96as, E4as, E8as, E20as,
#   E32as, E64as, E96as v5) at their family's rate plus exactly 0.046 USD per
#   vCPU, the Windows licence: its generator keeps whichever meter of a size
#   it reads last. Those 9 rows hold the family's Linux rate instead.
# The 24 rows this table had before agree to the cent. Other regions differ
# (westeurope is about 13 % dearer); a pool's `pricePerHour` replaces the list
# price, and the plan says "eastus list prices" where it uses them.
CATALOGUE = Path(__file__).with_name("vm_sizes.json")


def _load(path: Path) -> tuple[dict[str, object], tuple[VmSize, ...]]:
    data = json.loads(path.read_text())
    sizes = tuple(VmSize(s["name"], int(s["vcpus"]), int(s["memoryGiB"]), float(s["pricePerHour"]))
                  for s in data["sizes"])
    return {k: v for k, v in data.items() if k != "sizes"}, sizes


CATALOGUE_INFO, _SIZES = _load(CATALOGUE)
VM_SIZES: dict[str, VmSize] = {s.name: s for s in _SIZES}

# The least a node pool's VM may have: AKS refuses sizes under 2 vCPU (AKS
# docs, "Quotas, virtual machine size restrictions, and region availability"),
# and Azure's own AKS size list keeps 2 vCPU and 4 GB as the floor
# (Azure/azure-mcp, eng/scripts/Get-AksSkus.ps1, read 2026-12-02).
MIN_VCPUS = 2
MIN_MEMORY_GIB = 4


def table_source() -> str:
    """Where the table's figures come from, for messages."""
    return (f"{CATALOGUE_INFO['region']} list prices of {CATALOGUE_INFO['retrieved']}, "
            f"components/model/{CATALOGUE.name}")


def closest_size(name: str) -> str | None:
    """The listed size a mistyped name most likely meant, if any is close."""
    by_lower = {n.lower(): n for n in VM_SIZES}
    if name.lower() in by_lower:
        return by_lower[name.lower()]
    # Every name shares "Standard_", so only a near miss (a letter or a
    # version off) counts as close.
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.9)
    return by_lower[close[0]] if close else None


def resolve_size(name: str, vcpus: int | None = None, memory_gib: int | None = None,
                 price_per_hour: float | None = None) -> VmSize:
    """The table's row for `name`, else one from the user's figures.

    KeyError when the table lacks the size and the figures are not all given;
    settings parsing refuses such a pool first, so the plan never sees one.
    """
    listed = VM_SIZES.get(name)
    if listed is not None:
        return listed
    if vcpus is None or memory_gib is None or price_per_hour is None:
        raise KeyError(name)
    return VmSize(name, vcpus, memory_gib, price_per_hour, listed=False)


# AKS kube-reserved CPU by core count (AKS docs, "Node resource reservations",
# read 2026-12-02): its table stops at 64 cores. Its steps are 60m for the
# first core, 40m for the second, 20m for each of the next two and 10m for
# every core past four (64 cores: 140 + 60 x 10 = 740, as listed), so the
# same steps carry the table to the 72- and 96-vCPU sizes.
_KUBE_RESERVED_CPU_MILLI = {1: 60, 2: 100, 4: 140, 8: 180, 16: 260, 32: 420, 64: 740}


def kube_reserved_cpu_millicores(vcpus: int) -> int:
    """AKS's kube-reserved CPU for a node of `vcpus` cores."""
    if vcpus in _KUBE_RESERVED_CPU_MILLI:
        return _KUBE_RESERVED_CPU_MILLI[vcpus]
    if vcpus < 4:
        return 60 + 40 * (vcpus >= 2) + 20 * max(0, vcpus - 2)
    return 140 + 10 * (vcpus - 4)


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
    return Allocatable(
        cpu_millicores=size.vcpus * 1000 - kube_reserved_cpu_millicores(size.vcpus),
        memory_mib=total_mib - reserved_mib - _EVICTION_MIB,
    )
