"""Print docs/configuration.md from the keys' own definitions (components/model/key_docs.py).

    venv/bin/python -m components.reference > docs/configuration.md

Defaults come from settings.DEFAULTS, allowed values from the constants the
validation uses, figures of the prod stack from its plan, and the example from
Pulumi.prod.yaml, so the page cannot drift from the program; a test compares it
with this output.
"""

from __future__ import annotations

import re
from pathlib import Path
from string import Template
from typing import Any

from components.config import PROJECT_DIR, stack_config_from_file
from components.model.key_docs import KEYS, POOL_FIELDS, FieldDoc, KeyDoc
from components.model.settings import DEFAULTS, POOL_KEYS, PROJECT, SYSTEM_POOL_KEYS

COMMAND = "venv/bin/python -m components.reference > docs/configuration.md"
EXAMPLE_STACK = "prod"
POOLS = {"systemPool": SYSTEM_POOL_KEYS, "workerPool": POOL_KEYS}

INTRO = f"""\
Every key of a stack's config: its type, default, allowed values and what it does. All keys but the
region live in the project's namespace: `{PROJECT}:<key>` in `Pulumi.<stack>.yaml`, or
`pulumi config set <key> <value>`. The region is Azure's own key, `azure-native:location`.

A key nothing reads is refused with the rest of the config's problems, by the program and by the
offline render: a mistyped prefix (`airflow_aks:parallelism`: "did you mean
'{PROJECT}:parallelism'?"), a key with no namespace, an `azure-native:` or `docker-build:` key the
installed provider does not have, and `kubernetes:` keys (the program passes its own Kubernetes
provider; use `kubeContext`). A key set where it has no effect is refused too, naming the key it
depends on (`workerMinReplicas` with `workerScaling: fixed`, the `pgbouncer*` keys with
`pgbouncer: false`).

Some values are checked against catalogues kept in the repository, each with its source and the
date it was read: the Azure regions, the apache-airflow releases and every airflow.cfg option of
each deployable `airflowVersion` (`components/model/catalogues/`, rewritten by `scripts/catalogues`),
and the VM sizes (`components/model/vm_sizes.json`, rewritten by `scripts/vm-sizes`). A near miss
gets a "did you mean".
"""


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lowercase, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^a-z0-9 _-]", "", heading.lower()).replace(" ", "-")


def plan_facts() -> dict[str, Any]:
    """The prod stack's figures the texts quote as `$name`."""
    plan = stack_config_from_file(EXAMPLE_STACK).plan
    api = plan.control_plane.api_server
    return {"prod_lead_minutes": plan.prewarm_lead_minutes, "prod_lost_task_seconds": api.lost_task_noticed_seconds,
            "prod_api_pods": api.replicas, "prod_api_workers": api.workers_per_pod}


def value_cell(value: Any) -> str:
    """A default as the stack file would spell it."""
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if value == {}:
        return "`{}`"
    if value == []:
        return "`[]`"
    return f"`{value}`"


def default_cell(doc: KeyDoc) -> str:
    if doc.key in POOLS:
        return "see [pool fields](#pool-fields)"
    if doc.derived:
        return doc.derived if doc.derived.startswith("none") else f"derived: {doc.derived}"
    return value_cell(DEFAULTS[doc.key])


def field_default(doc: FieldDoc, pool: str) -> str:
    if doc.field not in POOLS[pool]:
        return "not taken"
    if doc.field in DEFAULTS[pool]:
        return value_cell(DEFAULTS[pool][doc.field])
    return (doc.system_default if pool == "systemPool" else doc.worker_default) or "none"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def summary_table() -> list[str]:
    lines = ["| key | type | default | what it sets |", "| --- | --- | --- | --- |"]
    lines += [f"| [`{d.key}`](#{anchor(d.key)}) | {d.type} | {_cell(default_cell(d))} | {_cell(d.summary)} |"
              for d in KEYS]
    return lines


def key_section(doc: KeyDoc) -> list[str]:
    lines = [f"## {doc.key}", "", doc.summary, "", f"- Type: {doc.type}", f"- Default: {default_cell(doc)}",
             f"- Allowed: {doc.allowed}"]
    return lines + (["", doc.details] if doc.details else [])


def pool_section() -> list[str]:
    pools = " and ".join(f"`{p}`" for p in POOLS)
    lines = ["## Pool fields", "", f"The fields of {pools}. A field the stack leaves out takes the default shown.",
             "", "| field | type | `systemPool` default | `workerPool` default | allowed | meaning |",
             "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| `{f.field}` | {f.type} | {_cell(field_default(f, 'systemPool'))} | "
              f"{_cell(field_default(f, 'workerPool'))} | {_cell(f.allowed)} | {_cell(f.meaning)} |"
              for f in POOL_FIELDS]
    return lines


def example_section(project_dir: Path = PROJECT_DIR) -> list[str]:
    text = (project_dir / f"Pulumi.{EXAMPLE_STACK}.yaml").read_text().rstrip("\n")
    return [f"## Example: the {EXAMPLE_STACK} stack", "", f"`Pulumi.{EXAMPLE_STACK}.yaml` as shipped:", "",
            "```yaml", text, "```"]


def reference(facts: dict[str, Any] | None = None) -> str:
    """docs/configuration.md."""
    facts = plan_facts() if facts is None else facts
    lines = ["# Configuration reference", "",
             f"<!-- Generated by `{COMMAND}` from components/model/key_docs.py: edit that, not this page. -->",
             "", INTRO, "## Summary", "", *summary_table()]
    for doc in KEYS:
        lines += ["", *key_section(doc)]
    lines += ["", *pool_section()]
    # The example is the stack file's text: nothing in it is a placeholder.
    return Template("\n".join(lines)).substitute(facts) + "\n\n" + "\n".join(example_section()) + "\n"


if __name__ == "__main__":
    print(reference(), end="")
