"""Worker benchmark: the same fan-out twice on one Celery worker, fresh pool then warm pool.

Run 1 starts on a worker whose pool children have never run a task (what every
burst meets once KEDA scales workers from zero); run 2 reuses the same
children. Per run: time from trigger until all N run, the machine's CPU time
(all cores, from /proc/stat) from trigger until all N run divided by N, and the
worker's memory by role when all N run: the main process, the pool children
(each is the supervisor of the task it runs), the task processes they fork,
and anything else the worker started (its log server). Idle figures are taken
before run 1. Airflow marks a task running before its process has parsed the
DAG, so memory and the worker's CPU are also taken in the steady state, just
before the first task ends, when every task has parsed its DAG and sleeps.

    venv/bin/python -m bench.worker [--tasks 128] [--sleep 40] [--dag-width W] [--label NAME]
                                    [--restart-worker] [--cold-api] [--out bench/results/worker.json]

The api-server's Execution API is built before the first run (--cold-api: not).
With --restart-worker a first run warms the control plane, then the worker is
replaced by a new one, whose fresh run is that of a worker KEDA adds to a
running deployment.

Each run is stored in the JSON file under its label (default: the commit), next
to the runs already there, so a before and an after sit side by side.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.local_airflow import deployment, descendants, local_services, stack_config, wait_for

ROLES = ("main", "pool child", "task", "other")


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            tree.setdefault(ppid, []).append(int(stat.parent.name))
    return tree


def _subtree(tree: dict[int, list[int]], pid: int) -> list[int]:
    found, todo = [], list(tree.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo += tree.get(child, [])
    return found


def _cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    return ""


def roles(main: int) -> dict[str, list[int]]:
    """The worker's processes by role. Celery names its pool children ForkPoolWorker-N."""
    tree = _children()
    found: dict[str, list[int]] = {role: [] for role in ROLES}
    found["main"].append(main)
    for child in tree.get(main, []):
        # A busy child retitles itself "airflow supervisor: <task id>".
        if any(title in _cmdline(child) for title in ("PoolWorker", "airflow supervisor:")):
            found["pool child"].append(child)
            found["task"] += _subtree(tree, child)
        else:
            found["other"] += [child, *_subtree(tree, child)]
    return found


def smaps(pid: int) -> dict[str, int]:
    """Pss, Private_Dirty and Shared_* of one process, KiB."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("Pss", "Private_Dirty", "Private_Clean", "Shared_Clean", "Shared_Dirty", "Rss"):
                out[key] = int(rest.split()[0])
    return out


def memory_by_role(main: int) -> dict[str, dict[str, float]]:
    """Per role: process count, total PSS and mean PSS and private dirty per process, MiB."""
    result: dict[str, dict[str, float]] = {}
    for role, pids in roles(main).items():
        figures = [smaps(pid) for pid in pids]
        figures = [f for f in figures if f]
        total = sum(f.get("Pss", 0) for f in figures) / 1024
        dirty = sum(f.get("Private_Dirty", 0) for f in figures) / 1024
        n = len(figures)
        result[role] = {"processes": n, "pss_mib": round(total, 1),
                        "pss_per_process_mib": round(total / n, 1) if n else 0.0,
                        "private_dirty_per_process_mib": round(dirty / n, 1) if n else 0.0}
    return result


def tree_cpu_s(main: int) -> float:
    """CPU seconds the worker's live processes have used (utime + stime)."""
    total = 0
    for pid in [main, *_subtree(_children(), main)]:
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


# Processes of the local services, by the name the kernel gives them (comm).
SERVICE_COMMS = {"postgres": "postgres", "pgbouncer": "pgbouncer", "beam.smp": "rabbitmq",
                 "erl_child_setup": "rabbitmq", "epmd": "rabbitmq", "inet_gethost": "rabbitmq", "node": "azurite"}


def _proc_table() -> dict[int, tuple[int, str, float]]:
    """pid -> (ppid, comm, CPU-s): utime + stime + cutime + cstime, so that a
    child reaped between two snapshots still counts for its parent's role."""
    table: dict[int, tuple[int, str, float]] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = stat.read_text()
            comm = text[text.index("(") + 1:text.rindex(")")]
            fields = text.rsplit(")", 1)[1].split()
            table[int(stat.parent.name)] = (int(fields[1]), comm, sum(int(v) for v in fields[11:15]) / tick)
    return table


