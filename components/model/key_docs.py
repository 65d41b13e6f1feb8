"""What each stack config key means, for docs/configuration.md (components/reference.py prints it).

One KeyDoc per key of settings.DEFAULTS (and azure-native:location), one
FieldDoc per node pool field. Defaults are read from DEFAULTS, and the allowed
values from the constants the validation uses, so neither is written twice.
Links are relative to docs/.

Pure Python. `$name` in a text is a figure of the prod stack's plan, filled in
by the generator (components/reference.py, plan_facts).
"""

from __future__ import annotations

from dataclasses import dataclass

from components.model import capacity, catalogues, sizing
from components.model.database_server import SERVER_SKUS
from components.model.drain import AKS_MAX_DRAIN_MINUTES, max_longest_task_seconds
from components.model.egress import AZURE_SERVICES, PROTOCOLS
from components.model.parsing import whole_number
from components.model.prewarm import PREWARM_HOLD_MINUTES
from components.model.schedules import ALLOWED as ALLOWED_SCHEDULES
from components.model.settings import (
    ACR_SKUS,
    AKS_LTS_ONLY,
    AKS_STANDARD_SUPPORT,
    AUTOSCALE_POOL_KEYS,
    CLUSTER_TIERS,
    DAG_BUNDLE_KINDS,
    DAG_BUNDLE_NAME_MAX,
    DAG_BUNDLE_REFRESH_RANGE,
    DATABASES,
    DEFAULT_BACKUP_SCHEDULE,
    DEFAULT_DAG_BUNDLE_REFRESH_SECONDS,
    DEFAULT_DAG_BUNDLES,
    DEFAULT_GIT_REF,
    INT_RANGES,
    KEY_VAULT_OLDEST_AIRFLOW,
    MAX_AUTHORIZED_IP_RANGES,
    MIN_KUBERNETES_MINOR,
    POOL_INT_RANGES,
    POOL_PRICE_RANGE,
    RABBITMQ_OLDEST,
    TARGETS,
    WORKER_SCALINGS,
    deployable_airflow_versions,
)
from components.model.ui import AUTHS, EXPOSURES, ROLES
from components.model.vmsizes import CATALOGUE, CATALOGUE_INFO, VM_SIZES

LOCATION_KEY = "azure-native:location"


@dataclass(frozen=True)
class KeyDoc:
    """One key: its type, what its value may be, and what it does.

    summary: one sentence, for the summary table; details: the rest.
    derived: how the program derives the value when the stack leaves it out
    (only for keys whose DEFAULTS entry is None); "none...": there is no value.
    """

    key: str
    type: str
    summary: str
    allowed: str
    details: str = ""
    derived: str = ""


@dataclass(frozen=True)
class FieldDoc:
    """One field of systemPool and workerPool; a default that is not in DEFAULTS is described."""

    field: str
    type: str
    allowed: str
    meaning: str
    system_default: str = ""
    worker_default: str = ""


def one_of(values: tuple[str, ...] | list[str]) -> str:
    return "one of " + ", ".join(f"`{v}`" for v in values)


def int_range(key: str) -> str:
    return whole_number(*INT_RANGES[key])


BOOLEAN = "`true` or `false`"
_SCHEDULES = ALLOWED_SCHEDULES.replace(" or one of ", ", or one of Airflow's presets ")
_AKS_MINORS = ", ".join(f"1.{m} (until {end})" for m, end in sorted(AKS_STANDARD_SUPPORT.items()))
_LTS = f"1.{min(AKS_LTS_ONLY)}\N{EN DASH}1.{max(AKS_LTS_ONLY)}"
_RABBITMQ = f"{RABBITMQ_OLDEST[0]}.{RABBITMQ_OLDEST[1]}"
_KEY_VAULT_AIRFLOW = ".".join(map(str, KEY_VAULT_OLDEST_AIRFLOW))
_REFRESH = whole_number(*DAG_BUNDLE_REFRESH_RANGE)
_DEFAULT_BUNDLE = ", ".join(f"{k}: {v}" for k, v in DEFAULT_DAG_BUNDLES[0].items())
_PIN = ("`<repository>:<tag>@sha256:<64 hex>` (`scripts/image-digests --resolve <repository>:<tag>` prints one)")

