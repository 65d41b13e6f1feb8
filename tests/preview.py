"""What `pulumi preview` would show for a change, and what AKS then accepts, from mocked program runs.

Three layers, each from its source:

1. The engine (pulumi/pulumi pkg/resource/deploy/step_generator.go). A
   resource is matched to its old state by URN, or by one of its aliases; an
   old URN nothing matches is deleted, after every create and update. What a
   resource's ignoreChanges names is taken from the old inputs before the
   provider diffs. A replacement is refused when the old state and the new
   registration are both protected ("we do allow unprotecting and replacing
   to happen in a single update cycle"); a delete when the old state is
   protected (step.go, DeleteStep). Both stop `pulumi preview` too.
2. The providers' diff rules for the types this program declares.
   - pulumi-kubernetes provider/pkg/provider/provider.go Diff compares the
     new inputs with the old *live* object recorded in the state, pruned to
     the old inputs' shape (so drift made by controllers shows); the fields
     of diff.go's forceNewProperties replace, and ConfigMap/Secret data too
     without enableConfigMapMutable/enableSecretMutable. A replacement
     deletes first only when the object is named and keeps its name and
     namespace. With server-side apply, a field another field manager owns
     conflicts in the preview's dry run unless the object has
     pulumi.com/patchForce, and an ignoreChanges field another manager owns
     is dropped from the patch (await.go handleSSAErr,
     handleSSAIgnoreFields). Since v4.29.0 a create is a plain create: an
     object that already exists fails it with AlreadyExists unless the
     provider has upsertExistingObjects (pulumi-kubernetes#2926), so a
     renamed resource without an alias fails where it used to take the
     object over (and then delete it).
   - pulumi-azure-native provider/pkg/gen/replacement.go (forceNewMap), plus
     the path parameters of a resource's Azure ID and a tracked resource's
     location (create-only in the ARM specs). Of ManagedCluster's
     networkProfile only the listed fields replace (pulumi-azure-native#4756).
     An update is one PUT built from the inputs.
   - pulumi-random (terraform-provider-random): every argument of
     random_password and random_bytes forces a new value.
   - pulumi-docker-build provider/internal/image.go: a changed build is an
     update that rebuilds and pushes. Its Diff compares a registry's address
     and username only ("we ignore password changes"), so a new registry
     token is no change.
3. AKS itself, for what pulumi-azure-native sends it (aks_rules): see
   components/azure/pools.py for the sources.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.upgrade.recorder import Registration

K8S_REPLACE: dict[str, tuple[str, ...]] = {
    "*": ("metadata.name", "metadata.namespace"),
    "StatefulSet": ("spec.podManagementPolicy", "spec.revisionHistoryLimit", "spec.selector", "spec.serviceName",
                    "spec.volumeClaimTemplates"),
    "Deployment": ("spec.selector",),
    "Job": ("spec.completions", "spec.parallelism", "spec.selector", "spec.template"),
    "PersistentVolumeClaim": ("spec.accessModes", "spec.selector", "spec.storageClassName", "spec.volumeName"),
    "Secret": ("type", "data", "stringData"),  # data: no enableSecretMutable on our provider
    "Service": ("spec.clusterIP",),
}
AZURE_REPLACE: dict[str, tuple[str, ...]] = {
    "azure-native:containerservice:AgentPool": (
        "vmSize", "gpuInstanceProfile", "nodePublicIPTags", "resourceGroupName", "resourceName", "agentPoolName"),
    "azure-native:containerservice:ManagedCluster": (
        "dnsPrefix", "location", "nodeResourceGroup", "linuxProfile", "windowsProfile", "resourceGroupName",
        "resourceName", "networkProfile.networkPlugin", "networkProfile.networkPluginMode",
        "networkProfile.podCidr", "networkProfile.serviceCidr", "networkProfile.serviceCidrs",
        "networkProfile.dnsServiceIP", "networkProfile.networkMode", "networkProfile.networkDataplane",
        "networkProfile.networkPolicy", "networkProfile.outboundType", "diskEncryptionSetID", "fqdnSubdomain"),
    "azure-native:authorization:RoleAssignment": ("principalId", "scope", "roleAssignmentName"),
    "azure-native:resources:ResourceGroup": ("location", "resourceGroupName"),
    "azure-native:containerregistry:Registry": ("location", "resourceGroupName", "registryName"),
    "azure-native:storage:StorageAccount": ("isHnsEnabled", "location", "resourceGroupName", "accountName"),
    "azure-native:storage:BlobContainer": ("resourceGroupName", "accountName", "containerName"),
    "azure-native:storage:ManagementPolicy": ("resourceGroupName", "accountName", "managementPolicyName"),
    "azure-native:managedidentity:UserAssignedIdentity": ("location", "resourceGroupName", "resourceName"),
    "azure-native:managedidentity:FederatedIdentityCredential": (
        "resourceGroupName", "resourceName", "federatedIdentityCredentialResourceName"),
}
PULUMI_MANAGER = "pulumi-kubernetes"
PATCH_FORCE = "pulumi.com/patchForce"
AGENT_POOL = "azure-native:containerservice:AgentPool"


@dataclass(frozen=True)
class Step:
    op: str  # create, update, replace, delete
    type: str
    name: str
    paths: tuple[str, ...] = ()
    delete_first: bool = False
    urn: str = ""


@dataclass
class Live:
    """The deployed stack as the providers and AKS see it, beyond what its state's inputs say.

    fields: per Kubernetes resource name, dotted paths whose live value
    differs from the recorded inputs (a controller's drift: KEDA's replicas).
    managers: per Kubernetes resource name, the field manager owning a path
    when it is not Pulumi (KEDA's HPA owns spec.replicas).
    pools: agentPoolProfiles as AKS lists them (name, count,
    enableAutoScaling, minCount, maxCount, maxPods, vmSize, nodeLabels).
    """

    fields: dict[str, dict[str, Any]] = field(default_factory=dict)
    managers: dict[str, dict[str, str]] = field(default_factory=dict)
    pools: list[dict[str, Any]] = field(default_factory=list)
    # (kind, namespace, name) of objects in the cluster that no resource of
    # the state holds (a StatefulSet's template-made claims).
    objects: set[tuple[str, str, str]] = field(default_factory=set)


@dataclass
class Preview:
    steps: list[Step]
    refused: str | None = None
    protected_refusals: list[str] = field(default_factory=list)
    # Server-side apply field conflicts the preview's dry run reports.
    conflicts: list[str] = field(default_factory=list)
    # What AKS would reject, or fail on, when `pulumi up` sends it.
    aks: list[str] = field(default_factory=list)
    # Creates the Kubernetes API refuses at `pulumi up` (AlreadyExists).
    exists: list[str] = field(default_factory=list)

    def of(self, op: str) -> list[Step]:
        return [s for s in self.steps if s.op == op]

    def step(self, name: str) -> Step | None:
        return next((s for s in self.steps if s.name == name), None)

    @property
    def stopped(self) -> bool:
        """The preview fails: `pulumi up` after it changes nothing."""
        return bool(self.refused or self.protected_refusals or self.conflicts)


# --- the state a preview runs against ------------------------------------------------------


@dataclass
class State:
    """A stack's state: what an earlier run of the program registered."""

    registrations: list[Registration]
    outputs: dict[str, Any] = field(default_factory=dict)
    commit: str = ""

    @classmethod
    def of(cls, run: Any) -> State:
        """A copy of what a program run registered, to edit."""
        return cls([copy.deepcopy(r) for r in run.registrations], dict(getattr(run, "outputs", {}) or {}))

    @classmethod
    def load(cls, path: Path) -> State:
        data = json.loads(path.read_text())
        return cls([Registration.from_json(r) for r in data["registrations"]], data.get("outputs", {}),
                   data.get("commit", ""))


def registrations(run: Any) -> list[Registration]:
    return list(run.registrations)


def _managed(regs: Iterable[Registration]) -> dict[str, Registration]:
    """Custom resources the engine manages, by URN (providers and reads aside)."""
    return {r.urn: r for r in regs if r.custom and not r.read and not r.type.startswith("pulumi:providers:")}


def alias_urns(r: Registration, by_urn: Mapping[str, Registration]) -> list[str]:
    found = list(r.alias_urns)
    stack_project = "::".join(r.urn.split("::")[:2])
    for alias in r.aliases:
        if "urn" in alias:
            found.append(alias["urn"])
            continue
        spec = alias.get("spec", {})
        parent = "" if spec.get("noParent") else spec.get("parentUrn", r.parent)
        qualified = spec.get("type", r.type)
        parent_reg = by_urn.get(parent)
        if parent and (parent_reg is None or parent_reg.type != "pulumi:pulumi:Stack"):
            qualified = f"{parent.split('::')[2]}${qualified}"
        found.append(f"{stack_project}::{qualified}::{spec.get('name', r.name)}")
    return found


# --- dotted paths --------------------------------------------------------------------------


def changed_paths(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted paths where two input trees differ (lists compare whole, like field sets)."""
    if isinstance(old, dict) and isinstance(new, dict):
        found: list[str] = []
        for key in sorted(set(old) | set(new)):
            found += changed_paths(old.get(key), new.get(key), f"{prefix}.{key}" if prefix else key)
        return found
    return [] if old == new else [prefix]


def _split(path: str) -> list[str]:
    return path.replace("[", ".").replace("]", "").split(".")


_MISSING = object()


def get_path(tree: Any, path: str) -> Any:
    node = tree
    for part in _split(path):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def set_path(tree: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = _split(path)
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
    if value is _MISSING:
        node.pop(last, None)
    else:
        node[last] = value


def _matches(path: str, rules: Iterable[str]) -> bool:
    return any(path == r or path.startswith(r + ".") for r in rules)


# --- the providers -------------------------------------------------------------------------


def forces_replacement(typ: str, paths: list[str], k8s_config_maps_mutable: bool = True) -> bool:
    if typ.startswith("kubernetes:"):
        kind = typ.rsplit(":", 1)[1]
        rules = K8S_REPLACE["*"] + K8S_REPLACE.get(kind, ())
        if kind == "ConfigMap" and not k8s_config_maps_mutable:
            rules += ("data", "binaryData")
        return any(_matches(p, rules) for p in paths)
    if typ.startswith("random:"):
        return bool(paths)
    return any(_matches(p, AZURE_REPLACE.get(typ, ())) for p in paths)


def _config_maps_mutable(regs: Iterable[Registration]) -> bool:
    providers = [r for r in regs if r.type == "pulumi:providers:kubernetes"]
    return all(str(p.inputs.get("enableConfigMapMutable")).lower() == "true" for p in providers)


def _diffed(typ: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """The inputs a provider's diff compares: docker-build leaves out registry passwords."""
    if typ == "docker-build:index:Image" and isinstance(inputs.get("registries"), list):
        registries = [{k: v for k, v in r.items() if k != "password"} for r in inputs["registries"]]
        return {**inputs, "registries": registries}
    return inputs


def _after_ignore_changes(old: Registration, new: Registration) -> dict[str, Any]:
    """The new inputs as the engine hands them to the provider: ignored paths keep their old values."""
    inputs = copy.deepcopy(new.inputs)
    for path in new.ignore_changes:
        set_path(inputs, ".".join(_split(path)), get_path(old.inputs, path))
    return inputs


def _live(old: Registration, live: Live) -> dict[str, Any]:
    tree = copy.deepcopy(old.inputs)
    for path, value in live.fields.get(old.name, {}).items():
        set_path(tree, path, value)
    return tree


def _conflicts(new: Registration, sent: dict[str, Any], live: Live, live_tree: dict[str, Any]) -> list[str]:
    annotations = new.inputs.get("metadata", {}).get("annotations", {}) or {}
    if str(annotations.get(PATCH_FORCE)).lower() == "true":
        return []
    found = []
    for path, manager in live.managers.get(new.name, {}).items():
        if manager == PULUMI_MANAGER or _matches(path, new.ignore_changes):
            continue  # an ignored field another manager owns is left out of the patch
        value = get_path(sent, path)
        if value is not _MISSING and value != get_path(live_tree, path):
            found.append(f"{new.name}: {path} is owned by {manager}")
    return found


def _diff(old: Registration, new: Registration, live: Live, mutable: bool) -> tuple[Step | None, list[str]]:
    sent = _after_ignore_changes(old, new)
    ignored = new.ignore_changes
    if new.type.startswith("kubernetes:"):
        before = _live(old, live)
        paths = [p for p in changed_paths(before, sent) if not _matches(p, ignored)]
        conflicts = _conflicts(new, sent, live, before) if paths else []
    else:
        before = _diffed(old.type, old.inputs)
        paths = [p for p in changed_paths(before, _diffed(new.type, sent)) if not _matches(p, ignored)]
        conflicts = []
    if not paths:
        return None, []
    if forces_replacement(new.type, paths, mutable):
        meta_new, meta_old = sent.get("metadata", {}), before.get("metadata", {})
        delete_first = (new.type.startswith("kubernetes:") and bool(meta_new.get("name"))
                        and meta_new.get("name") == meta_old.get("name")
                        and meta_new.get("namespace") == meta_old.get("namespace"))
        return Step("replace", new.type, new.name, tuple(paths), delete_first, new.urn), []
    return Step("update", new.type, new.name, tuple(paths), urn=new.urn), conflicts


def preview(before: Any, after: Any, live: Live | None = None) -> Preview:
    """The steps `pulumi preview` would list going from the state `before` holds to what `after` declares.

    `before`: a State, or a ProgramRun whose registrations stand for the state.
    """
    error = getattr(after, "error", None)
    if error is not None:
        return Preview([], refused=str(error))
    live = live or Live()
    old_regs, new_regs = registrations(before), registrations(after)
    old, new = _managed(old_regs), _managed(new_regs)
    by_urn = {r.urn: r for r in new_regs}
    mutable = _config_maps_mutable(new_regs)
    steps: list[Step] = []
    conflicts: list[str] = []
    refusals: list[str] = []
    matched: set[str] = set()
    for urn, reg in new.items():
        old_urn = next((u for u in [urn, *alias_urns(reg, by_urn)] if u in old and u not in matched), None)
        if old_urn is None:
            steps.append(Step("create", reg.type, reg.name, urn=urn))
            continue
        matched.add(old_urn)
        step, found = _diff(old[old_urn], reg, live, mutable)
        conflicts += found
        if step is not None:
            steps.append(step)
            if step.op == "replace" and old[old_urn].protect and reg.protect:
                refusals.append(reg.name)
    for urn in sorted(old.keys() - matched):
        gone = old[urn]
        steps.append(Step("delete", gone.type, gone.name, urn=urn))
        if gone.protect:
            refusals.append(gone.name)
    shown = Preview(steps, protected_refusals=refusals, conflicts=conflicts)
    shown.aks = aks_rules(shown, old, new, live)
    shown.exists = already_existing(shown, old, new, live)
    return shown


def _object_key(reg: Registration) -> tuple[str, str, str]:
    meta = reg.inputs.get("metadata", {}) or {}
    return reg.type.rsplit(":", 1)[1], str(meta.get("namespace", "")), str(meta.get("name", ""))


def already_existing(shown: Preview, old: Mapping[str, Registration], new: Mapping[str, Registration],
                     live: Live) -> list[str]:
    """Kubernetes creates that meet an object the cluster still has: deletes come after every create."""
    there = set(live.objects) | {_object_key(old[s.urn]) for s in shown.of("delete")
                                 if s.type.startswith("kubernetes:")}
    found = []
    for step in shown.of("create"):
        key = _object_key(new[step.urn])
        if step.type.startswith("kubernetes:") and key[2] and key in there:
            found.append(f"{step.name}: {'/'.join(key)} already exists")
    return found


# --- AKS -----------------------------------------------------------------------------------


def _pool(live: Live, name: str) -> dict[str, Any] | None:
    return next((p for p in live.pools if p.get("name") == name), None)


def aks_rules(shown: Preview, old: Mapping[str, Registration], new: Mapping[str, Registration],
              live: Live) -> list[str]:
    """What AKS rejects, or fails on, among the pool PUTs and deletes the update sends (pools.py cites each)."""
    found = []
    for step in shown.steps:
        if step.type != AGENT_POOL:
            continue
        if step.op == "delete":
            pool = _pool(live, old[step.urn].inputs.get("agentPoolName", ""))
            if pool and int(pool.get("count", 0)) > 0:
                found.append(f"{step.name}: deleting a pool that runs {pool['count']} nodes drains each for a "
                             f"bounded time (PodDrainFailure, Azure/AKS#2090)")
            continue
        reg = new[step.urn]
        sent = _after_ignore_changes(old[step.urn], reg) if step.urn in old else reg.inputs
        pool = _pool(live, sent.get("agentPoolName", ""))
        if pool is None:
            continue
        if pool.get("enableAutoScaling") and sent.get("enableAutoScaling") and sent.get("count") != pool["count"]:
            found.append(f"{step.name}: count {sent.get('count')} on an autoscaled pool running {pool['count']} "
                         f"nodes is a manual scale, which AKS refuses")
        if sent.get("enableAutoScaling") and sent.get("maxCount") is not None and \
                int(sent.get("count", 0)) > int(sent["maxCount"]):
            found.append(f"{step.name}: count {sent.get('count')} above maxCount {sent['maxCount']}")
        if pool.get("maxPods") is not None and sent.get("maxPods") != pool["maxPods"]:
            found.append(f"{step.name}: maxPods {pool['maxPods']} -> {sent.get('maxPods')} on an existing pool")
    return found


# --- README cells --------------------------------------------------------------------------


def kind_of(step: Step) -> str:
    return step.type.rsplit(":", 1)[1]


def summary(p: Preview) -> str:
    """One README cell: what the preview shows, coarsely."""
    if p.refused is not None:
        return "refused"
    if p.protected_refusals:
        return "refused (protected)"
    if p.conflicts:
        return "refused (field conflict)"
    if not p.steps:
        return "no change"
    parts = []
    for op in ("update", "replace", "create", "delete"):
        kinds = sorted({kind_of(s) for s in p.of(op)})
        if kinds:
            parts.append(f"{op} " + ", ".join(kinds))
    return "; ".join(parts)
