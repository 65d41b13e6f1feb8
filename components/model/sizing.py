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

# --- api-server -----------------------------------------------------------
# From `bench/controlplane` (real api-server, scheduler, PostgreSQL, PgBouncer
# and RabbitMQ; simulated workers making the supervisor's Execution API calls;
# bench/results/controlplane.json, runs named below).
# Every running task's supervisor heartbeats every [workers]
# min_heartbeat_interval, so a running task costs the api-server one
# heartbeat's CPU per interval. At 5 s (the SDK's default) one running task
# cost 1.55 millicores ("200 paced 16": 200 tasks on one uvicorn worker, 0.31
# cores) to 2.04 ("500 paced 16, 2 api workers", saturated): 7.8 to 10.2 ms a
# heartbeat. The plan takes the higher.
MEASURED_API_HEARTBEAT_CPU_S = 0.0102
# One uvicorn worker is one Python process: saturated it used 0.87-0.95 cores
# ("500 paced 16", "1000 paced 16", "1000 burst"); the plan takes the lower.
MEASURED_API_WORKER_SATURATION_MILLICORES = 870
# At a third of saturation (200 tasks on one worker) heartbeat p99 was 1.0-1.4
# s; saturated (458 running) it was 32 s, past the SDK's 5 s timeout, and
# tasks failed. The plan keeps each worker at half of saturation or less.
API_WORKER_HEADROOM = 2.0
# A task's start, rendered fields and final state cost about 58 ms of the
# api-server's CPU beyond its heartbeats, paced ("200 paced 16"). Made all at
# once, as warm workers make them when a run is queued: 500 starts on one
# uvicorn worker in an 850-millicore cgroup were all answered 35.4 s after the
# trigger ("500 burst, 1 api workers, api-server at 850m, execution_api_timeout
# 20 s", heartbeats every 15 s): 35.4 s x 0.85 cores / 500 = 60 ms of CPU a
# start, with its rendered fields and the heartbeats that came in meanwhile.
# (167 at once on 680m took 4.2 s in one run and 8.7 s in the next: a small
# burst drains too fast to measure on a shared machine.)
MEASURED_API_BURST_START_CPU_S = 0.060
# Peak PSS of the api-server: 285-324 MiB with one uvicorn worker, 713 MiB with
# two (their process manager included): about 357 MiB per worker.
MEASURED_API_WORKER_MIB = 357
API_WORKER_MEMORY_MIB = math.ceil(MEASURED_API_WORKER_MIB * REQUEST_HEADROOM)

# --- Start-up of a burst ---------------------------------------------------
# components/model/startup.py builds the start-up timelines from these.
# The scheduler queues a 1,000-wide run in 1.5 s with [scheduler]
# max_tis_per_query 0 (components/model/airflow_cfg.py; README, airflow.cfg).
MEASURED_QUEUE_SECONDS_PER_1000 = 1.5
# From one bench/worker run with --restart-worker (bench/results/worker.json):
# a first run warms the control plane, then a new worker starts, as one KEDA
# adds; its fresh and warm runs follow.
STARTUP_RUN = "startup: new worker's start, 128 x 40 s"
# The new worker's process start until Celery logged it ready (its pool of 128
# children forked, consuming): worker_start_s.
MEASURED_WORKER_START_S = 6.2
# From the run's first task queued until the first one started, on the fresh
# and on the warm pool (queued_to_first_running_s: the database's timestamps,
# the scheduler's queued_dttm and the supervisor's start_date).
MEASURED_FIRST_TASK_FRESH_S = 0.6
MEASURED_FIRST_TASK_WARM_S = 0.2
# After the first, each further task's start took this many seconds of the
# machine's 2 cores (first_to_last_running_s x 2 / 127): the scheduler,
# api-server and database shared them with the worker, so on a worker node of
# its own this is an upper bound.
MEASURED_SLOT_START_FRESH_CORE_S = 0.168
MEASURED_SLOT_START_WARM_CORE_S = 0.114

# --- The widest deployment -------------------------------------------------
# The design runs one scheduler and one PostgreSQL however wide the stack is;
# only the workers and the api-server scale out. The widest run measured with
# that is bench/results/controlplane.json's parallelism 3000 (measured_at
# 2026-11-30T05:27:43, "paced starts: at most 16 start calls in flight;
# api-server with 2 uvicorn workers; ... run from HEAD 10bf0c1 + bench"): the
# one scheduler queued all 3,000 task instances in 5.0 s and PostgreSQL kept
# up. Its 936 failed tasks were the api-server's (2 uvicorn workers for 3,000
# tasks), which the plan sizes from parallelism. Nothing wider was measured,
# so settings refuse a wider parallelism (and DAG width) rather than promise it.
MEASURED_WIDEST_RUN = "bench/controlplane, parallelism 3000, 2026-11-30T05:27:43"
MAX_PARALLELISM = 3000
