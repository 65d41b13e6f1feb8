"""docs/configuration.md: generated from the keys' definitions, and true to what validation does."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pytest

from components.config import PROJECT_DIR, build_stack_config, stack_file_config
from components.model.settings import DEFAULTS, PROJECT, ConfigError, parse_settings
from components.reference import COMMAND, reference
from tests.readme_tables import doc, section, table_after

PAGE = "docs/configuration.md"
LOCATION = "azure-native:location"
POOLS = ("systemPool", "workerPool")
STACK_FILES = sorted(p.name for p in PROJECT_DIR.glob("Pulumi.*.yaml") if p.name != "Pulumi.yaml")


def key_section(key: str) -> str:
    return section(PAGE, f"## {key}")


def bullet(key: str, name: str) -> str:
    """The text of a key's `- Name: ...` line."""
    found = re.search(rf"^- {name}: (.*)$", key_section(key), re.MULTILINE)
    assert found, f"{PAGE}: `{key}` has no {name} line"
    return found.group(1)


def documented_keys() -> list[str]:
    return re.findall(r"^## (\S+)$", doc(PAGE), re.MULTILINE)


def summary() -> dict[str, list[str]]:
    """key -> type, default, what it sets."""
    return {re.sub(r"^\[`([^`]+)`\].*", r"\1", k): v for k, v in table_after("## Summary", PAGE).items()}


def pool_rows() -> dict[str, dict[str, str]]:
    """field -> its cells by column name."""
    columns = ("type", "systemPool", "workerPool", "allowed", "meaning")
    return {k.strip("`"): dict(zip(columns, v, strict=True)) for k, v in table_after("## Pool fields", PAGE).items()}


def shown(value: Any) -> str:
    """A default as the page should show it."""
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if value in ({}, []):
        return "`{}`" if value == {} else "`[]`"
    return f"`{value}`"


def problems(values: Mapping[str, Any], target: str = "local") -> list[tuple[str, str]]:
    """What parse_settings says about a stack of these values on `target`."""
    try:
        parse_settings({"target": target, **values}, stack="t", location="westeurope")
    except ConfigError as err:
        return err.problems
    return []


def test_the_page_is_what_the_generator_prints() -> None:
    assert doc(PAGE) == reference(), f"{PAGE} is stale: regenerate it with `{COMMAND}`"


def test_every_key_the_program_reads_has_a_section_and_a_summary_row() -> None:
    expected = [*DEFAULTS, LOCATION]
    assert sorted(set(documented_keys()) - {"Summary"}) == sorted(expected), \
        f"{PAGE}: its `## <key>` sections are not the keys settings.DEFAULTS reads"
    assert sorted(summary()) == sorted(expected), f"{PAGE}: its summary table is not every key"


@pytest.mark.parametrize("stack_file", STACK_FILES)
def test_every_key_of_a_stack_file_is_documented(stack_file: str) -> None:
    config = stack_file_config(stack_file.split(".")[1])
    fields = pool_rows()
    for full_key, value in config.items():
        key = full_key.removeprefix(f"{PROJECT}:")
        assert f"\n## {key}\n" in doc(PAGE), f"{stack_file}: `{full_key}` has no section in {PAGE}"
        for nested in value if isinstance(value, Mapping) else ():
            # A pool's fields are rows of the pool table; another object's keys are named in its section.
            found = nested in fields if key in POOLS else f"`{nested}`" in key_section(key)
            assert found, f"{stack_file}: `{full_key}.{nested}` is not documented in {PAGE}"


def test_the_defaults_shown_are_the_codes() -> None:
    rows = summary()
    for key, default in DEFAULTS.items():
        cell = rows[key][1]
        assert bullet(key, "Default") == cell, f"{PAGE}: `{key}`'s section and summary row differ"
        if key in POOLS:
            assert "pool fields" in cell, f"{PAGE}: `{key}` should point to the pool fields"
        elif default is None:
            assert cell.startswith(("derived: ", "none")), f"{PAGE}: `{key}` should say how it is derived"
        else:
            assert cell == shown(default), f"{PAGE}: `{key}` shows {cell}, the code's default is {default!r}"
    fields = pool_rows()
    for pool in POOLS:
        for field, default in DEFAULTS[pool].items():
            assert fields[field][pool] == shown(default), \
                f"{PAGE}: {pool}.{field} shows {fields[field][pool]}, the code's default is {default!r}"


def test_a_field_a_pool_does_not_take_is_refused_there() -> None:
    refused = [(pool, field) for field, cells in pool_rows().items() for pool in POOLS
               if cells[pool] == "not taken"]
    assert refused, f"{PAGE}: the system pool takes no autoscaler bounds; the table should say so"
    for pool, field in refused:
        assert any(k == f"{pool}.{field}" for k, _ in problems({pool: {field: 1}})), \
            f"{PAGE} says {pool} does not take `{field}`, but parse_settings accepts it"


