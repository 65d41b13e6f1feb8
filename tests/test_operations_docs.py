"""docs/operations.md, kept true: the figures its upgrade, drain and scaling sections quote are
the prod stack's, and every object its troubleshooting commands name is one the program declares
for prod."""

from __future__ import annotations

import configparser
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

import pytest

from components.azure.pools import worker_pool_name
from components.kubernetes import keda
from components.kubernetes.pgbouncer import PGBOUNCER_DRAIN_SECONDS
from components.model import names
from components.model.capacity import WORKER_MAX_SURGE_NODES, worker_drain_minutes, worker_stop_seconds
from components.model.settings import DEFAULTS
from tests import readme_tables
from tests.conftest import config_for
from tests.harness import ProgramRun
from tests.readme_tables import table_after

PAGE = "docs/operations.md"
TIMES = "\N{MULTIPLICATION SIGN}"


def section(heading: str) -> str:
    """A "## " section of the page, code blocks included (their shell comments start with "# ")."""
    return readme_tables.section(PAGE, f"## {heading}")


def flat(text: str) -> str:
    return " ".join(text.split())


def missing(text: str, expected: list[str]) -> list[str]:
    return [e for e in expected if flat(e) not in flat(text)]


# --------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------

def test_the_upgrade_section_names_the_default_kubernetes_version() -> None:
    text = section("Upgrades")
    assert f"`kubernetesVersion` (default `{DEFAULTS['kubernetesVersion']}`)" in text, PAGE


def test_the_drain_section_quotes_prods_pools_and_budgets(runs: dict[str, ProgramRun]) -> None:
    prod = config_for("prod")
    plan, longest = prod.plan, prod.settings.longest_task_seconds
    run = runs["prod"]
    worker = run.manifest("StatefulSet", names.WORKER)["spec"]["template"]["spec"]
    pgbouncer = run.manifest("Deployment", names.PGBOUNCER)["spec"]["template"]["spec"]
    assert worker["terminationGracePeriodSeconds"] == worker_stop_seconds(longest) == longest + 60
    assert pgbouncer["terminationGracePeriodSeconds"] == PGBOUNCER_DRAIN_SECONDS + 10
    drain = worker_drain_minutes(longest)
    per_node = plan.worker_nodes.workers_per_node
    expected = [
        f"worker pool (`{worker_pool_name(plan.worker_nodes.vm_size)}` on prod)",
        f"| {WORKER_MAX_SURGE_NODES} node: one node drained at a time |",
        f"`longestTaskSeconds` + 60 s, in minutes, + 5: {drain} on prod",
        f"workers: a whole node's workers at once ({per_node} on prod)",
        "workers: `longestTaskSeconds` + 60 s",
        f"PgBouncer: {PGBOUNCER_DRAIN_SECONDS + 10} s",
        f"a busy node would need {per_node} grace periods",
        f"takes up to {drain} minutes per node on prod",
        f"three failures in a row, {plan.control_plane.api_server.heartbeat_interval_seconds} s apart",
        f"({plan.control_plane.api_server.replicas} pods on prod,",
    ]
    assert missing(section("Node upgrades and drains"), expected) == []


def test_the_drain_table_names_every_workload_and_its_budget(runs: dict[str, ProgramRun]) -> None:
    run = runs["prod"]
    budgeted = {m["metadata"]["name"] for m in run.manifests() if m["kind"] == "PodDisruptionBudget"}
    workloads = {m["metadata"]["name"] for m in run.manifests() if m["kind"] in ("Deployment", "StatefulSet")}
    # How the table calls each workload.
    called = {names.API_SERVER: "api-server", names.SCHEDULER: "scheduler", names.PGBOUNCER: "PgBouncer",
              names.WORKER: "workers", names.POSTGRES: "PostgreSQL", names.RABBITMQ: "RabbitMQ",
              names.DAG_PROCESSOR: "dag-processor", names.TRIGGERER: "triggerer", names.STATSD: "statsd-exporter"}
    assert workloads == set(called), "a workload the drain table does not name"
    [cells] = [c for label, c in table_after("## Node upgrades and drains", page=PAGE).items()
               if label == "disruption budgets"]
    worker_cell, system_cell = cells
    with_budget, without = system_cell.split("; ", 1)
    assert names.WORKER in budgeted and worker_cell.startswith(called[names.WORKER])
    for name in workloads - {names.WORKER}:
        shown = with_budget if name in budgeted else without
        has = "has" if name in budgeted else "has no"
        assert called[name] in shown.split(":")[0], f"{PAGE}: {called[name]} {has} budget"


