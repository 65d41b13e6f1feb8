"""Fan-out benchmark: N tasks x S seconds on real Airflow, three airflow.cfg side by side.

  (a) generated: the cfg this program generates for parallelism = N
  (b) seed:      the seed article's settings carried over to Airflow 3 (parallelism 1000,
                 worker_concurrency 36, max_active_tasks_per_dag 1000, all else default)
  (c) defaults:  Airflow's defaults with only the executor set
  (d) generated-direct: (a) with PgBouncer off, every client straight to PostgreSQL
  (+ any variant given with --variant NAME:SECTION.OPTION=VALUE,...: the generated cfg plus options)

Everything runs on this machine, one Celery worker per config, through the same
harness as the real-Airflow tests. Prints a table and writes a JSON file.

    venv/bin/python -m bench.fanout [--tasks 128] [--sleep 60] [--out bench/results/fanout.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from components.config import build_stack_config, project_values
from components.model.airflow_cfg import airflow_options
from tests.local_airflow import deployment, descendants, local_services, stack_config

# Options the comparison configs leave at Airflow's defaults: everything the
# program tunes. Plumbing (executor, dags folder, API URL, health checks, auth
# file) stays, since any working deployment needs it.
TUNED = {
    ("core", "parallelism"), ("core", "max_active_tasks_per_dag"), ("core", "max_active_runs_per_dag"),
    ("core", "default_pool_task_slot_count"), ("scheduler", "max_tis_per_query"),
    ("scheduler", "task_queued_timeout"), ("celery", "worker_concurrency"),
    ("celery", "worker_prefetch_multiplier"), ("celery", "task_acks_late"),
    ("database", "sql_alchemy_pool_size"), ("database", "sql_alchemy_max_overflow"), ("api", "workers"),
}
SEED = {("core", "parallelism"): "1000", ("celery", "worker_concurrency"): "36",
        ("core", "max_active_tasks_per_dag"): "1000"}


def render(options: dict[str, dict[str, str]]) -> str:
    return "".join(f"[{s}]\n" + "".join(f"{k} = {v}\n" for k, v in o.items()) + "\n" for s, o in options.items())


def variant_cfgs(config: dict[str, Any], extra: list[str]) -> dict[str, tuple[str, list[str] | None]]:
    built = build_stack_config(project_values(config), stack="dev", location="westeurope")
    generated = airflow_options(built.settings, built.plan)
    plumbing = {s: {k: v for k, v in o.items() if (s, k) not in TUNED} for s, o in generated.items()}
    seed = {s: dict(o) for s, o in plumbing.items()}
    for (s, k), v in SEED.items():
        seed.setdefault(s, {})[k] = v
    migrate_only = ["bash", "-c", "airflow db migrate"]  # default_pool keeps Airflow's 128 slots
    cfgs: dict[str, tuple[str, list[str] | None]] = {
        "generated": (built.airflow_cfg, None),
        "seed": (render(seed), migrate_only),
        "defaults": (render(plumbing), migrate_only),
    }
    for spec in extra:
        name, _, assignments = spec.partition(":")
        options = {s: dict(o) for s, o in generated.items()}
        for item in filter(None, assignments.split(",")):
            key, _, value = item.partition("=")
            section, _, option = key.partition(".")
            options.setdefault(section, {})[option] = value
        cfgs[name] = (render(options), None)
    return cfgs


def connections_to(pids: list[int], port: int) -> int:
    """Established TCP connections from these processes to 127.0.0.1:port (from /proc)."""
    inodes: set[str] = set()
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        try:
            links = [os.readlink(fd) for fd in fd_dir.iterdir()]
        except OSError:
            continue
        inodes |= {link[8:-1] for link in links if link.startswith("socket:[")}
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote, state, inode = fields[2], fields[3], fields[9]
        if state == "01" and int(remote.split(":")[1], 16) == port and inode in inodes:
            count += 1
    return count


def measure(services: Any, config: dict[str, Any], cfg: str, migrate: list[str] | None, tasks: int,
            sleep: int) -> dict[str, Any]:
    with deployment(services, config, cfg_text=cfg, migrate_args=migrate) as d:
        time.sleep(5)  # let the worker settle before its idle size is taken
        idle = d.tree_pss_mib("worker")
        peak = {"pss": idle, "running": 0, "pg": 0, "clients": 0, "api": 0}
        last = [0.0]
        bouncer = d.pgbouncer
        password = d.secret_data["sql-alchemy-conn"].split(":")[2].split("@")[0]
        db_port = bouncer.port if bouncer is not None else services.postgres.port

        def api_server_connections() -> int:
            proc = d.processes["api-server"]
            return connections_to([proc.pid, *descendants(proc.pid)], db_port)

        api_at_start = api_server_connections()

        def sample(states: dict[str, int], now: float) -> None:
            # Reading every process's smaps_rollup is costly: every 2 s, or when more tasks run.
            running = states.get("running", 0)
            if now - last[0] < 2 and running <= peak["running"]:
                return
            last[0] = now
            pss = d.tree_pss_mib("worker")
            if running > peak["running"]:
                peak.update(running=running, pss=pss)  # the worker's size at the most tasks seen running
            elif running == peak["running"]:
                peak["pss"] = max(peak["pss"], pss)
            server = d.query("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND usename = %s",
                             [d.database, "airflow"])[0][0]
            peak["pg"] = max(peak["pg"], server)
            clients = (len([c for c in bouncer.show("CLIENTS", password) if c["database"] != "pgbouncer"])
                       if bouncer is not None else server)
            peak["clients"] = max(peak["clients"], clients)
            peak["api"] = max(peak["api"], api_server_connections())

        started = time.monotonic()
        run_id = d.trigger()
        obs = d.observe(run_id, tasks=tasks, timeout=sleep * (tasks + 4) + 600, on_sample=sample)
        wall = time.monotonic() - started
        busy = peak["running"]
        return {
            "wall_s": round(wall, 1),
            "wall_over_sleep": round(wall / sleep, 2),
            "all_running_after_s": None if obs.all_running_at is None else round(obs.all_running_at, 1),
            "max_running": obs.max_running,
            "states": obs.states,
            "worker_idle_pss_mib": round(idle, 1),
            "worker_peak_pss_mib": round(peak["pss"], 1),
            "pss_per_busy_slot_mib": round((peak["pss"] - idle) / busy, 1) if busy else None,
            "pgbouncer": bouncer is not None,
            # Server side: what PostgreSQL saw from the airflow user. Client
            # side: what the components opened (to PgBouncer, or to PostgreSQL).
            "peak_postgres_connections": peak["pg"],
            "peak_client_connections": peak["clients"],
            # apache/airflow#58510: do the api-server's connections grow?
            "api_server_connections": {"start": api_at_start, "peak": peak["api"],
                                       "end": api_server_connections()},
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=128)
    parser.add_argument("--sleep", type=int, default=60)
    parser.add_argument("--only", nargs="*", help="run only these configs")
    parser.add_argument("--variant", action="append", default=[],
                        help="NAME:section.option=value,... on top of the generated cfg")
    parser.add_argument("--out", type=Path, default=Path("bench/results/fanout.json"))
    args = parser.parse_args()

    config = stack_config("dev", parallelism=args.tasks, workerConcurrency=args.tasks, fanoutTasks=args.tasks,
                          fanoutSleepSeconds=args.sleep, workerPool={"vmSize": "Standard_E32s_v5"},
                          systemPool={"vmSize": "Standard_D8s_v5", "count": 1})
    direct = {**config, "airflow-aks:pgbouncer": False}
    cfgs = variant_cfgs(config, args.variant)
    # The generated cfg twice: through PgBouncer (the default) and straight to
    # PostgreSQL. The comparison configs connect straight, as a hand-made
    # deployment would.
    cfgs["generated-direct"] = cfgs["generated"]
    results: dict[str, Any] = {}
    # PostgreSQL sized for every client connecting straight to it.
    with local_services("dev", direct) as services:
        for name, (cfg, migrate) in cfgs.items():
            if args.only and name not in args.only:
                continue
            print(f"running {name} ({args.tasks} x {args.sleep} s) ...", flush=True)
            through = direct if name in ("seed", "defaults", "generated-direct") else config
            results[name] = measure(services, through, cfg, migrate, args.tasks, args.sleep)
            results[name]["cfg"] = cfg

    cols = [("config", 17), ("wall/S", 7), ("all running", 12), ("max running", 12), ("idle MiB", 9),
            ("MiB/slot", 9), ("PgBouncer", 10), ("peak server", 12), ("peak client", 12), ("api conn", 10),
            ("states", 20)]
    print("\n" + " ".join(f"{c:<{w}}" for c, w in cols))
    for name, r in results.items():
        api = r["api_server_connections"]
        row = [name, r["wall_over_sleep"], f"{r['all_running_after_s']} s" if r["all_running_after_s"] else "never",
               r["max_running"], r["worker_idle_pss_mib"], r["pss_per_busy_slot_mib"],
               "yes" if r["pgbouncer"] else "no", r["peak_postgres_connections"], r["peak_client_connections"],
               f"{api['start']}/{api['peak']}/{api['end']}", json.dumps(r["states"])]
        print(" ".join(f"{v!s:<{w}}" for v, (_, w) in zip(row, cols, strict=True)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "tasks": args.tasks, "sleep_s": args.sleep, "machine": {"cpus": __import__("os").cpu_count(),
                                                               "python": platform.python_version()},
        "results": results,
    }, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
