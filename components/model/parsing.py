"""Parsing helpers for stack config values.

Each returns the parsed value, or None after recording a problem (the key
and why), so that every problem in a config is reported at once. The CLI
hands values over as strings (numbers and booleans too) and objects as JSON
text; these accept both that form and native YAML values.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

Problems = list[tuple[str, str]]


def whole_number(lo: int, hi: int) -> str:
    """What int_value accepts, as its messages and docs/configuration.md say it."""
    return f"a whole number from {lo} to {hi}"


def int_value(raw: Any, key: str, lo: int, hi: int, problems: Problems) -> int | None:
    allowed = whole_number(lo, hi)
    if isinstance(raw, bool):
        problems.append((key, f"must be {allowed}, got {raw!r}"))
        return None
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, str) and re.fullmatch(r"[+-]?\d+", raw.strip()):
        value = int(raw.strip())
    else:
        problems.append((key, f"must be {allowed}, got {raw!r}"))
        return None
    if not lo <= value <= hi:
        problems.append((key, f"must be {allowed}, got {value}"))
        return None
    return value


def bool_value(raw: Any, key: str, problems: Problems) -> bool | None:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
        return raw.strip().lower() == "true"
    problems.append((key, f"must be true or false, got {raw!r}"))
    return None


def str_value(raw: Any, key: str, problems: Problems, check: Callable[[str], str | None]) -> str | None:
    if not isinstance(raw, str) or not raw.strip():
        problems.append((key, f"must be a non-empty string, got {raw!r}"))
        return None
    why = check(raw.strip())
    if why:
        problems.append((key, why))
        return None
    return raw.strip()


def cli_list(raw: Any) -> Any:
    """A list key as the stack file gives it (YAML) or as the Pulumi CLI passes
    it (JSON text, empty for []); anything else unchanged, for the caller to refuse."""
    if isinstance(raw, str):
        try:
            return json.loads(raw) if raw.strip() else []
        except json.JSONDecodeError:
            return raw
    return raw


def object_value(raw: Any, key: str, problems: Problems) -> dict[str, Any] | None:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            problems.append((key, f"must be an object (a YAML mapping), got {raw!r}"))
            return None
    if not isinstance(raw, Mapping):
        problems.append((key, f"must be an object (a YAML mapping), got {raw!r}"))
        return None
    return dict(raw)


def unknown_key(key: str, known: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"unknown key; {hint}known keys: {', '.join(known)}"