def test_the_scaling_table_is_prods_airflow_cfg() -> None:
    prod = config_for("prod")
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read_string(prod.airflow_cfg)
    core, plan = cfg["core"], prod.plan
    rows = {label: cells[-1] for label, cells in table_after("## Scaling", page=PAGE).items()}
    workers = plan.worker
    assert rows == {
        "`[core] parallelism`": core["parallelism"],
        "`default_pool` slots": str(plan.default_pool_slots),
        "`[core] max_active_tasks_per_dag` (`maxActiveTasksPerDag`)": core["max_active_tasks_per_dag"],
        f"task slots: workers {TIMES} `workerConcurrency`":
            f"{workers.replicas} {TIMES} {workers.concurrency} = {workers.task_slots}",
    }, PAGE


def test_the_scaling_prose_quotes_keda_and_the_plan(runs: dict[str, ProgramRun]) -> None:
    plan = config_for("prod").plan
    # "each run one pod": every workload but the api-server and the workers.
    single = {m["metadata"]["name"] for m in runs["prod"].manifests()
              if m["kind"] in ("Deployment", "StatefulSet") and m["spec"].get("replicas") == 1}
    assert single == {names.SCHEDULER, names.DAG_PROCESSOR, names.TRIGGERER, names.PGBOUNCER, names.POSTGRES,
                      names.RABBITMQ, names.STATSD}, single
    assert plan.prewarm is not None
    expected = [
        f"Every {keda.POLLING_INTERVAL_SECONDS} s it counts",
        f"between `workerMinReplicas` ({DEFAULTS['workerMinReplicas']}) and the plan's workers "
        f"({plan.worker.replicas} on prod)",
        f"the HPA asks for all the needed ones in its next period ({keda.SCALE_UP_PERIOD_SECONDS} s)",
        f"held for {keda.SCALE_DOWN_WINDOW_SECONDS} s",
        f"the last worker goes {keda.COOLDOWN_SECONDS} s after the last task",
        f"from {plan.prewarm.lead_minutes} minutes before",
        f"`maxActiveRunsPerDag` ({DEFAULTS['maxActiveRunsPerDag']})",
        f"from `workerPool.minCount` ({plan.worker_nodes.min_count} under KEDA)",
        f"the plan's workers need ({plan.worker_nodes.max_count} on prod)",
    ]
    assert missing(section("Scaling"), expected) == []


def test_the_troubleshooting_prose_quotes_the_defaults() -> None:
    plan = config_for("prod").plan
    assert plan.startup is not None
    node_ready = {s.label: s.seconds for s in plan.startup.from_zero.steps}["node Ready"]
    expected = [
        f"`taskQueuedTimeoutSeconds` ({DEFAULTS['taskQueuedTimeoutSeconds']} s by default)",
        f"`taskLogRetentionDays` ({DEFAULTS['taskLogRetentionDays']} days by default)",
        f"A new node takes about {node_ready / 60:.0f} minutes to become Ready",
        f"worker pool `{worker_pool_name(plan.worker_nodes.vm_size)}`",
    ]
    assert missing(section("Troubleshooting"), expected) == []


# --------------------------------------------------------------------------
# Troubleshooting commands: every name one the program declares for prod
# --------------------------------------------------------------------------

OUTPUT = re.compile(r"\$\(pulumi stack output (\w+)\)")
# kubectl flags that take a value (the rest take none).
VALUE_FLAGS = {"-n", "--namespace", "-l", "--selector", "-o", "--output", "--tail", "--since", "-c", "--container",
               "--field-selector"}
# AKS's own components, which the program does not declare (the KEDA add-on, the cluster autoscaler).
AKS_NAMESPACES = {"kube-system"}
# kubectl's names for the kinds (singular or plural) -> the kind.
KINDS = {"pod": "Pod", "scaledobject": "ScaledObject", "statefulset": "StatefulSet", "deployment": "Deployment",
         "networkpolicy": "NetworkPolicy", "serviceaccount": "ServiceAccount", "configmap": "ConfigMap",
         "secret": "Secret", "service": "Service", "poddisruptionbudget": "PodDisruptionBudget",
         "triggerauthentication": "TriggerAuthentication", "job": "Job", "cronjob": "CronJob", "node": "Node"}


