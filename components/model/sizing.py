"""What a Celery worker and its tasks were measured to cost, and the headroom
requests add on top. Plain numbers, no imports: settings (for defaults) and the
capacity plan both read them.

Every figure comes from `bench/worker.py` on Airflow 3.3.2 with the prefork
pool and the worker preload of app/config/airflow_aks_celery.py (2 cores;
bench/results/worker.json, runs named below). Memory is PSS summed over the
worker's process tree; CPU is utime + stime of that tree.
"""

from __future__ import annotations

import math

# Requests add a quarter to what was measured.
REQUEST_HEADROOM = 1.25

# --- Memory ---------------------------------------------------------------
# An idle worker with 36 and with 128 pool children ("2cc38c0 at 36 slots",
# "2cc38c0: + cffi parser, ...", "c1508e1 128 x 40 s, steady state"): 624 and
# 1551-1565 MiB, i.e. about 260 MiB for the main process and its log server
# plus about 10.1 MiB per idle pool child.
MEASURED_WORKER_IDLE_MIB = 260
MEASURED_IDLE_POOL_CHILD_MIB = 10.1
# What one running task adds (its pool child grows into the supervisor, and the
# task process it forks), taken when every task has parsed its DAG: 44.6-46.2
# MiB with a 128-task DAG, 47.5 MiB with the reference DAG's 1,000 tasks ("c1508e1
# 128 slots on a 1000-task DAG": every task process holds the whole parsed DAG).
MEASURED_BUSY_SLOT_MIB = 47.5
MEASURED_SLOT_MIB = MEASURED_IDLE_POOL_CHILD_MIB + MEASURED_BUSY_SLOT_MIB

# --- CPU ------------------------------------------------------------------
# A task that waits uses almost nothing between heartbeats: 0.44-0.62
# millicores per running task in the steady state of the same runs.
MEASURED_STEADY_MILLICORES_PER_TASK = 0.62
# Starting a task on a fresh pool child, its DAG parse included: 0.66 CPU-s of
# the worker's with the reference DAG (1,000 tasks), 0.25 with a 128-task DAG,
# 0.14 on a warm child ("c1508e1 ..." runs). Most of the difference is the
# task process parsing the whole DAG file.
MEASURED_TASK_START_CPU_S = 0.66
# On this machine, where the control plane shares the worker's cores, 128
# tasks parsing the reference DAG at once took 76 s each against 128 x 0.66 /
# 2 = 42 s of the worker's CPU alone: the start budget allows twice the
# worker's own CPU time.
TASK_START_HEADROOM = 2.0

DEFAULT_WORKER_MEMORY_PER_SLOT_MIB = math.ceil(MEASURED_SLOT_MIB * REQUEST_HEADROOM)
DEFAULT_WORKER_CPU_PER_SLOT_MILLICORES = math.ceil(MEASURED_STEADY_MILLICORES_PER_TASK * REQUEST_HEADROOM)
WORKER_BASE_MEMORY_MIB = math.ceil(MEASURED_WORKER_IDLE_MIB * REQUEST_HEADROOM)
