"""Where a fresh worker's extra CPU per task start goes, by process role.

Runs the bench/worker protocol (one worker, N tasks x S seconds, fresh pool
children then the same children warm) with the test-only probe
bench/probe/airflow_aks_probe.py as the worker's Celery config module: the
shipped one plus receivers that record, per role, CPU and the modules each
process imports itself (see that file). Then, in a process that has run the
shipped preload, it times the import of what the pool children and task
processes imported on their first task but not on a later one.

    venv/bin/python -m bench.attribute [--tasks 16] [--sleep 15] [--profile] [--out DIR]
                                       [--set KEY=VALUE ...] [--label NAME --store FILE]

Writes the probe's files and summary.json to --out (default /tmp/airflow-aks-attribution).
Each run's CPU from trigger until all N run is also split by process role and
component (bench/worker.cpu_by_component), so a run with, say,
--set remoteTaskLogs=false next to one without shows where a feature's cost
lands. With --profile the pool children's and task processes' cProfile data of
the warm run are merged per role and the heaviest functions listed. With
--label the summary is also stored in --store (default
bench/results/worker-attribution.json) under that name, with the commit.
Timing figures are only meaningful under the machine's benchmark lock.
"""

from __future__ import annotations

import argparse
import json
import pstats
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.worker import bench_config, memory_by_role, one_run, parse_sets, warm_execution_api
from tests.local_airflow import deployment, local_services

PROBE = Path(__file__).parent / "probe" / "airflow_aks_probe.py"

# In a process that has run the shipped preload: import each listed module and
# report the CPU that took; -X importtime on stderr has the detail.
IMPORT_TIMER = """
import json, sys, time
import airflow_aks_celery
airflow_aks_celery.preload_before_the_pool_forks()
names = json.loads(sys.argv[1])
t0 = time.process_time()
failed = []
for name in names:
    if name in sys.modules:
        continue
    try:
        __import__(name)
    except BaseException as e:
        failed.append(f"{name}: {type(e).__name__}")
print(json.dumps({"cpu_s": time.process_time() - t0, "failed": failed}))
"""


def _load(out: Path, pattern: str) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(out.glob(pattern))]


def _roles(out: Path) -> dict[str, Any]:
    """CPU and new modules per role, first task of a pool child against later ones."""
    children = _load(out, "child-*-task*.json")
    tasks = _load(out, "task-*.json")
    summary: dict[str, Any] = {}
    for role, rows in (("pool child", children), ("task process", tasks)):
        for phase, pick in (("first", lambda r: r["task"] == 1), ("later", lambda r: r["task"] > 1)):
            chosen = [r for r in rows if pick(r)]
            if not chosen:
                continue
            cpu = [r["cpu_s"] for r in chosen]
            entry = {"processes": len(chosen), "cpu_s_mean": round(statistics.mean(cpu), 4),
                     "cpu_s_median": round(statistics.median(cpu), 4),
                     "new_modules_mean": round(statistics.mean(len(r["new_modules"]) for r in chosen), 1)}
            usage = [r["usage"] for r in chosen if "usage" in r]
            if usage:
                for key in ("user_s", "system_s", "minor_faults"):
                    entry[f"{key}_mean"] = round(statistics.mean(u[key] for u in usage), 4)
            if role == "pool child":
                entry["task_process_cpu_s_mean"] = round(statistics.mean(r["task_process_cpu_s"] for r in chosen), 4)
            summary[f"{role}, {phase} task"] = entry
    return summary


def _first_only(rows: list[dict[str, Any]]) -> list[str]:
    """Modules every first task imported that no later task needed."""
    first = [set(r["new_modules"]) for r in rows if r["task"] == 1]
    later = set().union(*(set(r["new_modules"]) for r in rows if r["task"] > 1))
    if not first:
        return []
    common = set.intersection(*first)
    return sorted(common - later)