def test_the_types_shown_match_the_defaults() -> None:
    python_type = {"integer": int, "boolean": bool, "string": str, "list": list, "object": dict}
    for key, (kind, *_rest) in summary().items():
        default = DEFAULTS.get(key)
        if default is not None:
            assert type(default) is python_type[kind], f"{PAGE}: `{key}` is shown as {kind}, its default {default!r}"


WHOLE = re.compile(r"a whole number from (\d+) to (\d+)")


def refused(values: Mapping[str, Any], key: str, target: str = "local") -> bool:
    return any(k == key for k, _ in problems(values, target))


def out_of_range(values: Mapping[str, Any], key: str, target: str = "local") -> bool:
    """Refused for its range (other rules that name the key, e.g. against another key, don't count)."""
    return any(k == key and ("whole number" in m or "at most" in m or "from" in m)
               for k, m in problems(values, target))


def documented_ranges() -> list[tuple[str, int, int]]:
    found = []
    for key in [*DEFAULTS, LOCATION]:
        m = WHOLE.search(bullet(key, "Allowed"))
        if m:
            found.append((key, int(m.group(1)), int(m.group(2))))
    return found


def test_validation_refuses_just_outside_each_documented_range() -> None:
    ranges = documented_ranges()
    assert len(ranges) > 20, f"{PAGE}: the whole-number keys should show their range"
    for key, lo, hi in ranges:
        for outside in (lo - 1, hi + 1):
            assert refused({key: outside}, key), f"{PAGE} allows `{key}` {lo} to {hi}, but {outside} is accepted"
        for inside in (lo, hi):
            assert not out_of_range({key: inside}, key), f"{PAGE} allows `{key}` {inside}, validation refuses it"


def test_validation_refuses_just_outside_each_pool_fields_range() -> None:
    for field, cells in pool_rows().items():
        if field == "vmSize":
            continue
        m = WHOLE.search(cells["allowed"]) or re.search(r"a number from (\d+) to (\d+)", cells["allowed"])
        assert m, f"{PAGE}: pool field `{field}` shows no range"
        lo, hi = int(m.group(1)), int(m.group(2))
        step = 1 if WHOLE.search(cells["allowed"]) else 0.01
        key = f"workerPool.{field}"
        for outside in (lo - step, hi + step):
            assert refused({"workerPool": {field: outside}}, key), \
                f"{PAGE} allows {key} {lo} to {hi}, but {outside} is accepted"
        for inside in (lo, hi):
            assert not out_of_range({"workerPool": {field: inside}}, key), \
                f"{PAGE} allows {key} {inside}, validation refuses it"


def test_the_aks_ceiling_of_longest_task_seconds_is_validations() -> None:
    most = int(re.search(r"on AKS at most (\d+)", bullet("longestTaskSeconds", "Allowed")).group(1))
    assert not refused({"longestTaskSeconds": most}, "longestTaskSeconds", "aks")
    assert refused({"longestTaskSeconds": most + 1}, "longestTaskSeconds", "aks"), \
        f"{PAGE}: longestTaskSeconds {most + 1} on AKS should be refused"


def test_the_least_metadata_pool_shown_is_what_the_plan_refuses_below() -> None:
    least = int(re.search(r"at least (\d+)", bullet("pgbouncerMetadataPoolSize", "Allowed")).group(1))

    def plan_problems(size: int) -> list[str]:
        try:
            build_stack_config({"target": "local", "pgbouncerMetadataPoolSize": size}, stack="t", location=None)
        except ConfigError as err:
            return [k for k, _ in err.problems]
        return []

    assert "pgbouncerMetadataPoolSize" in plan_problems(least - 1), f"{PAGE}: {least - 1} should be refused"
    assert "pgbouncerMetadataPoolSize" not in plan_problems(least), f"{PAGE}: {least} should be accepted"


def documented_choices() -> dict[str, list[str]]:
    found = {}
    for key in [*DEFAULTS, LOCATION]:
        m = re.match(r"one of ((?:`[^`]+`(?:, )?)+)", bullet(key, "Allowed"))
        if m:
            found[key] = re.findall(r"`([^`]+)`", m.group(1))
    return found


def test_validation_accepts_each_documented_choice_and_nothing_else() -> None:
    choices = documented_choices()
    assert {"target", "workerScaling", "database", "acrSku", "clusterTier", "airflowVersion"} <= set(choices), \
        f"{PAGE}: the keys with a fixed set of values should list it"
    for key, values in choices.items():
        for value in values:
            said = [m for k, m in problems({key: value}, "aks") if k == key and "only applies" not in m]
            assert said == [], f"{PAGE} allows `{key}: {value}`, validation says {said}"
        assert refused({key: f"{values[0]}x"}, key, "aks"), f"{PAGE}: `{key}: {values[0]}x` should be refused"