KEYS: tuple[KeyDoc, ...] = (
    KeyDoc("target", "string", "Where the program deploys.", one_of(TARGETS), (
        "`aks`: it creates the Azure resources and deploys into that cluster. `local`: it deploys into the "
        "current kubeconfig context (kind, Docker Desktop, minikube) with no Azure resource, the image built "
        "into the local Docker daemon.")),
    KeyDoc("kubeContext", "string", "The kubeconfig context a local stack deploys into.",
           "a context of your kubeconfig; `target: local` only",
           derived="the current kubeconfig context"),
    KeyDoc("parallelism", "integer",
           "Task instances that may run at once across the deployment (`[core] parallelism`).",
           int_range("parallelism"), (
               "The ceiling is the widest run measured with one scheduler and one PostgreSQL "
               "([Benchmark](development.md#benchmark)), which this design does not scale out. It also sizes "
               "Airflow's `default_pool`, and the plan sizes everything else from it "
               "([Capacity plan](architecture.md#capacity-plan)).")),
    KeyDoc("workerConcurrency", "integer", "Tasks one Celery worker runs at once (`[celery] worker_concurrency`).",
           int_range("workerConcurrency"), "It sets each worker pod's memory and CPU requests."),
    KeyDoc("workers", "integer", "Celery worker replicas (with KEDA: the most it starts).", int_range("workers"),
           "Set, workers \N{MULTIPLICATION SIGN} workerConcurrency must reach parallelism, or the config is refused.",
           derived="ceil(parallelism / workerConcurrency)"),
    KeyDoc("workerScaling", "string", "How the number of workers is set.", one_of(WORKER_SCALINGS), (
        "`keda`: KEDA (AKS's managed add-on) sets the worker replicas from the tasks Airflow has queued or is "
        "running, divided by `workerConcurrency` and rounded up, between `workerMinReplicas` and `workers`; "
        "the worker pool autoscales from `workerPool.minCount` to the nodes the peak needs. `fixed`: always "
        "`workers` workers on a fixed pool (on AKS the ScaledObject stays, paused, so switching either way is "
        "an update). See [KEDA](architecture.md#keda)."),
        derived="`keda` on AKS, `fixed` for `target: local`"),
    KeyDoc("workerMinReplicas", "integer", "The fewest workers KEDA keeps running (0: none between runs).",
           int_range("workerMinReplicas"), "Only with `workerScaling: keda`; at most `workers`."),
    KeyDoc("maxActiveTasksPerDag", "integer", "Running tasks allowed per DAG (`[core] max_active_tasks_per_dag`).",
           int_range("maxActiveTasksPerDag"), "The default lets one DAG run use every slot.",
           derived="parallelism"),
    KeyDoc("maxActiveRunsPerDag", "integer", "Active runs allowed per DAG (`[core] max_active_runs_per_dag`).",
           int_range("maxActiveRunsPerDag")),
    KeyDoc("taskQueuedTimeoutSeconds", "integer",
           "Seconds a task may stay queued before the scheduler fails it (`[scheduler] task_queued_timeout`).",
           int_range("taskQueuedTimeoutSeconds"),
           "Keep it above the time a worker takes to start, including a node the autoscaler adds."),
    KeyDoc("apiServerReplicas", "integer", "api-server pods, which also serve the Execution API every task calls.",
           int_range("apiServerReplicas"), (
               "Unset, the plan derives the pods and `[api] workers` from `parallelism`, the measured cost of a "
               "heartbeat and of a start burst (prod: $prod_api_pods pods \N{MULTIPLICATION SIGN} "
               "$prod_api_workers uvicorn workers). "
               "Set, the plan keeps the count and gives each pod the workers the load needs. See "
               "[Capacity plan](architecture.md#capacity-plan)."),
           derived="from parallelism by the capacity plan"),
    KeyDoc("workerMemoryPerSlotMiB", "integer", "Memory requested per worker task slot, MiB.",
           int_range("workerMemoryPerSlotMiB"), (
               f"The default is the measured {sizing.MEASURED_SLOT_MIB:.1f} MiB per slot (an idle pool child "
               "plus a running task of the 1,000-task reference DAG, `bench/worker`) plus "
               f"{round((sizing.REQUEST_HEADROOM - 1) * 100)} %; raise it for heavier DAGs or tasks.")),
    KeyDoc("workerCpuPerSlotMillicores", "integer", "CPU requested per worker task slot, millicores.",
           int_range("workerCpuPerSlotMillicores"), (
               f"The default is the measured steady CPU of a waiting task "
               f"({sizing.MEASURED_STEADY_MILLICORES_PER_TASK}m) plus "
               f"{round((sizing.REQUEST_HEADROOM - 1) * 100)} %; raise it for tasks that compute. No CPU limit "
               "is set, so task start-up bursts use idle CPU.")),
    KeyDoc("fanoutTasks", "integer", "How many tasks the reference DAG `fanout` (in `app/dags`) starts at once.",
           int_range("fanoutTasks"), derived="parallelism"),
    KeyDoc("fanoutSleepSeconds", "integer", "Seconds each task of the reference DAG sleeps.",
           int_range("fanoutSleepSeconds")),
    KeyDoc("fanoutSchedule", "string", "When the reference DAG runs (its `schedule`).",
           f"{_SCHEDULES}; `\"\"` or null: no schedule", (
               "Read in Airflow's default timezone (UTC unless `airflowConfig` sets `[core] default_timezone`). "
               "With no schedule, runs are triggered by hand. With `catchup=False` an unpaused DAG runs at once "
               "for the latest past cron time.")),
    KeyDoc("prewarmSchedules", "list", "Cron schedules whose runs get their workers before they start.",
           f"a list of schedules, each {_SCHEDULES}", (
               "A KEDA `cron` trigger per schedule asks for the plan's workers from the start-up lead "
               f"(`prewarm_lead_minutes`, $prod_lead_minutes min for prod) before each run until "
               f"{PREWARM_HOLD_MINUTES} minutes after it; `capacitySummary` prints the windows and what they "
               "cost. Refused with `workerScaling: fixed`, for runs closer together than the window, and where "
               "the window crosses midnight while the day fields are not all `*` (`0 0 * * 1`: Monday's "
               "pre-warm would be on Sunday, which the shifted expression cannot say). See "
               "[KEDA](architecture.md#keda)."),
           derived="`[fanoutSchedule]` with `workerScaling: keda` and a schedule set, else `[]`"),
    KeyDoc("longestTaskSeconds", "integer", "The longest a task may run.",
           f"{int_range('longestTaskSeconds')}; on AKS at most {max_longest_task_seconds()}", (
               "Airflow stops a task that runs longer (`[core] default_task_execution_timeout`, unless the task "
               "sets its own `execution_timeout`); a worker being stopped waits this long (plus a minute) for its "
               "running tasks, and RabbitMQ's `consumer_timeout` is set above it so a long task's message is not "
               f"redelivered. The AKS limit: a node's drain, which AKS caps at {AKS_MAX_DRAIN_MINUTES} minutes, "
               "must outlast a worker's warm shutdown. See "
               "[Node upgrades and drains](operations.md#node-upgrades-and-drains).")),
    KeyDoc("heartbeatIntervalSeconds", "integer",
           "How often each running task's supervisor heartbeats to the api-server "
           "(`[workers] min_heartbeat_interval`).", int_range("heartbeatIntervalSeconds"), (
               "The api-server is sized for it and the scheduler's `task_instance_heartbeat_timeout` follows it: "
               "15 s costs a third of Airflow's 5 s in api-server CPU, and prod still fails a lost task about "
               "$prod_lost_task_seconds s after its last heartbeat. See "
               "[Capacity plan](architecture.md#capacity-plan).")),
    KeyDoc("taskRetries", "integer", "Retries of a task that sets none itself (`[core] default_task_retries`).",
           int_range("taskRetries"), (
               "A task lost with its worker (a SIGKILL, an OOM kill, a lost node) is failed by the scheduler's "
               "heartbeat timeout and runs again instead of failing the run. Every failure of such a task is "
               "retried, its own errors too; a DAG opts out with `default_args={\"retries\": 0}`, a task with "
               "`retries=0`. See [Faults](operations.md#faults).")),
    KeyDoc("taskRetryDelaySeconds", "integer", "Seconds before such a retry (`[core] default_task_retry_delay`).",
           int_range("taskRetryDelaySeconds"), (
               "The default is above the longest outage of a restarted part that the fault tests measured, so "
               "a retry does not meet the same outage. See [Faults](operations.md#faults).")),
    KeyDoc("flower", "boolean", "Also deploy Flower, the Celery monitoring UI.", BOOLEAN),
    KeyDoc("pgbouncer", "boolean", "Put PgBouncer (transaction pooling) between Airflow and PostgreSQL.", BOOLEAN, (
        "The components and the Celery result backend connect to it; the migration Job connects straight to "
        "PostgreSQL. `false`: every client connects to PostgreSQL, which is then sized for all of them. See "
        "[PgBouncer](architecture.md#pgbouncer).")),
    KeyDoc("pgbouncerImage", "string", "PgBouncer image (the one Airflow's Helm chart uses).",
           f"an image with `pgbouncer` on its PATH, by tag and digest: {_PIN}"),
    KeyDoc("pgbouncerMetadataPoolSize", "integer",
           "Server connections PgBouncer keeps for the metadata database.",
           f"{int_range('pgbouncerMetadataPoolSize')}, and at least {capacity.CONNECTIONS_PER_ENGINE}",
           f"Below {capacity.CONNECTIONS_PER_ENGINE}, the most the scheduler alone may hold at once, it is refused.",
           derived="the metadata clients (scheduler, api-servers, dag-processor, triggerer pools)"),
    KeyDoc("pgbouncerResultBackendPoolSize", "integer",
           "Server connections PgBouncer keeps for the Celery result backend (one short write per finished task).",
           int_range("pgbouncerResultBackendPoolSize"),
           derived=(f"one per {capacity.RESULT_BACKEND_CLIENTS_PER_SERVER_CONNECTION} result-backend clients, "
                    f"at least {capacity.MIN_RESULT_BACKEND_POOL}")),
    KeyDoc("postgresStorageGiB", "integer", "Size of the in-cluster metadata database's volume, GiB.",
           int_range("postgresStorageGiB"), (
               "Raising it expands the disk in place (AKS's Azure Disk CSI storage class allows expansion); "
               "Kubernetes refuses a smaller size.")),
    KeyDoc("rabbitmqStorageGiB", "integer", "Size of RabbitMQ's volume, GiB.", int_range("rabbitmqStorageGiB"),
           "Raised in place like `postgresStorageGiB`."),
    KeyDoc("postgresImage", "string", "PostgreSQL image of the in-cluster database.", f"by tag and digest: {_PIN}"),
    KeyDoc("rabbitmqImage", "string", "RabbitMQ image.",
           f"RabbitMQ {_RABBITMQ} or newer, the tag pinned to a minor release, by tag and digest: {_PIN}", (
               "A floating tag (`latest`, `4`, `management`) is refused: a restarted pod could land on a release "
               "RabbitMQ cannot upgrade to directly. See [RabbitMQ](architecture.md#rabbitmq).")),
    KeyDoc("database", "string", "Where Airflow's metadata database runs.", one_of(DATABASES), (
        "`in-cluster`: a PostgreSQL StatefulSet on an Azure disk, with scheduled dumps. `azure`: an Azure "
        "Database for PostgreSQL flexible server, with Azure's backups; needs `target: aks`. A deployed stack "
        "keeps the one it has: a change is refused with the steps to move the data. See "
        "[Azure Database for PostgreSQL](architecture.md#azure-database-for-postgresql).")),
    KeyDoc("databaseBackupRetentionDays", "integer", "Days of database backups kept.",
           int_range("databaseBackupRetentionDays"),
           "The flexible server's point-in-time restore window, or how long the in-cluster database's dumps "
           "are kept."),
    KeyDoc("databaseBackupSchedule", "string", "When a CronJob dumps the in-cluster metadata database.",
           f"{_SCHEDULES}, in UTC; `\"\"` or null: no dumps", (
               "`database: in-cluster` only. The dump (`pg_dump --format=custom`) goes to the container "
               "`airflow-backups` of the task-log storage account. On AKS `remoteTaskLogs: false` is refused "
               "unless this is null: there is nowhere outside the cluster to put the dumps. See "
               "[Back up and restore the database](operations.md#back-up-and-restore-the-database)."),
           derived=(f"`{DEFAULT_BACKUP_SCHEDULE}` where the dumps have storage (AKS with `remoteTaskLogs`; "
                    "`target: local` with `taskLogEmulatorEndpoint`), else none")),
    KeyDoc("databaseHighAvailability", "boolean", "Zone-redundant high availability for the flexible server.",
           BOOLEAN, (
               "`database: azure` only: a standby server in another zone takes over on failure. Needs the "
               "General Purpose tier (the plan picks it); doubles the server's price.")),
    KeyDoc("databaseGeoRedundantBackup", "boolean", "Copy the flexible server's backups to the paired region.",
           BOOLEAN, "`database: azure` only. Backup storage is billed by use, outside the hourly figures."),
    KeyDoc("databaseSku", "string", "The flexible server's size, chosen by hand.", one_of(list(SERVER_SKUS)), (
        "`database: azure` only. Refused when its `max_connections` is below the plan's, or Burstable with "
        "`databaseHighAvailability`."),
        derived="the cheapest size whose `max_connections`, memory and sustained CPU carry the plan's database"),
    KeyDoc("taskEgress", "list", "Destinations outside the cluster that tasks may reach.", (
        f"a list of `{{cidr, port}}` entries (or `ports`, and `protocol` {' or '.join(PROTOCOLS)}) and "
        f"`{{service}}` entries, the service {one_of(list(AZURE_SERVICES))}, an optional `cidr` narrowing it"), (
        "Opened on the workers' and the triggerer's NetworkPolicies. Empty: the policies open only what the "
        "deployment needs. See [Reaching your own systems](user-guide.md#reaching-your-own-systems).")),
    KeyDoc("dagBundles", "list", "Where the DAGs come from.", (
        f"a list of bundles `{{name, kind, ...}}`, names unique ({DAG_BUNDLE_NAME_MAX} characters at most: "
        f"lowercase letters, digits, `-`), kind {one_of(DAG_BUNDLE_KINDS)}"), (
        "`kind: image`: the image's `app/dags` (at most one). `kind: git`: `url` (https, no credentials in it), "
        f"`ref` (branch or tag, default `{DEFAULT_GIT_REF}`), `subdir`, `refreshSeconds` ({_REFRESH}, default "
        f"{DEFAULT_DAG_BUNDLE_REFRESH_SECONDS}), `credentials` (`true`: a token from `dagBundleTokens`). "
        "`kind: blob`: `container` (created in the task-log storage account), `prefix`, `refreshSeconds`; "
        "needs `remoteTaskLogs` on AKS, `taskLogEmulatorEndpoint` locally; not versioned. Written to "
        "`[dag_processor] dag_bundle_config_list`. See [Ship DAGs](user-guide.md#ship-dags)."),
        derived=f"the image's DAG folder alone (`[{{{_DEFAULT_BUNDLE}}}]`)"),
    KeyDoc("dagBundleTokens", "object", "Access tokens of the git bundles with `credentials: true`.",
           "a secret object `{bundle name: token}`", (
               "Set each with `pulumi config set --secret --path 'dagBundleTokens.<bundle>' <token>`; refused "
               "when not a secret, when a credentialed bundle has no token, or when it names another bundle. "
               "Reaches only the dag-processor and the workers, as an Airflow connection in a Kubernetes "
               "Secret."),
           derived="none"),
    KeyDoc("airflowVersion", "string", "Apache Airflow release of the image and of the airflow.cfg option names.",
           f"{one_of(list(deployable_airflow_versions()))}: the releases with a constraints file", (
               "A release needs `app/constraints/constraints-<version>.txt` (see "
               "[Add Python packages](user-guide.md#add-python-packages)) and an airflow.cfg catalogue "
               "(`scripts/catalogues airflow-config`). See "
               "[Upgrade Airflow and this program](user-guide.md#upgrade-airflow-and-this-program).")),
    KeyDoc("kubernetesVersion", "string", "Kubernetes version of the cluster.", (
        f"`1.N` (latest patch) or `1.N.P`; on AKS a minor in AKS standard support: {_AKS_MINORS}; "
        f"`target: local`: 1.{MIN_KUBERNETES_MINOR} or newer"), (
        f"{_LTS} exist on AKS only under long-term support (Premium tier), which this program does not set "
        "up.")),
    KeyDoc("namespace", "string", "Kubernetes namespace of every Airflow object.",
           "a Kubernetes name: lowercase letters, digits and `-`, at most 63 characters"),
    KeyDoc("acrSku", "string", "Container registry SKU.", one_of(ACR_SKUS), "`target: aks` only."),
    KeyDoc("clusterTier", "string", "AKS pricing tier.", one_of(CLUSTER_TIERS), (
        "`Free`: no uptime SLA. `Standard`: a financially backed uptime SLA for the API server (99.95 % with "
        "availability zones, 99.9 % without). `Premium`: adds long-term support. `target: aks` only.")),
    KeyDoc("apiServerAuthorizedIpRanges", "list", "CIDRs the AKS API server accepts connections from.",
           f"a list of at most {MAX_AUTHORIZED_IP_RANGES} CIDRs; empty: any address", (
               "Every caller still signs in with Entra ID. Not with `apiServerPrivate`. See "
               "[AKS access](aks-access.md).")),
    KeyDoc("apiServerPrivate", "boolean", "The AKS API server reachable from the cluster's VNet only.", BOOLEAN, (
        "Not with `apiServerAuthorizedIpRanges`; refused on a deployed cluster without API Server VNet "
        "Integration, which AKS cannot switch. See [AKS access](aks-access.md).")),
    KeyDoc("protect", "boolean", "Protect the stateful resources from `pulumi destroy` and from replacement.",
           BOOLEAN, (
               "The registry, the cluster and the PostgreSQL and RabbitMQ volume claims (their disks); with "
               "`keyVault`, the vault's purge protection. See [Tear down](user-guide.md#tear-down).")),
    KeyDoc("systemPool", "object",
           "System node pool: the Airflow control plane, PostgreSQL, RabbitMQ.",
           "an object of the [pool fields](#pool-fields) but "
           f"{' and '.join(f'`{k}`' for k in AUTOSCALE_POOL_KEYS)} (a fixed count)"),
    KeyDoc("workerPool", "object", "Node pool for the Celery workers only.",
           "an object of the [pool fields](#pool-fields)"),
    KeyDoc("airflowConfig", "object", "Extra airflow.cfg options, merged last (like a Helm chart's `config:`).",
           "`{section: {option: value}}`, each option one the `airflowVersion` has", (
               "Options the program manages, and options Airflow moved or removed, are refused with where they "
               "went. See [airflow.cfg](architecture.md#airflowcfg).")),
    KeyDoc("remoteTaskLogs", "boolean", "Write task logs to Azure Blob Storage (container `airflow-logs`).",
           BOOLEAN, (
               "Logs then outlive the worker pod that ran the task. On AKS the program creates the storage "
               "account and the workload identity that may use it. See [Task logs](user-guide.md#task-logs)."),
           derived="`true` on AKS; for `target: local`, `true` when `taskLogEmulatorEndpoint` is set"),
    KeyDoc("taskLogRetentionDays", "integer", "Days before the storage account's lifecycle rule deletes a task log.",
           int_range("taskLogRetentionDays"), "Only with task logs in the storage account (AKS, `remoteTaskLogs`)."),
    KeyDoc("taskLogEmulatorEndpoint", "string", "A local cluster's Azure Storage emulator (Azurite) for task logs.",
           "the emulator's blob endpoint with its account, e.g. `http://azurite.azurite:10000/devstoreaccount1`",
           "`target: local` only.", derived="none (task logs stay on the pods)"),
    KeyDoc("metrics", "boolean", "Airflow's StatsD metrics to a statsd-exporter that serves them for Prometheus.",
           BOOLEAN, "See [Metrics](architecture.md#metrics)."),
    KeyDoc("keyVault", "boolean", "Connections and variables from an Azure Key Vault the program creates.", BOOLEAN, (
        "RBAC only, purge protection with `protect`. The workers, triggerer and dag-processor read it with their "
        "workload identity, the api-server with the log reader's. Needs `target: aks` with `remoteTaskLogs` and "
        f"`airflowVersion` {_KEY_VAULT_AIRFLOW} or newer. See "
        "[Connections and secrets](user-guide.md#connections-and-secrets).")),
    KeyDoc("ui", "object", "How the team reaches the UI and signs in.", (
        f"an object: `exposure` {one_of(EXPOSURES)}, `auth` {one_of(AUTHS)}, and with a gateway `host`, `tls`, "
        f"`allowedSourceRanges`, `entra`"), (
        f"`{{}}`: `exposure: {EXPOSURES[0]}`, `auth: {AUTHS[0]}` (`kubectl port-forward`, the one generated "
        "admin: for development). `exposure: gateway` (AKS only) serves it at `https://<host>` through AKS's "
        "application routing Gateway API implementation, with `tls` (`keyVaultCertificate: <name>` in the "
        "stack's Key Vault, which needs `keyVault: true`, or `secretName: <name>`, a `kubernetes.io/tls` Secret "
        "in the `<namespace>-ui` namespace; never self-signed), optional `allowedSourceRanges` (CIDRs), and "
        "`auth: entra` (required with a gateway): `entra.tenantId`, `entra.clientId` (the app registration) and "
        f"`entra.roleGroups` ({', '.join(f'`{r}`' for r in ROLES)}: lists of Entra group object IDs; at least "
        f"one `{ROLES[0]}` group). See [Reach the UI](user-guide.md#reach-the-ui).")),
    KeyDoc(LOCATION_KEY, "string", "The Azure region to deploy to.", (
        f"an Azure region where AKS runs: one of the {len(catalogues.aks_regions())} in "
        f"`components/model/catalogues/{catalogues.REGIONS_FILE}`"), (
        "Azure's own key, not the project's: `pulumi config set azure-native:location westeurope`. "
        "`scripts/catalogues regions` asks Azure, with `az login`, where your subscription can create AKS "
        "clusters."), derived="none: required for `target: aks`"),
)