def _time_imports(d: Any, names: list[str]) -> dict[str, Any]:
    env = {**d.process_env(d.workloads["worker"]), "PYTHONPATH": str(d.home / "config")}
    done = subprocess.run(["python", "-X", "importtime", "-c", IMPORT_TIMER, json.dumps(names)], env=env,
                          cwd=d.home, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        return {"error": done.stderr[-2000:]}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # importtime lines after the preload's mark: "import time: self [us] | cumulative | name",
    # the name indented two spaces per nesting level.
    rows = []
    after_preload = False
    for line in done.stderr.splitlines():
        if line.startswith("airflow-aks: preloaded"):
            after_preload = True
        if not after_preload or not line.startswith("import time:") or line.count("|") != 2:
            continue
        _, cumulative, name = line[len("import time:"):].split("|")
        if cumulative.strip().isdigit():
            rows.append((int(cumulative), name[1:]))
    top = sorted(((cum, name) for cum, name in rows if not name.startswith(" ")), reverse=True)[:40]
    result["top_level_cumulative_ms"] = [(name, round(cum / 1000, 1)) for cum, name in top]
    result["modules"] = len(names)
    return result


def _profiles(out: Path, top: int = 30) -> dict[str, Any]:
    """Per role, the warm tasks' cProfile data merged: the heaviest functions
    by cumulative and by own time, as milliseconds per task."""
    found: dict[str, Any] = {}
    for role, pattern in (("pool child", "child-*-task*.pstats"), ("task process", "task-*-task*.pstats")):
        files = [f for f in sorted(out.glob(pattern)) if not f.stem.endswith("task1")]
        if not files:
            continue
        stats = pstats.Stats(str(files[0]))
        for f in files[1:]:
            stats.add(str(f))
        n = len(files)
        rows = [(f"{Path(fn).name}:{line}({name})", tt, ct) for (fn, line, name), (_, _, tt, ct, _)
                in stats.stats.items()]  # type: ignore[attr-defined]
        found[role] = {
            "processes": n,
            "by_cumulative_ms_per_task": [(w, round(ct / n * 1000, 2)) for w, _, ct in
                                          sorted(rows, key=lambda r: -r[2])[:top]],
            "by_own_ms_per_task": [(w, round(tt / n * 1000, 2)) for w, tt, _ in
                                   sorted(rows, key=lambda r: -r[1])[:top]],
        }
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--sleep", type=int, default=15)
    parser.add_argument("--profile", action="store_true", help="cProfile the pool child's tasks and the task processes")
    parser.add_argument("--out", type=Path, default=Path("/tmp/airflow-aks-attribution"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a stack config key on top of the benchmark's (VALUE is JSON), e.g. "
                             "remoteTaskLogs=false; repeatable")
    parser.add_argument("--label", help="store the summary under this name in --store")
    parser.add_argument("--note", default="", help="what the run measured, stored with it")
    parser.add_argument("--store", type=Path, default=Path("bench/results/worker-attribution.json"))
    args = parser.parse_args()
    changes = parse_sets(args.set)
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    config = bench_config(args.tasks, args.sleep, changes=changes)
    with local_services("dev", config) as services, deployment(services, config, start=False) as d:
        shutil.copy(PROBE, d.home / "config" / PROBE.name)
        d.workloads["worker"].env.update({
            "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "airflow_aks_probe.CELERY_CONFIG",
            "AIRFLOW_AKS_PROBE_DIR": str(args.out),
            "AIRFLOW_AKS_PROBE_PROFILE": "1" if args.profile else "0",
            "AIRFLOW_AKS_PROBE_TASK_AT": str(max(3, args.sleep - 5)),
        })
        d.start()
        d.wait_ready()
        warm_execution_api(d)
        time.sleep(10)
        idle = memory_by_role(d.pid("worker"))
        runs = {"fresh": one_run(d, args.tasks, args.sleep)}
        time.sleep(5)
        runs["warm"] = one_run(d, args.tasks, args.sleep)
        time.sleep(2)
        children = _load(args.out, "child-*-task*.json")
        tasks = _load(args.out, "task-*.json")
        first_child, first_task = _first_only(children), _first_only(tasks)
        imports = {"pool child first task only": _time_imports(d, first_child),
                   "task process on a fresh child only": _time_imports(d, first_task)}
    summary = {"tasks": args.tasks, "sleep_s": args.sleep, "profile": args.profile, "idle": idle,
               "runs": {k: {key: v.get(key) for key in ("all_running_after_s", "cpu_s_per_task_start",
                                                        "worker_cpu_s_per_task_start",
                                                        "cpu_s_per_task_start_by_role", "states")}
                        for k, v in runs.items()},
               "stack_changes": changes,
               "roles": _roles(args.out), "imports": imports,
               "first_only_modules": {"pool child": first_child, "task process": first_task}}
    if args.profile:
        summary["warm_profiles"] = _profiles(args.out)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: summary[k] for k in ("runs", "roles")}, indent=2))
    for role, prof in summary.get("warm_profiles", {}).items():
        print(f"\n{role}, warm tasks ({prof['processes']}): ms per task, cumulative")
        for where, ms in prof["by_cumulative_ms_per_task"]:
            print(f"  {ms:8.2f}  {where}")
    if args.label:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                check=False).stdout.strip()
        stored = json.loads(args.store.read_text()) if args.store.exists() else {"runs": {}}
        stored["runs"][args.label] = {"commit": commit, "note": args.note, **summary}
        args.store.write_text(json.dumps(stored, indent=2) + "\n")
        print(f"\nwrote {args.store} ({args.label})")
    for what, found in imports.items():
        print(f"\n{what}: {found.get('modules')} modules, {found.get('cpu_s')} CPU-s to import after the preload")
        for name, ms in found.get("top_level_cumulative_ms", [])[:20]:
            print(f"  {ms:8.1f} ms  {name}")


if __name__ == "__main__":
    main()
