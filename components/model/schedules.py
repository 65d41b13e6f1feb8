"""Cron schedules: the reference DAG's, and the KEDA cron windows that bring the
workers up before each run.

Pure Python. Airflow reads a DAG's cron string with croniter (five fields, or
one of its presets); KEDA's cron scaler parses `start` and `end` with
robfig/cron's standard five-field parser and no `@` descriptors
(kedacore/keda pkg/scalers/cron_scaler.go, cronMetadata.Validate). The
grammar accepted here is what both read the same way: numbers, `*`, ranges,
steps and lists, and the English three-letter names of months and weekdays.

A window is the schedule shifted earlier by the lead time (start) and later by
the hold time (end). Shifting a cron expression is exact here only where it can
be: the minute and hour fields are expanded to sets and shifted, the day fields
are carried over unchanged, which is right only while no shifted time crosses
midnight or the day fields are all `*`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import pairwise

# Airflow's presets (airflow/utils/dates.py cron_presets, Airflow 3.3.2): a
# DAG's schedule may be one of these, KEDA takes only the five fields.
CRON_PRESETS: dict[str, str] = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@quarterly": "0 0 1 */3 *",
    "@yearly": "0 0 1 1 *",
}
# Schedules Airflow accepts that are no cron and have no time to pre-warm for.
NOT_CRON = ("@once", "@continuous")

MINUTES_PER_DAY = 24 * 60
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# name, lowest, highest, names (numbered from the lowest); robfig/cron's day of
# week is 0-6 (croniter would also take 7).
_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 6, _WEEKDAYS),
)
_TERM_RE = re.compile(r"^(?:(\*)|([0-9a-z]+)(?:-([0-9a-z]+))?)(?:/([0-9]+))?$")
ALLOWED = ("a five-field cron expression (minute hour day-of-month month day-of-week: numbers, `*`, "
           "ranges a-b, steps /n, lists a,b; months and weekdays also as jan..dec, sun..sat) or one of "
           + ", ".join(CRON_PRESETS))


@dataclass(frozen=True)
class Cron:
    """A schedule as written, its five fields, and the minute and hour sets it fires at."""

    text: str
    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    # Day of month, month and day of week, as written.
    day_fields: tuple[str, str, str]

    @property
    def every_day(self) -> bool:
        """Whether it fires on every day: only then may a shift cross midnight."""
        return self.day_fields == ("*", "*", "*")

    def times_of_day(self) -> list[int]:
        """Minutes after midnight it fires at, on a day it fires."""
        return sorted(h * 60 + m for h in self.hours for m in self.minutes)

    def runs_per_day(self) -> int | None:
        """Runs a day; None when the day fields make it differ from day to day."""
        return len(self.hours) * len(self.minutes) if self.every_day else None

    def shortest_gap_minutes(self) -> int:
        """The fewest minutes between two runs. Across midnight it counts the
        next day's first run, which with restricted days is a lower bound."""
        times = self.times_of_day()
        gaps = [b - a for a, b in pairwise(times)]
        return min([*gaps, times[0] + MINUTES_PER_DAY - times[-1]])


def _value(token: str, lo: int, hi: int, names: tuple[str, ...], field: str) -> int:
    if token.isdigit():
        value = int(token)
    elif token in names:
        value = lo + names.index(token)
    else:
        raise ValueError(f"{field} field: {token!r} is not a number" + (" or a name" if names else ""))
    if not lo <= value <= hi:
        raise ValueError(f"{field} field: {value} is outside {lo}-{hi}")
    return value


def _expand(text: str, lo: int, hi: int, names: tuple[str, ...], field: str) -> frozenset[int]:
    """The values one field stands for."""
    values: set[int] = set()
    for term in text.lower().split(","):
        m = _TERM_RE.match(term)
        if not m:
            raise ValueError(f"{field} field: {term!r} is not a number, `*`, a range or a step")
        star, first, last, step = m.groups()
        if star:
            a, b = lo, hi
        else:
            a = _value(first, lo, hi, names, field)
            # A lone value with a step runs to the end, as in croniter and robfig/cron.
            b = _value(last, lo, hi, names, field) if last else (hi if step else a)
        if a > b:
            raise ValueError(f"{field} field: the range {term!r} runs backwards")
        n = int(step) if step else 1
        if n < 1:
            raise ValueError(f"{field} field: a step must be at least 1, got {term!r}")
        values.update(range(a, b + 1, n))
    return frozenset(values)