def cpu_by_component(d: Any) -> dict[str, float]:
    """CPU-s so far of every process on the machine, by who it belongs to: the
    worker's roles (main, pool child = the supervisor of the task it runs,
    task process, other), the other Airflow components, and the local
    services (PostgreSQL, PgBouncer, RabbitMQ, Azurite). The difference of two
    snapshots is what each used in between; the rest of the machine (this
    benchmark, the kernel's threads, other users) is what the machine's total
    leaves over."""
    table = _proc_table()
    owner: dict[int, str] = {}
    for role, pids in roles(d.pid("worker")).items():
        for pid in pids:
            owner[pid] = f"worker: {role}"
    tree: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        tree.setdefault(ppid, []).append(pid)
    for component, proc in d.processes.items():
        if component == "worker":
            continue
        for pid in [proc.pid, *_subtree(tree, proc.pid)]:
            owner.setdefault(pid, component)
    for pid in [os.getpid(), *_subtree(tree, os.getpid())]:
        owner.setdefault(pid, "benchmark")
    out: dict[str, float] = {}
    for pid, (_, comm, cpu) in table.items():
        # The services before "benchmark": this benchmark starts some of them.
        who = owner.get(pid)
        if who is None or who == "benchmark":
            # A kernel worker renames itself after its current work item
            # (kworker/u8:3-writeback): keyed by the part before it.
            who = SERVICE_COMMS.get(comm) or who or f"other: {comm.split('/')[0]}"
        out[who] = out.get(who, 0.0) + cpu
    return out


def _per_task(after: dict[str, float], before: dict[str, float], tasks: int, machine: float,
              cli: float) -> dict[str, float]:
    """Each component's CPU between two snapshots, per task. Processes outside
    the deployment ("other: <name>") are listed when they used 5 ms per task or
    more; "rest of machine" is what the machine used beyond everything listed
    (the kernel's own threads, processes that ended unreaped). The trigger
    CLI, a child of this benchmark, is left out of "benchmark" as it is out of
    the machine's figure."""
    used = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    used["benchmark"] = used.get("benchmark", 0.0) - cli
    shown = {k: v for k, v in used.items() if not k.startswith("other: ") or v / tasks >= 0.005}
    result = {k: round(v / tasks, 4) for k, v in sorted(shown.items())}
    result["rest of machine"] = round((machine - sum(shown.values())) / tasks, 4)
    return result