_LIST_PRICE = f"the size's list price ({CATALOGUE_INFO['region']}, {CATALOGUE_INFO['retrieved']})"

POOL_FIELDS: tuple[FieldDoc, ...] = (
    FieldDoc("vmSize", "string", (
        f"an Azure VM size: one of the {len(VM_SIZES)} in `components/model/{CATALOGUE.name}` (`scripts/vm-sizes`), "
        "or any other with `vcpus`, `memoryGiB` and `pricePerHour` set"), "VM size of the pool's nodes."),
    FieldDoc("vcpus", "integer", whole_number(*POOL_INT_RANGES["vcpus"]),
             "The size's vCPU count: needed for a size the table lacks; for a listed size it must match it.",
             "from the table", "from the table"),
    FieldDoc("memoryGiB", "integer", whole_number(*POOL_INT_RANGES["memoryGiB"]),
             "The size's memory in GiB, as for `vcpus`.", "from the table", "from the table"),
    FieldDoc("count", "integer", whole_number(*POOL_INT_RANGES["count"]), (
        "Node count. For `workerPool`, a fixed count instead of `minCount`/`maxCount`, refused if it cannot "
        "hold the workers."), worker_default="derived: the nodes the plan needs (with `workerScaling: fixed`)"),
    FieldDoc("minCount", "integer", whole_number(*POOL_INT_RANGES["minCount"]), (
        "`workerPool` only: the cluster autoscaler's lower bound. Alone, it keeps that many warm nodes."),
        worker_default="derived: 0 (with `workerScaling: keda`)"),
    FieldDoc("maxCount", "integer", whole_number(*POOL_INT_RANGES["maxCount"]), (
        "`workerPool` only: the cluster autoscaler's upper bound, set with `minCount`; it must hold the "
        "workers."), worker_default="derived: the nodes the plan needs at peak (with `workerScaling: keda`)"),
    FieldDoc("maxPods", "integer", whole_number(*POOL_INT_RANGES["maxPods"]), (
        "Pods per node; AKS reserves memory by it. Fixed when the pool is created: a change on an existing pool "
        "is refused.")),
    FieldDoc("pricePerHour", "number", f"a number from {POOL_PRICE_RANGE[0]} to {POOL_PRICE_RANGE[1]}", (
        "What one node costs an hour, in USD: set it for your region, reservation or discount. "
        "`capacitySummary` prints the hourly cost between runs and at the peak."), _LIST_PRICE, _LIST_PRICE),
)
