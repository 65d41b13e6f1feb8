"""checkov (the `kubernetes` framework) on the offline render of every stack: no failed check,
and every check the project does not follow skipped on its object with a reason.

checkov lives in ./venv-checkov (scripts/install): every checkov 3 release requires
packaging<24, which pytest 9 in ./venv cannot share.
"""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness import ROOT
from tests.test_render import run_render
from tests.test_ui_gateway import UI_KEY_VAULT, gateway_project

CHECKOV = ROOT / "venv-checkov" / "bin" / "checkov"
# Each stack file, and prod with the UI through the gateway (its Namespace,
# TLS ServiceAccount, Gateway and HTTPRoute), which no stack file has yet.
STACKS = ("dev", "prod", "local", "prod, UI gateway")
UI_VARIANTS = {"prod, UI gateway": ("prod", UI_KEY_VAULT)}


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


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """One scan per stack, the three at once: each is a render and a checkov
    process, mostly one core's work, so in turn they left the other core idle."""
    outs = {stack: tmp_path_factory.mktemp(f"render-{stack.replace(', ', '-').replace(' ', '-')}")
            for stack in STACKS}

    def scan(stack: str) -> dict[str, Any]:
        if stack in UI_VARIANTS:
            base, ui = UI_VARIANTS[stack]
            project = gateway_project(tmp_path_factory.mktemp("project"), ui, base)
            done = run_render(base, outs[stack], project)
        else:
            done = run_render(stack, outs[stack])
        assert done.returncode == 0, done.stderr
        return checkov(outs[stack] / "manifests")

    with ThreadPoolExecutor(len(STACKS)) as pool:
        return dict(zip(STACKS, pool.map(scan, STACKS), strict=True))


@pytest.mark.parametrize("stack", STACKS)
def test_checkov_finds_nothing(reports: dict[str, dict[str, Any]], stack: str) -> None:
    report = reports[stack]
    failed = [f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in report["results"]["failed_checks"]]
    assert failed == [], f"{stack}: checkov failed checks"
    assert report["summary"]["passed"] > 0 and report["summary"]["parsing_errors"] == 0, stack


@pytest.mark.parametrize("stack", STACKS)
def test_every_skipped_check_has_its_reason(reports: dict[str, dict[str, Any]], stack: str) -> None:
    skipped = reports[stack]["results"].get("skipped_checks", [])
    assert skipped, f"{stack}: the debatable checks are skipped by annotation, so some are"
    for c in skipped:
        reason = (c.get("check_result") or {}).get("suppress_comment", "")
        assert reason.strip(), f"{stack} {c['resource']}: {c['check_id']} skipped without a reason"


def test_checkov_catches_a_pod_left_at_the_defaults(tmp_path: Path) -> None:
    """The scan is real: a Deployment without the hardening fails the checks the project fixed."""
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "bare", "namespace": "airflow"},
        "spec": {"selector": {"matchLabels": {"app": "bare"}}, "template": {
            "metadata": {"labels": {"app": "bare"}},
            "spec": {"containers": [{"name": "bare", "image": "busybox:1.37"}]}}},
    }
    (tmp_path / "bare.yaml").write_text(yaml.safe_dump(deployment))
    failed = {c["check_id"] for c in checkov(tmp_path)["results"]["failed_checks"]}
    assert {"CKV_K8S_20", "CKV_K8S_22", "CKV_K8S_23", "CKV_K8S_28", "CKV_K8S_31", "CKV_K8S_37",
            "CKV_K8S_38"} <= failed, failed
