"""Where a pool child's and a task process's memory comes from, page by page.

Every process below the worker's main process is a fork: its pages start
shared with its parent and become its own only when one of the two writes to
them. bench/pagemap.py tells, for each resident page of a child, whether it is
still shared with the parent, was copied (and by whom), or is new.

    venv/bin/python -m bench.pages [--slots 16] [--sleep 30] [--label NAME] [--out bench/results/pages.json]

Part 1, forks of one interpreter (the real Airflow's, with the worker's
environment, no Celery): a child of the interpreter as it starts; then, after
the worker's preload (app/config/airflow_aks_celery.py) and a GC freeze, as the
worker's main process has it when it forks the pool, a child that does nothing,
one that reads every attribute of every loaded module (no Python-level write),
one for each of two things billiard does in every pool child (a new lock for
every logger's handlers; its parent-death signal through cffi), one that runs
a collection, and one that unfreezes and collects.

Part 2, the worker as declared (one deployment, --slots slots, a fan-out as
wide): fresh idle pool children against the main process; busy children (each
its task's supervisor) against the main process, and their task processes
against them; the same children idle again after their first task.

Needs root (physical frame numbers). Runs are stored by label next to earlier ones.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path
from typing import Any

from bench import pagemap
from bench.worker import _children, _cmdline, roles, warm_execution_api
from tests.local_airflow import LocalDeployment, deployment, local_services, stack_config
from tests.real_airflow import ROOT

SAMPLE = 4  # processes measured per role; their figures are averaged

FORKS = """
import gc, json, os, sys
from bench import pagemap

def measure(work):
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            work()
            os.write(ready_w, b"x")
            os.read(done_r, 1)
        finally:
            os._exit(0)
    os.read(ready_r, 1)
    try:
        return pagemap.summary(pagemap.classify(os.getpid(), pid))
    finally:
        os.write(done_w, b"x")
        os.waitpid(pid, 0)

def nothing():
    pass

def read_every_module_attribute():
    for module in list(sys.modules.values()):
        for value in list(getattr(module, "__dict__", {}).values()):
            pass

def walk_loggers():
    # What billiard's Process._bootstrap does in every pool child
    # (billiard/process.py): a new lock for every handler of every logger.
    import logging
    names = [*logging.Logger.manager.loggerDict, None]
    for name in names:
        if not name or not isinstance(logging.Logger.manager.loggerDict[name], logging.PlaceHolder):
            for handler in logging.getLogger(name).handlers:
                handler.createLock()

def set_pdeathsig():
    # What billiard's pool child does at start; with cffi loaded (billiard.util
    # imports it) it builds a new FFI and parses the prctl declaration.
    import signal
    from billiard.util import set_pdeathsig
    set_pdeathsig(signal.SIGKILL)

def collect():
    gc.collect()

def unfreeze_and_collect():
    gc.unfreeze()
    gc.collect()

result = {"fork of the interpreter as it starts": measure(nothing)}
import airflow_aks_celery
airflow_aks_celery.preload_before_the_pool_forks()
gc.collect()
gc.freeze()
result["fork after the preload and freeze: nothing"] = measure(nothing)
result["... reading every module attribute"] = measure(read_every_module_attribute)
result["... billiard's walk over every logger"] = measure(walk_loggers)
result["... billiard's set_pdeathsig"] = measure(set_pdeathsig)
result["... gc.collect()"] = measure(collect)
result["... gc.unfreeze(); gc.collect()"] = measure(unfreeze_and_collect)
print(json.dumps(result))
"""


def forks(d: LocalDeployment) -> dict[str, dict[str, float]]:
    """Part 1, under the real Airflow's interpreter with the worker's environment."""
    env = {**d.process_env(d.workloads["worker"]), "PYTHONPATH": f"{ROOT}:{d.home / 'config'}"}
    done = subprocess.run(["python", "-c", FORKS], env=env, cwd=d.home, capture_output=True, text=True,
                          timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the fork experiments failed: {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def mean(summaries: list[dict[str, float]]) -> dict[str, float]:
    keys = {k for s in summaries for k in s}
    return {k: round(sum(s.get(k, 0.0) for s in summaries) / len(summaries), 2) for k in sorted(keys)}


def compare(pairs: list[tuple[int, int]]) -> dict[str, float]:
    return {**mean([pagemap.summary(pagemap.classify(parent, child)) for parent, child in pairs]),
            "processes": len(pairs)}


def worker(d: LocalDeployment, slots: int, sleep: int) -> dict[str, dict[str, float]]:
    """Part 2."""
    warm_execution_api(d)
    time.sleep(10)  # the pool forks and settles
    main = d.pid("worker")
    children = roles(main)["pool child"][:SAMPLE]
    result = {"fresh pool child, idle (against the main process)": compare([(main, c) for c in children])}
    run_id = d.trigger()
    deadline = time.monotonic() + sleep
    while d.states(run_id).get("running", 0) < slots and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(sleep / 3)  # every task process has parsed its DAG and sleeps
    tree = _children()
    busy = [c for c in roles(main)["pool child"] if "airflow supervisor:" in _cmdline(c)][:SAMPLE]
    result["busy pool child, its first task (against the main process)"] = compare([(main, c) for c in busy])
    result["its task process (against the pool child)"] = compare(
        [(c, t) for c in busy for t in tree.get(c, [])[:1]])
    observed = d.observe(run_id, slots, timeout=sleep * 4 + 300)
    assert observed.states == {"success": slots}, observed.states
    time.sleep(3)
    result["the same pool child, idle after its first task"] = compare([(main, c) for c in children])
    return result


def measure(slots: int, sleep: int) -> dict[str, Any]:
    config = stack_config("dev", parallelism=slots, workerConcurrency=slots, fanoutTasks=slots,
                          fanoutSleepSeconds=sleep, workerPool={"vmSize": "Standard_E32s_v5"},
                          systemPool={"vmSize": "Standard_D8s_v5", "count": 1})
    with local_services("dev", config) as services, deployment(services, config) as d:
        return {"forks": forks(d), "worker": worker(d, slots, sleep)}


COLUMNS = ("shared with parent", "copied, private", "copied, shared", "new, private")
HEADER = ("process", *COLUMNS, "private: anonymous / heap / library")


def table_rows(result: dict[str, Any]) -> list[list[str]]:
    """One row per measured process kind, MiB per process (README quotes these)."""
    rows = []
    for part in ("forks", "worker"):
        for name, s in result[part].items():
            where = " / ".join(str(s.get(f"private in {m}", 0.0)) for m in ("anonymous", "[heap]", "library"))
            rows.append([name, *(str(s.get(c, 0.0)) for c in COLUMNS), where])
    return rows


def print_table(result: dict[str, Any]) -> None:
    print("| " + " | ".join(HEADER) + " |")
    print("|" + " --- |" * len(HEADER))
    for row in table_rows(result):
        print("| " + " | ".join(row) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slots", type=int, default=16)
    parser.add_argument("--sleep", type=int, default=30)
    parser.add_argument("--label", help="the key this run is stored under (default: the commit)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/pages.json"))
    args = parser.parse_args()
    result = measure(args.slots, args.sleep)
    print_table(result)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            check=False).stdout.strip()
    stored = json.loads(args.out.read_text()) if args.out.exists() else {"runs": {}}
    stored["runs"][args.label or commit] = {"slots": args.slots, "sleep_s": args.sleep, "commit": commit,
                                            "unit": "MiB per process", **result}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(stored, indent=2) + "\n")
    print(f"\nwrote {args.out} ({args.label or commit})")


if __name__ == "__main__":
    main()