def commands(text: str) -> list[str]:
    """The kubectl and az commands of a text: the lines of its sh blocks and its inline code spans."""
    fence = re.compile(r"```sh\n(.*?)```", re.S)
    found = [line.strip() for block in fence.findall(text) for line in block.splitlines()]
    found += [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", fence.sub("", text))]
    return [c for c in found if c.startswith(("kubectl ", "az "))]


@dataclass
class Declared:
    """What the program declares for a stack, by the names a command uses."""

    namespace: str
    objects: dict[tuple[str, str], dict[str, Any]]
    outputs: set[str]
    pools: dict[str, dict[str, str]]
    containers: set[str]
    replicas: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, run: ProgramRun) -> Declared:
        # Jobs have generated names, which no command can use.
        objects = {(m["kind"], m["metadata"]["name"]): m for m in run.manifests() if "name" in m["metadata"]}
        [namespace] = [name for kind, name in objects if kind == "Namespace"]
        pools = {p.inputs["agentPoolName"]: p.inputs.get("nodeLabels") or {}
                 for p in run.of_type("azure-native:containerservice:AgentPool")}
        containers = {c.inputs["containerName"] for c in run.of_type("azure-native:storage:BlobContainer")}
        declared = cls(namespace, objects, set(run.outputs), pools, containers)
        for (kind, name), m in objects.items():
            if kind == "StatefulSet":
                declared.replicas[name] = max(declared.replicas.get(name, 0), m["spec"].get("replicas") or 1)
            if kind == "ScaledObject":
                target = m["spec"]["scaleTargetRef"]["name"]
                declared.replicas[target] = max(declared.replicas.get(target, 0), m["spec"]["maxReplicaCount"])
        return declared

    def pod_template(self, pod: str) -> dict[str, Any] | None:
        """The StatefulSet pod template of a pod name `<statefulset>-<ordinal>` that can exist."""
        found = re.fullmatch(r"(.+)-(\d+)", pod)
        if not found or int(found.group(2)) >= self.replicas.get(found.group(1), 0):
            return None
        return self.objects[("StatefulSet", found.group(1))]["spec"]["template"]

    def labelled(self, key: str, value: str) -> bool:
        """Some declared object or pod template carries the label."""
        for m in self.objects.values():
            template = m.get("spec", {}).get("template", {}) if isinstance(m.get("spec"), dict) else {}
            for labels in (m["metadata"].get("labels") or {}, (template.get("metadata") or {}).get("labels") or {}):
                if labels.get(key) == value:
                    return True
        return False


def kubectl_problems(words: list[str], declared: Declared) -> list[str]:
    if "--" in words:
        words, inside = words[:words.index("--")], words[words.index("--") + 1:]
    else:
        inside = []
    namespace, selectors, positional = None, [], []
    i = 1
    while i < len(words):
        word = words[i]
        flag, _, value = word.partition("=")
        if flag in VALUE_FLAGS:
            if not value:
                i += 1
                value = words[i]
            if flag in ("-n", "--namespace"):
                namespace = value
            elif flag in ("-l", "--selector"):
                selectors += value.split(",")
        elif not word.startswith("-"):
            positional.append(word)
        i += 1
    if namespace in AKS_NAMESPACES:
        return []
    if namespace is None:
        # Cluster scope: nodes, selected by a declared pool's label.
        pool_labels = {f"{k}={v}" for labels in declared.pools.values() for k, v in labels.items()}
        return [f"node label {s}" for s in selectors if s not in pool_labels] + \
            [f"{p}: not a node" for p in positional[1:] if KINDS.get(p.rstrip("s")) != "Node"]
    problems = [] if namespace == declared.namespace else [f"namespace {namespace}"]
    problems += [f"label {s}" for s in selectors if not declared.labelled(*s.split("=", 1))]
    verb, targets = positional[0], positional[1:]
    if verb in ("get", "describe") and targets and "/" not in targets[0]:
        kind = KINDS.get(targets[0].lower().rstrip("s")) or KINDS.get(targets[0].lower())
        targets = [f"{targets[0]}/{name}" for name in targets[1:]] if kind else [targets[0]]
        if kind is None:
            problems.append(f"kind {targets[0]}")
    template = None
    for target in targets:
        kind_word, _, name = target.rpartition("/")
        kind = KINDS.get(kind_word.lower().rstrip("s"), kind_word) if kind_word else "Pod"
        if kind == "Pod":
            template = declared.pod_template(name)
            if template is None:
                problems.append(f"pod {name}")
        elif (kind, name) not in declared.objects:
            problems.append(f"{kind}/{name}")
        elif kind in ("Deployment", "StatefulSet"):
            template = declared.objects[(kind, name)]["spec"]["template"]
    if inside and template is not None:
        problems += inside_problems(inside, template)
    return problems


