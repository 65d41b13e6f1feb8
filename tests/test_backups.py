"""Backups of the in-cluster database: the CronJob, its storage and identity
under Pulumi mocks, the settings that turn it on or refuse, the uploader, and
(marked `real`) a dump after a fan-out run, uploaded to Azurite, restored into
a new PostgreSQL with the commands of docs/operations.md, and read back by Airflow."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from components.azure.task_log_storage import BLOB_DATA_CONTRIBUTOR_ROLE
from components.kubernetes import backups, database_roles
from components.kubernetes.backup_upload import CUSTOM_FORMAT_MAGIC, blob_name, check_dump
from components.kubernetes.secrets import PASSWORD_KEY
from components.model import names
from components.model.database_roles import roles_sql
from components.model.settings import DEFAULT_BACKUP_SCHEDULE, DEFAULTS, ConfigError, parse_settings
from tests.harness import (
    BACKUP_CLIENT_ID,
    BACKUP_PRINCIPAL_ID,
    OIDC_ISSUER_URL,
    SUBSCRIPTION,
    TASK_LOG_PRINCIPAL_ID,
    ProgramRun,
    plain,
    shared_run,
    stack_file_config,
)
from tests.local_airflow import LocalPostgres, Services, container_command, deployment, stack_config
from tests.real_airflow import ROOT, airflow_env, run_airflow_python

CRONJOB = "kubernetes:batch/v1:CronJob"
CONTAINER = "azure-native:storage:BlobContainer"
POLICY = "azure-native:storage:ManagementPolicy"
FEDERATION = "azure-native:managedidentity:FederatedIdentityCredential"
ROLE = "azure-native:authorization:RoleAssignment"
OPERATIONS = (ROOT / "docs" / "operations.md").read_text()


def changed(stack: str = "prod", **keys: Any) -> dict[str, Any]:
    config = stack_file_config(stack)
    config.update({f"airflow-aks:{k}": v for k, v in keys.items()})
    return config


def ok(run: ProgramRun) -> ProgramRun:
    assert run.error is None, run.error
    return run


def pod_of(cronjob: dict[str, Any]) -> dict[str, Any]:
    return cronjob["spec"]["jobTemplate"]["spec"]["template"]


def containers(cronjob: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = pod_of(cronjob)["spec"]
    return {c["name"]: c for c in [*spec.get("initContainers", []), *spec["containers"]]}


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


# --------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------

def schedule(**values: Any) -> str | None:
    return parse_settings(values, stack="dev", location="westeurope").database_backup_schedule


def problem(**values: Any) -> str:
    with pytest.raises(ConfigError) as err:
        parse_settings(values, stack="dev", location="westeurope")
    [(key, text)] = err.value.problems
    assert key == "databaseBackupSchedule"
    return text


def test_the_schedule_is_nightly_unless_set_and_a_preset_becomes_five_fields() -> None:
    assert schedule() == DEFAULT_BACKUP_SCHEDULE == "15 1 * * *"
    assert schedule(databaseBackupSchedule="30 2 * * 0") == "30 2 * * 0"
    assert schedule(databaseBackupSchedule="@daily") == "0 0 * * *", "a CronJob takes the five fields"
    assert schedule(databaseBackupSchedule=None) is None and schedule(databaseBackupSchedule="") is None


def test_a_bad_schedule_is_refused_naming_the_key() -> None:
    assert "hour field: 25 is outside 0-23" in problem(databaseBackupSchedule="0 25 * * *")
    assert "@once is no cron schedule" in problem(databaseBackupSchedule="@once")


def test_without_storage_the_dumps_are_refused_on_aks_and_absent_locally() -> None:
    assert "set databaseBackupSchedule to null" in problem(remoteTaskLogs=False)
    assert schedule(remoteTaskLogs=False, databaseBackupSchedule=None, keyVault=False) is None
    assert schedule(target="local") is None, "a local cluster without the emulator: no dumps"
    assert "set taskLogEmulatorEndpoint" in problem(target="local", databaseBackupSchedule="0 3 * * *")
    assert schedule(target="local", taskLogEmulatorEndpoint="http://azurite.azurite:10000/devstoreaccount1") == \
        DEFAULT_BACKUP_SCHEDULE


def test_the_flexible_server_has_no_dumps() -> None:
    assert schedule(database="azure") is None
    assert "only applies to `database: in-cluster`" in problem(database="azure", databaseBackupSchedule="0 3 * * *")


# --------------------------------------------------------------------------
# The CronJob, under mocks
# --------------------------------------------------------------------------

@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_cronjob_dumps_postgres_directly_on_the_schedule(runs: dict[str, ProgramRun], stack: str) -> None:
    cron = runs[stack].manifest("CronJob", names.DATABASE_BACKUP)
    spec = cron["spec"]
    assert (spec["schedule"], spec["timeZone"]) == (DEFAULT_BACKUP_SCHEDULE, "Etc/UTC")
    assert spec["concurrencyPolicy"] == "Forbid", "never two dumps at once"
    assert spec["jobTemplate"]["spec"]["backoffLimit"] == backups.BACKOFF_LIMIT
    dump, upload = containers(cron)["dump"], containers(cron)["upload"]
    assert [c["name"] for c in pod_of(cron)["spec"]["initContainers"]] == ["dump"], "the dump runs first"
    assert dump["image"] == DEFAULTS["postgresImage"], "the server's own image: pg_dump of its major version"
    assert dump["command"][:2] == ["pg_dump", "--format=custom"]
    env = env_of(dump)
    # Straight to PostgreSQL's Service, not PgBouncer's (on by default).
    assert (env["PGHOST"], env["PGPORT"]) == (names.service_host(names.POSTGRES, "airflow"), "5432")
    assert (env["PGUSER"], env["PGDATABASE"]) == (names.POSTGRES_USER, names.POSTGRES_DB)
    assert env["PGPASSWORD"] == {"secretKeyRef": {"name": names.POSTGRES_SECRET, "key": PASSWORD_KEY}}
    assert upload["command"] == ["python", f"{backups.SCRIPT_DIR}/{backups.UPLOADER_KEY}", backups.DUMP_FILE]
    assert env_of(upload) == {"BACKUP_STORAGE": "https://airflowtasklogs0001.blob.core.windows.net",
                              "BACKUP_CONTAINER": names.BACKUP_CONTAINER}
    assert upload["image"] == runs[stack].manifest("Deployment", names.SCHEDULER)["spec"]["template"]["spec"][
        "containers"][0]["image"], "the Airflow image, which has the Azure SDK"


def test_the_uploader_is_the_file_in_the_repository(runs: dict[str, ProgramRun]) -> None:
    data = runs["prod"].manifest("ConfigMap", names.BACKUP_CONFIG_MAP)["data"]
    assert data == {backups.UPLOADER_KEY: backups.UPLOADER.read_text()}


def test_the_backup_pod_has_its_own_identity_and_no_other(runs: dict[str, ProgramRun]) -> None:
    run = runs["prod"]
    account = run.manifest("ServiceAccount", names.BACKUP_SERVICE_ACCOUNT)
    assert account["metadata"]["annotations"] == {"azure.workload.identity/client-id": BACKUP_CLIENT_ID}
    assert account["automountServiceAccountToken"] is False
    pod = pod_of(run.manifest("CronJob", names.DATABASE_BACKUP))
    assert pod["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    assert pod["spec"]["serviceAccountName"] == names.BACKUP_SERVICE_ACCOUNT
    # The Airflow pods keep the log identities' accounts (the api-server its own, the log reader's).
    for m in run.manifests():
        spec = m.get("spec", {}).get("template", {}).get("spec", {})
        assert spec.get("serviceAccountName") in (None, names.TASK_LOG_SERVICE_ACCOUNT,
                                                  names.API_SERVER_SERVICE_ACCOUNT), m["metadata"]


def test_the_backup_container_and_its_role_are_apart_from_the_logs(runs: dict[str, ProgramRun]) -> None:
    run = runs["prod"]
    [container] = [c for c in run.of_type(CONTAINER) if c.inputs["containerName"] == names.BACKUP_CONTAINER]
    assert container.inputs["publicAccess"] == "None"
    assert container.inputs["accountName"] == run.outputs["taskLogStorageAccount"]
    assert run.options_of(container.name).protect is True, "prod protects the dumps as it does the logs"
    account = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{container.inputs['resourceGroupName']}"
               f"/providers/Microsoft.Storage/storageAccounts/{run.outputs['taskLogStorageAccount']}")
    scopes = {(r.inputs["principalId"], r.inputs["scope"]) for r in run.of_type(ROLE)
              if r.inputs["roleDefinitionId"].endswith(BLOB_DATA_CONTRIBUTOR_ROLE)}
    assert scopes == {
        (BACKUP_PRINCIPAL_ID, f"{account}/blobServices/default/containers/{names.BACKUP_CONTAINER}"),
        (TASK_LOG_PRINCIPAL_ID, f"{account}/blobServices/default/containers/{names.TASK_LOG_CONTAINER}"),
    }, "each identity on its own container, neither on the account"
    [federation] = [f for f in run.of_type(FEDERATION) if "backup" in f.name]
    assert federation.inputs["subject"] == f"system:serviceaccount:airflow:{names.BACKUP_SERVICE_ACCOUNT}"
    assert federation.inputs["issuer"] == OIDC_ISSUER_URL
    assert federation.inputs["resourceName"] == "airflow-task-logs-backup-identity0001"


def test_one_policy_deletes_old_dumps_beside_old_logs() -> None:
    for days in (14, 7):
        run = ok(shared_run("prod", changed(databaseBackupRetentionDays=days)))
        [policy] = run.of_type(POLICY)
        rules = {r["name"]: r for r in plain(policy.inputs["policy"])["rules"]}
        assert set(rules) == {"delete-old-task-logs", "delete-old-database-backups"}
        rule = rules["delete-old-database-backups"]["definition"]
        assert rule["filters"] == {"blobTypes": ["blockBlob"], "prefixMatch": [f"{names.BACKUP_CONTAINER}/"]}
        assert rule["actions"] == {"baseBlob": {"delete": {"daysAfterModificationGreaterThan": days}}}


def test_the_backup_waits_for_postgres_the_image_and_its_grant(runs: dict[str, ProgramRun]) -> None:
    run = runs["prod"]
    cron = run.options_of("workloads-backup-backup")
    waits = {getattr(d, "_name", None) for d in cron.depends_on}
    assert {"workloads-postgres-statefulset", "airflow-image", "airflow-task-logs-backup-blob-contributor",
            "airflow-task-logs-backup-federation"} <= waits


def test_a_changed_schedule_reaches_the_cronjob() -> None:
    run = ok(shared_run("prod", changed(databaseBackupSchedule="@weekly")))
    assert run.manifest("CronJob", names.DATABASE_BACKUP)["spec"]["schedule"] == "0 0 * * 0"


def test_no_backup_objects_without_a_schedule() -> None:
    run = ok(shared_run("prod", changed(remoteTaskLogs=False, databaseBackupSchedule=None, keyVault=False)))
    assert run.of_type(CRONJOB) == []
    assert not [m for m in run.manifests() if names.DATABASE_BACKUP in json.dumps(m)]
    assert not [r for r in run.resources if "backup" in r.name]
    local = ok(shared_run("local"))
    assert local.of_type(CRONJOB) == [], "a local cluster without the emulator"


def test_a_local_cluster_with_the_emulator_dumps_there() -> None:
    endpoint = "http://azurite.azurite:10000/devstoreaccount1"
    run = ok(shared_run("local", changed("local", taskLogEmulatorEndpoint=endpoint)))
    cron = run.manifest("CronJob", names.DATABASE_BACKUP)
    storage = env_of(containers(cron)["upload"])["BACKUP_STORAGE"]
    assert storage == {"secretKeyRef": {"name": names.BACKUP_SECRET, "key": "connection"}}
    secret = plain(run.manifest("Secret", names.BACKUP_SECRET)["stringData"])
    assert f"BlobEndpoint={endpoint};" in secret["connection"]
    assert "serviceAccountName" not in pod_of(cron)["spec"], "no workload identity on a local cluster"


def test_a_remote_task_log_switch_off_with_null_schedule_is_still_stopped_by_protect() -> None:
    """The config-change row of docs/operations.md: with the schedule null too, the account
    and both containers would go, which prod's `protect` stops."""
    from tests.preview import preview, summary
    from tests.test_config_changes import BUSY, deployed

    base = ok(deployed(stack_file_config("prod")))
    after = deployed(changed(remoteTaskLogs=False, databaseBackupSchedule=None, keyVault=False))
    shown = preview(base, after, BUSY)
    assert summary(shown) == "refused (protected)"
    assert "airflow-task-logs-backups" in {s.name for s in shown.steps if s.op == "delete"}


