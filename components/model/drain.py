"""How long a worker takes to stop, and how long AKS may wait to drain a node.

Plain arithmetic, no project imports: settings (to refuse a longestTaskSeconds
AKS cannot drain for) and the capacity plan (the pool's upgrade settings)
both read it.
"""

from __future__ import annotations

import math

# A stopping worker gets this long beyond the longest task to finish and exit.
WORKER_SHUTDOWN_SLACK_SECONDS = 60
# AKS waits at most this long to drain one node (AgentPoolUpgradeSettings
# drainTimeoutInMinutes: 1 to 1440; its default is 30; AKS REST API
# 2025-10-01, read 2026-12-02).
AKS_MAX_DRAIN_MINUTES = 1440
# The drain timeout's margin beyond a worker's warm shutdown.
DRAIN_SLACK_MINUTES = 5


def worker_stop_seconds(longest_task_seconds: int) -> int:
    """How long a worker may take to stop: its longest task, then the exit."""
    return longest_task_seconds + WORKER_SHUTDOWN_SLACK_SECONDS


def drain_minutes_needed(longest_task_seconds: int) -> int:
    """The per-node drain timeout a worker's warm shutdown needs, uncapped."""
    return math.ceil(worker_stop_seconds(longest_task_seconds) / 60) + DRAIN_SLACK_MINUTES


def worker_drain_minutes(longest_task_seconds: int) -> int:
    """AKS's per-node drain timeout for the worker pool: long enough for a
    worker's warm shutdown, so a node upgrade waits for running tasks instead
    of failing after AKS's default 30 minutes. It covers one node's workers
    only if they stop together: see capacity.worker_disruption_allowance."""
    return min(AKS_MAX_DRAIN_MINUTES, drain_minutes_needed(longest_task_seconds))


def max_longest_task_seconds() -> int:
    """The longest task whose drain timeout AKS can still set: past it,
    worker_drain_minutes is capped and a node drain would give up on
    running tasks (so settings refuse it). Found by search over
    drain_minutes_needed, which only grows with the task's length."""
    lo, hi = 0, AKS_MAX_DRAIN_MINUTES * 60
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if drain_minutes_needed(mid) <= AKS_MAX_DRAIN_MINUTES:
            lo = mid
        else:
            hi = mid - 1
    return lo