def machine_cpu_s() -> float:
    """CPU seconds the whole machine has spent busy (all cores), from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _cli_cpu_s() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


MEMORY_EVERY_S = 5
FIRST_RUN = "first run (control plane cold too)"


def one_run(d: Any, tasks: int, sleep: int) -> dict[str, Any]:
    """One fan-out, from trigger until N tasks ended.

    Airflow marks a task running before its process parses the DAG, so the
    moment all N are running is not yet the steady state: with a wide DAG the
    parses go on long after it. The steady state is taken at the end of the
    window in which all N run (just before the first one ends): memory there,
    and CPU over its last part."""
    main = d.pid("worker")
    seen: dict[str, Any] = {"at": None, "cpu": None, "memory": None, "worker_cpu": None, "by_role": None,
                            "trace": [], "late_memory": None, "late_at": -MEMORY_EVERY_S}
    by_role0 = cpu_by_component(d)
    cpu0, cli0, worker0, t0 = machine_cpu_s(), _cli_cpu_s(), tree_cpu_s(main), time.monotonic()

    def sample(states: dict[str, int], _now: float) -> None:
        if states.get("running", 0) < tasks:
            return
        now = time.monotonic() - t0
        if seen["memory"] is None:
            seen["at"], seen["cpu"], seen["worker_cpu"] = now, machine_cpu_s(), tree_cpu_s(main)
            seen["by_role"] = cpu_by_component(d)
            seen["memory"] = memory_by_role(main)
        seen["trace"].append((now, tree_cpu_s(main), machine_cpu_s()))
        if now - seen["late_at"] >= MEMORY_EVERY_S:
            seen["late_memory"], seen["late_at"] = memory_by_role(main), now

    # `airflow dags trigger` is a CLI process of its own; its CPU is not the
    # deployment's, so it is taken out below. Its wall time is stored too: a
    # scheduled run on AKS has no CLI before it (components/model/startup.py).
    run_id = d.trigger()
    trigger_s = time.monotonic() - t0
    cli = _cli_cpu_s() - cli0
    obs = d.observe(run_id, tasks=tasks, timeout=sleep * 8 + 600, interval=0.2, on_sample=sample)
    cpu = None if seen["cpu"] is None else seen["cpu"] - cpu0 - cli
    # The same span from the database's timestamps, free of the CLI and of
    # this loop's polling: first queued -> first started -> last started.
    times = d.start_times(run_id)
    stamps = {"queued_to_first_running_s": round(times["first_started"] - times["first_queued"], 2),
              "first_to_last_running_s": round(times["last_started"] - times["first_started"], 2)
              } if times["started"] == tasks else {}
    steady, start = _steady_and_start(seen["trace"], sleep, tasks, (worker0, cpu0 + cli))
    return {
        "all_running_after_s": None if seen["at"] is None else round(seen["at"], 1),
        "first_running_after_s": None if obs.first_running_at is None else round(trigger_s + obs.first_running_at, 1),
        "trigger_cli_s": round(trigger_s, 1),
        **stamps,
        "trigger_cli_cpu_s": round(cli, 1),
        "finished_after_s": None if obs.finished_at is None else round(time.monotonic() - t0, 1),
        "states": obs.states,
        "machine_cpu_s_until_all_running": None if cpu is None else round(cpu, 1),
        "cpu_s_per_task_start": None if cpu is None else round(cpu / tasks, 3),
        # The same for the worker's own processes only (no control plane).
        "worker_cpu_s_per_task_start": None if seen["worker_cpu"] is None
        else round((seen["worker_cpu"] - worker0) / tasks, 3),
        # Until the steady state instead, so the DAG parse is in, less what the
        # steady state itself used meanwhile.
        **start,
        # The same per process role and component; "rest of machine": the
        # machine's CPU less all of these and the trigger CLI.
        "cpu_s_per_task_start_by_role": None if seen["by_role"] is None or cpu is None
        else _per_task(seen["by_role"], by_role0, tasks, cpu, cli),
        "memory_all_running": seen["memory"],
        # When all N had parsed and slept, just before the first one ended.
        "memory_steady": seen["late_memory"],
        # CPU while all N sleep in their slots: the worker tree alone, and the
        # whole machine (control plane included).
        "steady_cpu": steady,
    }


def _steady_and_start(trace: list[tuple[float, float, float]], sleep: int, tasks: int,
                      zero: tuple[float, float]) -> tuple[dict[str, float] | None, dict[str, float]]:
    if len(trace) < 2:
        return None, {}
    end = trace[-1]
    # The last quarter of the sleep (at least 5 s), or all of the window if shorter.
    before = [t for t in trace if t[0] <= end[0] - max(5.0, sleep / 4)]
    first = before[-1] if before else trace[0]
    if end[0] - first[0] < 3:
        return None, {}
    span = end[0] - first[0]
    worker_rate, machine_rate = (end[1] - first[1]) / span, (end[2] - first[2]) / span
    steady = {"window_s": round(span, 1),
              "worker_millicores_per_task": round(worker_rate / tasks * 1000, 2),
              "machine_millicores_per_task": round(machine_rate / tasks * 1000, 2)}
    held = end[0] - trace[0][0]
    start = {"worker_cpu_s_per_task_start_incl_parse": round((end[1] - zero[0] - worker_rate * held) / tasks, 3),
             "cpu_s_per_task_start_incl_parse": round((end[2] - zero[1] - machine_rate * held) / tasks, 3)}
    return steady, start


def per_busy_slot(idle: dict[str, dict[str, float]], busy: dict[str, dict[str, float]] | None,
                  tasks: int) -> float | None:
    if busy is None:
        return None
    total = sum(r["pss_mib"] for r in busy.values()) - sum(r["pss_mib"] for r in idle.values())
    return round(total / tasks, 1)


def warm_execution_api(d: Any) -> list[float]:
    """Call the api-server's Execution API until three calls in a row are quick.

    The api-server builds its Execution API app on the first request to it (4 to
    5 s here, each uvicorn worker its own; see bench/controlplane). Prod's
    api-servers are long-lived while its workers scale from zero, so a fresh
    worker meets a warm api-server; without this the fresh run would also pay
    the api-server's first build, a cost of the control plane's start, not of
    the worker's. Returns each call's seconds."""
    calls: list[float] = []
    while len(calls) < 20 and (len(calls) < 3 or max(calls[-3:]) > 0.5):
        began = time.monotonic()
        with urllib.request.urlopen(f"http://127.0.0.1:{d.api_port}/execution/health", timeout=120) as response:
            assert response.status == 200
        calls.append(round(time.monotonic() - began, 3))
    return calls


def restart_worker(d: Any) -> float:
    """Celery's warm shutdown of the worker (no task is running), then a new
    worker from the same declared command: fresh pool children, while the
    control plane stays as the first run left it. Returns the seconds from the
    new worker's process start until Celery logged it ready (consuming, its
    pool forked)."""
    proc = d.processes["worker"]
    tree = descendants(proc.pid)
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=120)
    for pid in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    started = d.start_worker()
    ready = d.wait_worker_ready(started)
    wait_for("the new worker", lambda: d.probe_ok("worker"), timeout=300, interval=2)
    return ready


def parse_sets(items: list[str]) -> dict[str, Any]:
    """--set KEY=VALUE items as stack config changes; VALUE is JSON (false, 3,
    {"a": 1}) or else a string."""
    changes: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE")
        try:
            changes[key] = json.loads(value)
        except json.JSONDecodeError:
            changes[key] = value
    return changes


def bench_config(tasks: int, sleep: int, dag_width: int | None = None,
                 changes: dict[str, Any] | None = None) -> dict[str, Any]:
    """The dev stack with one worker of N slots and the fan-out DAG, plus changes."""
    # A wide DAG makes every task process parse longer; on this machine 128 of
    # them parsing a 1000-task DAG at once overrun Airflow's 30 s import
    # timeout and are rescheduled, so width runs give the parse room.
    wide = {"airflowConfig": {"core": {"dagbag_import_timeout": 300}}} if dag_width else {}
    return stack_config("dev", **{
        "parallelism": tasks, "workerConcurrency": tasks, "fanoutTasks": dag_width or tasks, **wide,
        "fanoutSleepSeconds": sleep, "workerPool": {"vmSize": "Standard_E32s_v5"},
        "systemPool": {"vmSize": "Standard_D8s_v5", "count": 1}, **(changes or {})})


def measure(tasks: int, sleep: int, dag_width: int | None = None, warm_api: bool = True,
            restart: bool = False, changes: dict[str, Any] | None = None) -> dict[str, Any]:
    """With dag_width, the DAG has that many tasks of which N run at once; only
    the fresh run is taken, since the rest of the DAG run keeps the slots busy.
    With warm_api the api-server's Execution API is built before the fresh run.
    With restart a first run warms the control plane (scheduler, api-server,
    PostgreSQL) and the worker is then replaced by a new one, so the fresh run
    is that of a new worker joining a running deployment (KEDA scaling from
    zero); the first run is stored as "first run (control plane cold too)".
    changes: stack config keys set on top (remoteTaskLogs=false, say)."""
    config = bench_config(tasks, sleep, dag_width, changes)
    with local_services("dev", config) as services, deployment(services, config) as d:
        api_calls = warm_execution_api(d) if warm_api else None
        runs = {}
        worker_start = None
        if restart:
            time.sleep(10)
            runs[FIRST_RUN] = one_run(d, tasks, sleep)
            worker_start = restart_worker(d)
        time.sleep(10)  # the pool forks and settles before its idle size is taken
        idle = memory_by_role(d.pid("worker"))
        runs["fresh"] = one_run(d, tasks, sleep)
        if dag_width is None:
            time.sleep(5)
            runs["warm"] = one_run(d, tasks, sleep)
    for run in runs.values():
        run["pss_per_busy_slot_mib"] = per_busy_slot(idle, run["memory_all_running"], tasks)
        run["pss_per_busy_slot_steady_mib"] = per_busy_slot(idle, run["memory_steady"], tasks)
    fresh, warm = runs["fresh"]["all_running_after_s"], runs.get("warm", {}).get("all_running_after_s")
    return {"idle": idle, "runs": runs, "execution_api_warmed_s": api_calls,
            # With restart: the new worker's process start until Celery's "ready".
            "worker_start_s": None if worker_start is None else round(worker_start, 1),
            "fresh_over_warm": round(fresh / warm, 2) if fresh and warm else None}


def print_table(result: dict[str, Any]) -> None:
    idle = result["idle"]
    print(f"\nidle worker: main {idle['main']['pss_mib']} MiB PSS, "
          f"{idle['pool child']['processes']:.0f} pool children at "
          f"{idle['pool child']['pss_per_process_mib']} MiB PSS each "
          f"({idle['pool child']['private_dirty_per_process_mib']} MiB private dirty), "
          f"other {idle['other']['pss_mib']} MiB")
    cols = [("run", 6), ("all running", 12), ("CPU-s/task", 11), ("worker CPU-s", 13), ("+parse", 7),
            ("MiB/slot", 9), ("steady", 7), ("pool child", 11), ("task proc", 10), ("dirty child", 12),
            ("dirty task", 11), ("steady m/task", 14), ("states", 20)]
    print(" ".join(f"{c:<{w}}" for c, w in cols))
    for name, r in result["runs"].items():
        m = r.get("memory_steady") or r["memory_all_running"] or {}
        child, task = m.get("pool child", {}), m.get("task", {})
        row = [name, f"{r['all_running_after_s']} s", r["cpu_s_per_task_start"],
               r["worker_cpu_s_per_task_start"], r.get("worker_cpu_s_per_task_start_incl_parse"),
               r["pss_per_busy_slot_mib"], r.get("pss_per_busy_slot_steady_mib"),
               child.get("pss_per_process_mib"), task.get("pss_per_process_mib"),
               child.get("private_dirty_per_process_mib"), task.get("private_dirty_per_process_mib"),
               (r["steady_cpu"] or {}).get("worker_millicores_per_task"), json.dumps(r["states"])]
        print(" ".join(f"{v!s:<{w}}" for v, (_, w) in zip(row, cols, strict=True)))
    print("CPU-s/task and worker CPU-s: from trigger until all N run; +parse: the worker's until the steady "
          "state, less the steady state's own use; MiB/slot: when all N run, and in the steady state "
          "(pool child and task columns: steady)")
    print(f"fresh / warm time until all run: {result['fresh_over_warm']}")


README_COLUMNS = ("run", "tasks x s (DAG)", "fresh: all running", "fresh CPU-s per task: machine / worker (+ parse)",
                  "warm: all running", "warm CPU-s per task: machine / worker", "fresh / warm",
                  "MiB per busy slot: all running / steady", "pool child / task MiB (steady where measured)",
                  "idle pool child MiB (private dirty)")


def readme_row(label: str, stored: dict[str, Any]) -> list[str]:
    """One stored run as a row of README's bench/worker table."""
    def cell(value: Any, unit: str = "") -> str:
        return "n/a" if value is None else f"{value}{unit}"

    fresh, warm = stored["runs"]["fresh"], stored["runs"].get("warm")
    steady = fresh.get("memory_steady") or fresh["memory_all_running"] or {}
    child = stored["idle"]["pool child"]
    fresh_cpu = f"{fresh['cpu_s_per_task_start']} / {fresh['worker_cpu_s_per_task_start']}"
    if fresh.get("worker_cpu_s_per_task_start_incl_parse") is not None:
        fresh_cpu += f" ({fresh['worker_cpu_s_per_task_start_incl_parse']})"
    return [
        label,
        f"{stored['tasks']} x {stored['sleep_s']} ({stored.get('dag_width', stored['tasks'])})",
        cell(fresh["all_running_after_s"], " s"),
        fresh_cpu,
        cell(warm and warm["all_running_after_s"], " s"),
        f"{warm['cpu_s_per_task_start']} / {warm['worker_cpu_s_per_task_start']}" if warm else "n/a",
        cell(stored.get("fresh_over_warm")),
        f"{fresh['pss_per_busy_slot_mib']} / {cell(fresh.get('pss_per_busy_slot_steady_mib'))}",
        f"{cell(steady.get('pool child', {}).get('pss_per_process_mib'))} / "
        f"{cell(steady.get('task', {}).get('pss_per_process_mib'))}",
        f"{child['pss_per_process_mib']} ({child['private_dirty_per_process_mib']})",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=128)
    parser.add_argument("--sleep", type=int, default=40)
    parser.add_argument("--dag-width", type=int,
                        help="tasks in the DAG (default: --tasks); wider DAGs cost every task process more to parse")
    parser.add_argument("--cold-api", action="store_true",
                        help="do not build the api-server's Execution API before the fresh run "
                             "(the protocol of the runs before 2026-11-30 08:00)")
    parser.add_argument("--restart-worker", action="store_true",
                        help="a first run, then a new worker: the fresh run meets a warm control plane")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a stack config key on top of the benchmark's (VALUE is JSON), e.g. "
                             "remoteTaskLogs=false; repeatable")
    parser.add_argument("--label", help="the key this run is stored under (default: the commit)")
    parser.add_argument("--note", default="", help="what the run measured, stored with it")
    parser.add_argument("--out", type=Path, default=Path("bench/results/worker.json"))
    args = parser.parse_args()
    changes = parse_sets(args.set)
    result = measure(args.tasks, args.sleep, args.dag_width, warm_api=not args.cold_api,
                     restart=args.restart_worker, changes=changes)
    print_table(result)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            check=False).stdout.strip()
    stored = json.loads(args.out.read_text()) if args.out.exists() else {"runs": {}}
    stored["runs"][args.label or commit] = {
        "tasks": args.tasks, "sleep_s": args.sleep, "dag_width": args.dag_width or args.tasks,
        "commit": commit, "note": args.note, **({"stack_changes": changes} if changes else {}),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}, **result,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(stored, indent=2) + "\n")
    print(f"\nwrote {args.out} ({args.label or commit})")


if __name__ == "__main__":
    main()