# --------------------------------------------------------------------------
# The uploader's own rules
# --------------------------------------------------------------------------

def test_blob_names_sort_by_time() -> None:
    times = [0, 59, 3600, 86_400 * 400, 86_400 * 400 + 1]
    made = [blob_name(t) for t in times]
    assert made == sorted(made) and len(set(made)) == len(made)
    assert blob_name(1_764_638_103) == "airflow-20251202T011503Z.dump"


def test_only_a_custom_format_archive_is_uploaded(tmp_path: Path) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_bytes(CUSTOM_FORMAT_MAGIC + b"\x01\x10rest")
    bad.write_bytes(b"-- PostgreSQL database dump\n")
    assert check_dump(good) == len(CUSTOM_FORMAT_MAGIC) + 6
    with pytest.raises(SystemExit, match="not a pg_dump custom-format archive"):
        check_dump(bad)


# --------------------------------------------------------------------------
# Real: dump, upload, download, restore, and Airflow on the restored database
# --------------------------------------------------------------------------

def readme_restore_commands() -> tuple[str, list[str]]:
    """From the restore procedure of docs/operations.md: the pipeline that picks the newest blob
    from the names `az storage blob list --query "[].name" --output tsv`
    prints, and the pg_restore command run in the PostgreSQL pod."""
    # The procedure's shell comments start with "# ": the section ends at the next "## " heading.
    section = OPERATIONS.split("\n## Back up and restore the database\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    [listing] = [line for line in block.splitlines() if line.startswith("BLOB=$(az storage blob list")]
    assert '--query "[].name" --output tsv' in listing
    pick = listing.split("--output tsv", 1)[1].removesuffix(")")
    [restore] = [line for line in block.splitlines() if "pg_restore" in line]
    words = shlex.split(restore)
    argv = words[words.index("--") + 1:words.index("<")]
    assert words[words.index("<") + 1] == "airflow.dump"
    return pick, argv


class BackupPod:
    """The CronJob's pod as local processes: its volumes as directories, each
    container's command with its mount paths there, its environment with what a
    cluster provides differently (the Services' addresses, this deployment's
    database, Azurite for the storage account) rewritten, as LocalDeployment
    does for the Airflow pods."""

    def __init__(self, cron: dict[str, Any], run: ProgramRun, root: Path, rewrite: dict[str, str],
                 secrets: dict[str, dict[str, str]]) -> None:
        """rewrite: environment variable -> its value here."""
        self.pod = pod_of(cron)["spec"]
        self.root = root
        self.rewrite = rewrite
        self.secrets = secrets
        for volume in self.pod["volumes"]:
            where = root / volume["name"]
            where.mkdir(parents=True)
            if "configMap" in volume:
                for key, text in run.manifest("ConfigMap", volume["configMap"]["name"])["data"].items():
                    (where / key).write_text(text)
            else:
                assert "emptyDir" in volume, volume

    def local(self, container: dict[str, Any], text: str) -> str:
        """An argument with a path under a mount (alone, or after `--option=`) moved to its directory here."""
        for mount in container.get("volumeMounts", []):
            text = re.sub(rf"(^|=){re.escape(mount['mountPath'])}(?=/|$)",
                          lambda m, mount=mount: m.group(1) + str(self.root / mount["name"]), text)
        return text

    def command(self, name: str) -> tuple[list[str], dict[str, str]]:
        [container] = [c for c in [*self.pod.get("initContainers", []), *self.pod["containers"]]
                       if c["name"] == name]
        # Both containers declare a command, which replaces the image's entrypoint.
        argv = [self.local(container, a) for a in container_command(container, [], [])]
        env = {}
        for e in container.get("env", []):
            if "value" in e:
                env[e["name"]] = self.rewrite.get(e["name"], e["value"])
            else:
                ref = e["valueFrom"]["secretKeyRef"]
                env[e["name"]] = self.secrets[ref["name"]][ref["key"]]
        return argv, env


# Runs a command as its child and reports the child's peak resident memory.
# Linux carries a process's ru_maxrss over from the memory of the process it
# was forked from (the high-water mark is taken at exec, kernel fs/exec.c,
# exec_mmap), so the child of pytest itself would report pytest's own size:
# this small interpreter forks it instead.
MEASURE = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
sys.stderr.write(f"\\nmaxrss_kib={usage.ru_maxrss} cpu_s={usage.ru_utime + usage.ru_stime:.2f}\\n")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_step(argv: list[str], env: dict[str, str], stdin: Path | None = None) -> tuple[str, float]:
    """Run one step to its end: its stdout, and its peak resident memory in MiB
    (an upper bound: at least the measuring interpreter's own, about 10 MiB)."""
    with open(stdin or os.devnull, "rb") as source:
        done = subprocess.run([sys.executable, "-c", MEASURE, *argv], env=env, stdin=source,
                              capture_output=True, timeout=300, check=False)
    err = done.stderr.decode(errors="replace")
    assert done.returncode == 0, f"{argv[0]} exited {done.returncode}: {err[-3000:]}"
    [(kib, cpu)] = re.findall(r"^maxrss_kib=(\d+) cpu_s=([\d.]+)$", err, re.MULTILINE)
    print(f"{Path(argv[0]).name}: {int(kib) / 1024:.0f} MiB at peak, {cpu} CPU-s")
    return done.stdout.decode(), int(kib) / 1024


def blobs(connection: str, body: str, home: Path) -> str:
    """Run `body` under the Airflow image's Python with `c`, a client of the backup container in Azurite."""
    code = (f"from azure.storage.blob import BlobServiceClient\n"
            f"c = BlobServiceClient.from_connection_string({connection!r})"
            f".get_container_client({names.BACKUP_CONTAINER!r})\n{body}\n")
    done = run_airflow_python(code, home=home)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def runs_and_tasks(d: Any, run_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What the `airflow` CLI lists: the fanout DAG's runs, and the task instances of one run."""
    out = d.airflow_commands(["dags", "list-runs", "fanout", "--output", "json"],
                             ["tasks", "states-for-dag-run", "fanout", run_id, "--output", "json"])
    decoder, found, at = json.JSONDecoder(), [], 0
    while (at := out.find("[", at)) >= 0:
        try:
            value, end = decoder.raw_decode(out, at)
        except json.JSONDecodeError:
            at += 1
            continue
        if isinstance(value, list) and all(isinstance(v, dict) for v in value):
            found.append(value)
        at = end
    [listed_runs, tasks] = found
    # The CLI lists them in whatever order the database returns them (no ORDER BY).
    return (sorted(listed_runs, key=lambda r: r["run_id"]),
            sorted(tasks, key=lambda t: (t["task_id"], t.get("map_index", -1))))


def db_rows(conn: Any) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    return (conn.execute("SELECT dag_id, run_id, state FROM dag_run ORDER BY 1, 2").fetchall(),
            conn.execute("SELECT dag_id, run_id, task_id, map_index, state, try_number FROM task_instance "
                         "ORDER BY 1, 2, 3, 4").fetchall())


TASKS = 4


@pytest.mark.real
def test_a_dump_restored_into_a_new_postgres_has_the_same_runs_and_tasks(services: Services,
                                                                          tmp_path: Path) -> None:
    pick, restore_argv = readme_restore_commands()
    config = stack_config("dev", parallelism=TASKS, workerConcurrency=TASKS, fanoutTasks=TASKS,
                          fanoutSleepSeconds=1)
    pg = services.postgres
    workdir = Path(tempfile.mkdtemp(prefix="airflow-aks-restore-"))
    workdir.chmod(0o755)  # the postgres user must reach its data directory
    fresh = LocalPostgres(workdir, pg.server_args)
    with deployment(services, config) as d:
        run_id = d.trigger()
        obs = d.observe(run_id, tasks=TASKS, timeout=180)
        assert obs.states == {"success": TASKS}, f"{obs.states}\n{d.logs('scheduler')}"
        original_cli = runs_and_tasks(d, run_id)
        with d.connect() as conn:
            original_rows = db_rows(conn)

        # The CronJob's two containers as declared, twice, a second apart
        # (the blob names have a second's resolution).
        cron = d.run.manifest("CronJob", names.DATABASE_BACKUP)
        azurite = d.log_connection_string()
        declared_env = {**env_of(containers(cron)["dump"]), **env_of(containers(cron)["upload"])}
        assert declared_env["PGHOST"] == names.service_host(names.POSTGRES, d.namespace)
        # What a cluster provides differently: the Service's address, this
        # deployment's own database, and Azurite, which cannot do workload
        # identity, with its development account for the storage account.
        rewrite = {"PGHOST": "127.0.0.1", "PGPORT": str(pg.port), "PGDATABASE": d.database,
                   "BACKUP_STORAGE": azurite}
        secrets = {names.POSTGRES_SECRET: d._secret(names.POSTGRES_SECRET)}
        blobs(azurite, "c.create_container()", d.home)  # what the program's BlobContainer does on Azure
        uploaded, peaks = [], {"dump": 0.0, "upload": 0.0}
        for attempt in range(2):
            if attempt:
                time.sleep(1.1)
            pod = BackupPod(cron, d.run, tmp_path / f"pod-{attempt}", rewrite, secrets)
            argv, env = pod.command("dump")
            # pg_dump of the server's own version, as the postgres image has it.
            _, peak = run_step(argv, {"PATH": f"{pg.bin}:/usr/bin:/bin", **env})
            peaks["dump"] = max(peaks["dump"], peak)
            argv, env = pod.command("upload")
            out, peak = run_step(argv, airflow_env(d.home, env))
            peaks["upload"] = max(peaks["upload"], peak)
            [name] = re.findall(rf"as {names.BACKUP_CONTAINER}/(\S+)$", out.strip())
            uploaded.append(name)
        dump_file = tmp_path / "pod-1" / "dump" / "airflow.dump"

        # Step 1 of the procedure: the newest of the names the listing prints.
        listed = blobs(azurite, "print('\\n'.join(b.name for b in c.list_blobs(name_starts_with='airflow-')))",
                       tmp_path)
        assert sorted(listed.split()) == sorted(uploaded)
        newest = subprocess.run(["bash", "-c", f"cat{pick}"], input=listed, capture_output=True, text=True,
                                check=True).stdout.strip()
        assert newest == uploaded[-1], f"{pick!r} picks the last dump"
        downloaded = tmp_path / "airflow.dump"
        blobs(azurite, f"open({str(downloaded)!r}, 'wb').write(c.download_blob({newest!r}).readall())",
              tmp_path)
        assert downloaded.read_bytes() == dump_file.read_bytes()

        try:
            # A new PostgreSQL as the image initialises one: the superuser
            # `airflow` and its database.
            fresh.start()
            with fresh.admin() as conn:
                conn.execute(f"CREATE ROLE {names.POSTGRES_USER} SUPERUSER LOGIN")
                conn.execute(f"CREATE DATABASE {names.POSTGRES_DB} OWNER {names.POSTGRES_USER}")
            # And the roles, which the deployment's roles Job makes on a new
            # server before the migration: the dump names them as owners and grantees.
            command, env = d.roles_job()
            d.create_roles(command, {**env, "PGPORT": str(fresh.port), "PGDATABASE": names.POSTGRES_DB,
                                     database_roles.SQL_ENV: roles_sql(names.POSTGRES_DB)})
            # Step 3 of the procedure, twice: the second drops what the first restored.
            for _ in range(2):
                run_step(restore_argv, {"PATH": f"{fresh.bin}:/usr/bin:/bin", "PGHOST": "127.0.0.1",
                                        "PGPORT": str(fresh.port)}, stdin=downloaded)
            with psycopg.connect(host="127.0.0.1", port=fresh.port, user=names.POSTGRES_USER,
                                 dbname=names.POSTGRES_DB, autocommit=True) as conn:
                assert db_rows(conn) == original_rows

            # Airflow on the restored database: its schema at head, the same
            # runs and task instances.
            url = re.compile(r"@[^/@]+/[^?]*")
            env = d.workloads["scheduler"].env
            d.extra_env = {key: url.sub(f"@127.0.0.1:{fresh.port}/{names.POSTGRES_DB}", env[key])
                           for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
                                       "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC")}
            d.airflow("db", "check-migrations", "--migration-wait-timeout", "0")
            restored_cli = runs_and_tasks(d, run_id)
        finally:
            d.extra_env = {}
            fresh.stop()
            shutil.rmtree(workdir, ignore_errors=True)

    listed_runs, tasks = restored_cli
    assert restored_cli == original_cli
    assert [(r["run_id"], r["state"]) for r in listed_runs] == [(run_id, "success")]
    assert sorted((t["task_id"], t["state"]) for t in tasks) == [(f"sleep_{i}", "success") for i in range(TASKS)]
    # Both steps within the memory limits the CronJob declares.
    for step, limits in (("dump", backups.DUMP_LIMITS), ("upload", backups.UPLOAD_LIMITS)):
        assert peaks[step] < int(limits["memory"].removesuffix("Mi")), f"{step}: {peaks[step]:.0f} MiB at peak"
    print(f"backup peaks: dump {peaks['dump']:.0f} MiB, upload {peaks['upload']:.0f} MiB")


def test_the_plan_counts_the_backup_pod_and_its_connection(runs: dict[str, ProgramRun]) -> None:
    """The pod's request as the scheduler counts it: the larger of its init
    container (the dump) and its container (the upload), which run in turn."""
    from tests.conftest import config_for

    spec = pod_of(runs["prod"].manifest("CronJob", names.DATABASE_BACKUP))["spec"]
    requests = [c["resources"]["requests"] for c in [*spec["initContainers"], *spec["containers"]]]
    cpu = max(int(r["cpu"].removesuffix("m")) for r in requests)
    memory = max(int(r["memory"].removesuffix("Mi")) for r in requests)
    plan = config_for("prod").plan
    pod = plan.control_plane.pods["database-backup"]
    assert (pod.cpu_request_millicores, pod.memory_request_mib) == (cpu, memory) == (25, 256)
    assert plan.database.connections["database-backup"] == 1, "pg_dump without --jobs: one connection"
    assert "--jobs" not in " ".join(spec["initContainers"][0]["command"])
    off = config_for("prod", remoteTaskLogs=False, databaseBackupSchedule="", keyVault=False).plan
    assert "database-backup" not in off.control_plane.pods and "database-backup" not in off.database.connections
