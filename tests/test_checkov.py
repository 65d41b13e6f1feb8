"""checkov (the `kubernetes` framework) on the offline render of every stack: no failed check,
and every check the project does not follow skipped on its object with a reason.

checkov lives in ./venv-checkov (scripts/install): every checkov 3 release requires
packaging<24, which pytest 9 in ./venv cannot share.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness import ROOT
from tests.test_render import render_in_process
from tests.test_ui_gateway import UI_KEY_VAULT, gateway_project

CHECKOV = ROOT / "venv-checkov" / "bin" / "checkov"
# Each stack file, and prod with the UI through the gateway (its Namespace,
# TLS ServiceAccount, Gateway and HTTPRoute), which no stack file has yet.
STACKS = ("dev", "prod", "local", "prod, UI gateway")
UI_VARIANTS = {"prod, UI gateway": ("prod", UI_KEY_VAULT)}


# The negative control's directory, scanned in the same checkov run as the stacks.
BARE = "bare"


def checkov(directory: Path) -> dict[str, Any]:
    """checkov's JSON report on the manifests in `directory`."""
    if not CHECKOV.exists():
        raise RuntimeError(f"{CHECKOV} is missing: run scripts/install")
    done = subprocess.run(
        [str(CHECKOV), "--directory", str(directory), "--framework", "kubernetes", "--output", "json",
         # Offline: no download of Prisma Cloud's guidelines or custom policies.
         "--skip-download"],
        capture_output=True, text=True, timeout=180, check=False)
    # 0: nothing failed, 1: something failed; anything else is checkov's own error.
    assert done.returncode in (0, 1), done.stderr[-2000:]
    report = json.loads(done.stdout)
    [report] = report if isinstance(report, list) else [report]
    assert report["check_type"] == "kubernetes"
    return report


def by_directory(report: dict[str, Any]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """A report's checks, per top directory of the scanned one: failed, passed, skipped."""
    split: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for outcome in ("failed_checks", "passed_checks", "skipped_checks"):
        for check in report["results"].get(outcome, []):
            top = Path(check["file_path"].lstrip("/")).parts[0]
            split.setdefault(top, {"failed_checks": [], "passed_checks": [], "skipped_checks": []})
            split[top][outcome].append(check)
    return split


def bare_deployment() -> dict[str, Any]:
    """A Deployment left at Kubernetes' defaults: none of the hardening the program declares."""
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "bare", "namespace": "airflow"},
        "spec": {"selector": {"matchLabels": {"app": "bare"}}, "template": {
            "metadata": {"labels": {"app": "bare"}},
            "spec": {"containers": [{"name": "bare", "image": "busybox:1.37"}]}}},
    }


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Every stack's render and the negative control, in one checkov run: checkov takes seconds
    to start, more than it takes to scan one render."""
    scanned = tmp_path_factory.mktemp("scan")
    slugs = {stack: stack.replace(", ", "-").replace(" ", "-") for stack in STACKS}

    for stack in STACKS:
        # The render command's own function, in this process (tests/test_render.py runs the command).
        out = tmp_path_factory.mktemp(f"render-{slugs[stack]}")
        if stack in UI_VARIANTS:
            base, ui = UI_VARIANTS[stack]
            render_in_process(base, out, gateway_project(tmp_path_factory.mktemp("project"), ui, base))
        else:
            render_in_process(stack, out)
        (out / "manifests").rename(scanned / slugs[stack])
    (scanned / BARE).mkdir()
    (scanned / BARE / "bare.yaml").write_text(yaml.safe_dump(bare_deployment()))
    report = checkov(scanned)
    assert report["summary"]["parsing_errors"] == 0, report["summary"]
    split = by_directory(report)
    return {stack: split[slug] for stack, slug in slugs.items()} | {BARE: split[BARE]}


@pytest.mark.parametrize("stack", STACKS)
def test_checkov_finds_nothing(reports: dict[str, dict[str, list[dict[str, Any]]]], stack: str) -> None:
    found = reports[stack]
    failed = [f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in found["failed_checks"]]
    assert failed == [], f"{stack}: checkov failed checks"
    assert found["passed_checks"], f"{stack}: checkov passed no check"


@pytest.mark.parametrize("stack", STACKS)
def test_every_skipped_check_has_its_reason(reports: dict[str, dict[str, list[dict[str, Any]]]], stack: str) -> None:
    skipped = reports[stack]["skipped_checks"]
    assert skipped, f"{stack}: the debatable checks are skipped by annotation, so some are"
    for c in skipped:
        reason = (c.get("check_result") or {}).get("suppress_comment", "")
        assert reason.strip(), f"{stack} {c['resource']}: {c['check_id']} skipped without a reason"


def test_checkov_catches_a_pod_left_at_the_defaults(reports: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    """The scan is real: a Deployment without the hardening fails the checks the project fixed."""
    failed = {c["check_id"] for c in reports[BARE]["failed_checks"]}
    assert {"CKV_K8S_20", "CKV_K8S_22", "CKV_K8S_23", "CKV_K8S_28", "CKV_K8S_31", "CKV_K8S_37",
            "CKV_K8S_38"} <= failed, failed