def parse_cron(text: str) -> Cron:
    """A schedule as Airflow reads it; ValueError saying what is wrong."""
    written = " ".join(text.split())
    if written in NOT_CRON:
        raise ValueError(f"{written} is no cron schedule")
    expression = CRON_PRESETS.get(written, written)
    if expression.startswith("@"):
        raise ValueError(f"{written!r} is no preset Airflow knows")
    fields = expression.split(" ")
    if len(fields) != 5:
        raise ValueError(f"{written!r} has {len(fields)} fields, not 5")
    sets = [_expand(f, lo, hi, names, name) for f, (name, lo, hi, names) in zip(fields, _FIELDS, strict=True)]
    return Cron(text=written, expression=expression, minutes=sets[0], hours=sets[1],
                day_fields=(fields[2], fields[3], fields[4]))


def _field_text(values: set[int], lo: int, hi: int) -> str:
    return "*" if values == set(range(lo, hi + 1)) else ",".join(str(v) for v in sorted(values))


@dataclass(frozen=True)
class CronWindow:
    """A KEDA cron trigger's `start` and `end`."""

    start: str
    end: str


def _shift_hours(cron: Cron, offset: int, what: str) -> set[int]:
    shifted = {h + offset for h in cron.hours}
    if not cron.every_day and any(not 0 <= h <= 23 for h in shifted):
        raise ValueError(
            f"{cron.text!r}: {what} crosses midnight, and with its day fields "
            f"({' '.join(cron.day_fields)}) the day would change too, which a cron expression cannot shift")
    return {h % 24 for h in shifted}


def prewarm_windows(cron: Cron, lead_minutes: int, hold_minutes: int) -> tuple[CronWindow, ...]:
    """Cron windows from `lead_minutes` before each run to `hold_minutes` after it.

    Minutes that shift into the same hours share a window; a schedule whose
    minutes shift into different hours (a run at :00 and one at :30 of 9
    o'clock, lead 5: 8:55 and 9:25) needs one window per group, since a single
    cron expression would also fire at 8:25 and 9:55. KEDA's cron scaler is
    active from a start until the next end, so the windows of one trigger must
    not overlap: runs closer together than lead + hold are refused.
    ValueError says why a schedule cannot be shifted.
    """
    if not 0 < lead_minutes < MINUTES_PER_DAY or not 0 < hold_minutes < MINUTES_PER_DAY:
        raise ValueError(f"lead and hold must be 1 to {MINUTES_PER_DAY - 1} minutes, got {lead_minutes}, "
                         f"{hold_minutes}")
    gap = cron.shortest_gap_minutes()
    if gap <= lead_minutes + hold_minutes:
        raise ValueError(
            f"{cron.text!r} runs {gap} minutes apart, within the pre-warm window of {lead_minutes} minutes before a "
            f"run and {hold_minutes} after it: the workers would never scale down; keep them with "
            "workerMinReplicas instead")
    # (start hour offset, end hour offset) -> (start minutes, end minutes)
    groups: dict[tuple[int, int], tuple[set[int], set[int]]] = {}
    for m in sorted(cron.minutes):
        key = ((m - lead_minutes) // 60, (m + hold_minutes) // 60)
        starts, ends = groups.setdefault(key, (set(), set()))
        starts.add((m - lead_minutes) % 60)
        ends.add((m + hold_minutes) % 60)
    # Groups whose hours come out the same fire together: one window.
    merged: dict[tuple[str, str], tuple[set[int], set[int]]] = {}
    for (start_offset, end_offset), (starts, ends) in groups.items():
        start_hours = _shift_hours(cron, start_offset, f"{lead_minutes} minutes earlier")
        end_hours = _shift_hours(cron, end_offset, f"{hold_minutes} minutes later")
        key_ = (_field_text(start_hours, 0, 23), _field_text(end_hours, 0, 23))
        s, e = merged.setdefault(key_, (set(), set()))
        s.update(starts)
        e.update(ends)
    days = " ".join(cron.day_fields)
    return tuple(CronWindow(start=f"{_field_text(s, 0, 59)} {start_hours} {days}",
                            end=f"{_field_text(e, 0, 59)} {end_hours} {days}")
                 for (start_hours, end_hours), (s, e) in sorted(merged.items()))
