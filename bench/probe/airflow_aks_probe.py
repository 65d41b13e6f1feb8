"""Test-only Celery config module: the shipped one plus a probe of each process role.

bench/attribute.py copies this file next to app/config/airflow_aks_celery.py
and points only its worker at it (AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS); the
image never contains it. Importing the shipped module first connects its preload
before the receivers below, so the worker behaves as shipped, plus:

- main process, after the preload: its sys.modules;
- pool child (marked by worker_process_init), around each task (Celery's
  task_prerun / task_postrun, in the child): its own CPU (RUSAGE_SELF), its
  reaped children's (the task process), and the modules the task added;
- task process (forked by the supervisor from a pool child, found by an
  os.register_at_fork hook): at AIRFLOW_AKS_PROBE_TASK_AT seconds after the fork,
  when it sleeps in the task, its CPU since the fork (the kernel resets it at
  fork) and the modules it imported itself, on the child's first task or a later
  one.

With AIRFLOW_AKS_PROBE_PROFILE=1 a cProfile profile runs from task_prerun in the
pool child; the task process inherits it (a fork copies the thread's profile
hook), so both roles' profiles are written. Everything goes as JSON and pstats
files to AIRFLOW_AKS_PROBE_DIR.
"""

from __future__ import annotations

import cProfile
import json
import os
import resource
import sys
import threading
import time
from pathlib import Path

from airflow_aks_celery import CELERY_CONFIG  # noqa: F401  (connects the shipped preload first)
from celery.signals import import_modules, task_postrun, task_prerun, worker_process_init

OUT = Path(os.environ.get("AIRFLOW_AKS_PROBE_DIR", "/tmp/airflow-aks-probe"))
PROFILE = os.environ.get("AIRFLOW_AKS_PROBE_PROFILE") == "1"
TASK_AT = float(os.environ.get("AIRFLOW_AKS_PROBE_TASK_AT", "6"))

_state: dict = {"role": "main", "tasks": 0, "profile": None, "before": None}


def _cpu(who: int = resource.RUSAGE_SELF) -> float:
    used = resource.getrusage(who)
    return used.ru_utime + used.ru_stime


def _usage(who: int = resource.RUSAGE_SELF) -> dict[str, float]:
    used = resource.getrusage(who)
    return {"user_s": used.ru_utime, "system_s": used.ru_stime, "minor_faults": used.ru_minflt}


def _delta(now: dict[str, float], then: dict[str, float]) -> dict[str, float]:
    return {k: round(now[k] - then[k], 4) for k in now}


def _write(name: str, data: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / name).write_text(json.dumps(data))


@import_modules.connect
def _after_preload(**_: object) -> None:
    _write(f"main-{os.getpid()}.json", {"role": "main", "pid": os.getpid(), "cpu_s": _cpu(),
                                        "modules": sorted(sys.modules)})
    os.register_at_fork(after_in_child=_after_fork)


@worker_process_init.connect
def _pool_child_init(**_: object) -> None:
    _state.update(role="pool child", tasks=0)
    _write(f"child-{os.getpid()}-init.json", {"role": "pool child", "pid": os.getpid(), "cpu_s": _cpu(),
                                              "usage": _usage(),
                                              "modules": sorted(sys.modules)})


@task_prerun.connect
def _prerun(**_: object) -> None:
    _state["tasks"] += 1
    _state["before"] = (set(sys.modules), _cpu(), _cpu(resource.RUSAGE_CHILDREN), time.monotonic(), _usage())
    if PROFILE:
        _state["profile"] = cProfile.Profile()
        _state["profile"].enable()


@task_postrun.connect
def _postrun(**_: object) -> None:
    profile = _state["profile"]
    if profile is not None:
        profile.disable()
        profile.dump_stats(OUT / f"child-{os.getpid()}-task{_state['tasks']}.pstats")
        _state["profile"] = None
    modules, cpu, children, t0, usage = _state["before"]
    _write(f"child-{os.getpid()}-task{_state['tasks']}.json", {
        "role": "pool child", "pid": os.getpid(), "task": _state["tasks"],
        "cpu_s": round(_cpu() - cpu, 4), "task_process_cpu_s": round(_cpu(resource.RUSAGE_CHILDREN) - children, 4),
        "wall_s": round(time.monotonic() - t0, 3), "usage": _delta(_usage(), usage),
        "new_modules": sorted(set(sys.modules) - modules)})


def _after_fork() -> None:
    if _state["role"] != "pool child":
        _state["role"] = "other"
        return
    # The supervisor forked this process to run the task.
    task, parent = _state["tasks"], os.getppid()
    _state["role"] = "task"
    at_fork = set(sys.modules)
    profile = _state["profile"]

    def report() -> None:
        time.sleep(TASK_AT)
        name = f"task-{os.getpid()}-of-{parent}-task{task}"
        if profile is not None:
            profile.snapshot_stats()
            import marshal

            (OUT / f"{name}.pstats").write_bytes(marshal.dumps(profile.stats))
        _write(f"{name}.json", {"role": "task", "pid": os.getpid(), "parent": parent, "task": task,
                                "cpu_s": round(_cpu(), 4), "at_s": TASK_AT, "usage": _usage(),
                                "new_modules": sorted(set(sys.modules) - at_fork)})

    threading.Thread(target=report, daemon=True, name="airflow-aks-probe").start()
