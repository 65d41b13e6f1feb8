"""Every key of a stack's config, not only the project's: stray ones are refused.

parse_settings sees the project's keys after the `airflow-aks:` prefix is
stripped; a key under a mistyped prefix (`airflow_aks:parallelism`) or none
at all would never reach it and would be ignored without a word. This module
looks at the whole config map, as the Pulumi CLI hands it to the program or
as a stack file holds it, and names each key nothing reads.

The keys a provider reads are taken from the provider's own Python SDK (its
generated `config/vars.py`), so they follow the installed provider version.
"""

from __future__ import annotations

import difflib
import functools
import importlib.util
import re
from collections.abc import Iterable
from pathlib import Path

from components.model.settings import KEY_NAMES, PROJECT

Problems = list[tuple[str, str]]

# Namespaces whose keys the program, or a provider it leaves to its default
# instance, reads. `pulumi:` holds the engine's own keys (pulumi:tags, ...).
# Kubernetes is absent on purpose: every Kubernetes resource gets an explicit
# provider (components/kubernetes/k8s.py), so `kubernetes:*` keys configure a
# default provider nothing uses.
PROVIDER_SDKS = {"azure-native": "pulumi_azure_native", "docker-build": "pulumi_docker_build"}
ENGINE_NAMESPACE = "pulumi"
_CONFIG_GET_RE = re.compile(r"__config__\.get\w*\('([A-Za-z0-9_]+)'")


@functools.cache
def provider_keys(namespace: str) -> tuple[str, ...]:
    """The config keys the installed SDK of a provider reads (its config/vars.py)."""
    spec = importlib.util.find_spec(f"{PROVIDER_SDKS[namespace]}.config.vars")
    if spec is None or spec.origin is None:
        raise RuntimeError(f"the {namespace} provider's Python SDK is not installed (requirements.txt)")
    return tuple(sorted(set(_CONFIG_GET_RE.findall(Path(spec.origin).read_text()))))


def _suggest(word: str, choices: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def _same_letters(a: str, b: str) -> bool:
    """airflow_aks, AirflowAks and airflow-aks differ only in case and separators."""
    def squash(s: str) -> str:
        return re.sub(r"[-_. ]", "", s.lower())
    return squash(a) == squash(b)


def _project_key_hint(name: str) -> str:
    return f"'{PROJECT}:{name}'" if name in KEY_NAMES else f"a key under '{PROJECT}:'"


def _without_namespace(key: str) -> str:
    return (f"nothing reads a key without a namespace: stack config keys are <namespace>:<key>; "
            f"did you mean {_project_key_hint(key)}? (`pulumi config set {key} ...` adds the prefix itself)")


def _under_other_namespace(namespace: str, name: str, key: str) -> str | None:
    if namespace == PROJECT or namespace == ENGINE_NAMESPACE:
        return None
    if namespace in PROVIDER_SDKS:
        known = provider_keys(namespace)
        if name in known:
            return None
        close = _suggest(name, known)
        hint = f"did you mean '{namespace}:{close}'? " if close else ""
        return f"the {namespace} provider has no key {name!r}; {hint}its keys: {', '.join(known)}"
    if namespace == "kubernetes":
        return ("configures the default Kubernetes provider, which this program never uses (it passes its "
                f"own); for a local cluster set '{PROJECT}:kubeContext'")
    if _same_letters(namespace, PROJECT) or _suggest(namespace, [PROJECT]):
        return f"unknown namespace {namespace!r}; did you mean {_project_key_hint(name)}?"
    readers = [*PROVIDER_SDKS, ENGINE_NAMESPACE]
    # `azure:` (the classic provider's namespace) is a prefix of the one read.
    close = _suggest(namespace, readers) or next((n for n in readers if n.startswith(namespace)), None)
    hint = f"did you mean '{close}:{name}'? " if close else ""
    return (f"nothing in this program reads namespace {namespace!r}; {hint}"
            f"namespaces read: {', '.join([PROJECT, *readers])}")


def stray_key_problems(keys: Iterable[str]) -> Problems:
    """A problem for each stack config key nothing reads, named as written.

    The project's own keys are left to parse_settings, which knows them.
    A key Pulumi gives as `<namespace>:config:<name>` (its old form) is read
    as `<namespace>:<name>`.
    """
    problems: Problems = []
    for key in sorted(set(keys)):
        if ":" not in key:
            problems.append((f"{key} (no namespace)", _without_namespace(key)))
            continue
        namespace, name = key.split(":", 1)
        name = name.removeprefix("config:")
        why = _under_other_namespace(namespace, name, key)
        if why:
            problems.append((key, why))
    return problems