def inside_problems(argv: list[str], template: dict[str, Any]) -> list[str]:
    """A command run in a container: the database, user and vhost it names are the container's own."""
    env = {e["name"]: e.get("value") for e in template["spec"]["containers"][0].get("env", [])}
    wanted = {"psql": {"-U": "POSTGRES_USER", "-d": "POSTGRES_DB"}, "rabbitmqctl": {"-p": "RABBITMQ_DEFAULT_VHOST"}}
    problems = []
    for flag, variable in wanted.get(argv[0], {}).items():
        if flag in argv and argv[argv.index(flag) + 1] != env.get(variable):
            problems.append(f"{argv[0]} {flag} {argv[argv.index(flag) + 1]}: the container's {variable} is "
                            f"{env.get(variable)}")
    return problems


def az_problems(words: list[str], declared: Declared) -> list[str]:
    def value(flag: str) -> str | None:
        return words[words.index(flag) + 1] if flag in words else None

    problems = []
    if words[1:4] == ["aks", "nodepool", "show"] and value("--name") not in declared.pools:
        problems.append(f"node pool {value('--name')}")
    if value("--container-name") is not None and value("--container-name") not in declared.containers:
        problems.append(f"blob container {value('--container-name')}")
    return problems


def problems_of(command: str, declared: Declared) -> list[str]:
    """What a command names that the program does not declare."""
    problems = [f"stack output {o}" for o in OUTPUT.findall(command) if o not in declared.outputs]
    words = shlex.split(OUTPUT.sub("OUTPUT", command), comments=True)
    if words[0] == "kubectl":
        problems += kubectl_problems(words, declared)
    else:
        problems += az_problems(words, declared)
    return problems


@pytest.fixture(scope="module")
def declared(runs: dict[str, ProgramRun]) -> Declared:
    return Declared.of(runs["prod"])


def test_every_troubleshooting_command_names_what_prod_declares(declared: Declared) -> None:
    text = section("Troubleshooting")
    found = commands(text)
    assert len([c for c in found if c.startswith("kubectl")]) >= 20, "the section's kubectl commands"
    problems = {c: p for c in found if (p := problems_of(c, declared))}
    assert problems == {}, f"{PAGE}, Troubleshooting: names prod does not declare"
    # The stack outputs the section reads outside its commands (RG=..., CLUSTER=...).
    outputs = set(OUTPUT.findall(text))
    assert outputs and outputs <= declared.outputs, outputs - declared.outputs


@pytest.mark.parametrize(("command", "says"), [
    ("kubectl -n airflow get statefulset airflow-workers", "StatefulSet/airflow-workers"),
    ("kubectl -n airflow logs airflow-worker-99", "pod airflow-worker-99"),
    ("kubectl -n airflow get pods -l app.kubernetes.io/component=workers", "label"),
    ("kubectl -n airflow-prod get scaledobject airflow-worker", "namespace airflow-prod"),
    ("kubectl -n airflow exec airflow-rabbitmq-0 -- rabbitmqctl list_queues -p default name", "RABBITMQ_DEFAULT_VHOST"),
    ("kubectl get nodes -l airflow-aks/pool=workers", "node label"),
    ("az aks nodepool show --resource-group x --cluster-name y --name we8sv5", "node pool we8sv5"),
    ("az storage blob list --account-name $(pulumi stack output taskLogAccount) --container-name logs",
     "stack output taskLogAccount"),
])
def test_the_check_catches_a_name_prod_does_not_declare(declared: Declared, command: str, says: str) -> None:
    assert any(says in p for p in problems_of(command, declared)), problems_of(command, declared)
