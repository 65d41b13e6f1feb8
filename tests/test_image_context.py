"""The image's build context hashes the same in every checkout (issue 22, item 9).

pulumi-docker-build rebuilds, pushes a new digest and so rolls every Airflow pod
when its hash of the build context changes, and that hash takes in file modes.
These tests model the hash and check that the context the program builds from
does not depend on the checkout's umask.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

# Modules, not names: each test then fails on its own when what it checks is missing.
from components.azure import image, image_context
from tests.harness import ROOT, ProgramRun, run_program

APP_DIR = ROOT / "app"
PREPARED = "build/image-context/app"


# A model of docker-build's context hash ---------------------------------------------------------

# Go's os.FileMode.String(): the letters of the type and special bits set ("dalTLDpSugct?", in
# that order), else "-", then rwxrwxrwx. os.Lstat sets these from st_mode (os/stat_linux.go).
_GO_TYPES = {stat.S_IFDIR: "d", stat.S_IFLNK: "L", stat.S_IFIFO: "p", stat.S_IFSOCK: "S"}
_GO_SPECIAL = [(stat.S_ISUID, "u"), (stat.S_ISGID, "g"), (stat.S_ISVTX, "t")]


def go_mode_string(mode: int) -> str:
    """What Go's os.FileMode(...).String() gives for a file os.Lstat described with st_mode `mode`.

    Only regular files and symlinks reach the hash, so devices are left out.
    """
    letters = _GO_TYPES.get(stat.S_IFMT(mode), "") + "".join(c for bit, c in _GO_SPECIAL if mode & bit)
    rwx = "".join(c if mode & (1 << (8 - i)) else "-" for i, c in enumerate("rwxrwxrwx"))
    return (letters or "-") + rwx


def ignore_patterns(context: Path, dockerfile: str = "Dockerfile") -> list[str]:
    """The patterns docker-build reads (getIgnorePatterns: <Dockerfile>.dockerignore, else the context's).

    The model knows the forms app/.dockerignore uses, `**/<glob>` and `<glob>`
    on a name, and refuses any other, so it cannot silently drift from
    docker's moby/patternmatcher.
    """
    for candidate in (context / f"{dockerfile}.dockerignore", context / ".dockerignore"):
        if candidate.is_file():
            lines = [line.strip() for line in candidate.read_text().splitlines()]
            patterns = [line for line in lines if line and not line.startswith("#")]
            for pattern in patterns:
                assert "/" not in pattern.removeprefix("**/") and not pattern.startswith("!"), \
                    f"{candidate}: {pattern!r} is beyond what this model matches"
            return patterns
    return []


def sent(context: Path, dockerfile: str = "Dockerfile") -> list[str]:
    """fsutil's filtered walk: filepath.WalkDir order (each directory's entries by name, a
    directory's content right after its name), leaving out every path a pattern matches."""
    patterns = ignore_patterns(context, dockerfile)

    def ignored(rel: str) -> bool:
        parts = rel.split("/")
        return any(fnmatch.fnmatchcase(part, p.removeprefix("**/")) for p in patterns for part in
                   (parts if p.startswith("**/") else parts[:1]))

    def walk(directory: Path, prefix: str) -> Iterator[str]:
        for name in sorted(os.listdir(directory)):
            rel, path = prefix + name, directory / name
            if ignored(rel):
                continue
            if path.is_dir() and not path.is_symlink():
                yield from walk(path, rel + "/")
            else:
                yield rel
    return list(walk(context, ""))


def docker_build_context_hash(context: Path, dockerfile: Path) -> str:
    """pulumi-docker-build's contextHash (provider/internal/context.go, hashBuildContext).

    One sha256 over, in this order:
    - the Dockerfile's content (hashDockerfile: no name, no mode);
    - for each entry of fsutil's walk of the context, filtered by the ignore
      patterns (sent()), that is a regular file or a symlink (hashFile;
      directories are skipped): its content, then its relative path
      (filepath.ToSlash(path.Clean(...))), then its mode as Go prints it
      (fileMode.String(), from lstat).
    Nothing of the context's own path, and neither mtimes nor owners, go in.
    """
    h = hashlib.sha256(dockerfile.read_bytes())
    for rel in sent(context, dockerfile.name):
        path = context / rel
        mode = path.lstat().st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)) or path.is_dir():
            continue
        h.update(path.read_bytes())
        h.update(rel.encode())
        h.update(go_mode_string(mode).encode())
    return h.hexdigest()


def context_hash(project: Path, context: str) -> str:
    """The hash docker-build takes of the context the program names (dockerfile at <context>/Dockerfile)."""
    return docker_build_context_hash(project / context, project / context / "Dockerfile")


def write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


@pytest.mark.parametrize(("mode", "text"), [
    (0o100644, "-rw-r--r--"), (0o100664, "-rw-rw-r--"), (0o100755, "-rwxr-xr-x"),
    (0o120777, "Lrwxrwxrwx"), (0o104755, "urwxr-xr-x"), (0o040755, "drwxr-xr-x"),
])
def test_go_mode_strings(mode: int, text: str) -> None:
    assert go_mode_string(mode) == text


def test_the_model_hashes_a_lone_dockerfile_as_worked_out_by_hand(tmp_path: Path) -> None:
    write(tmp_path / "Dockerfile", "FROM scratch\n")
    # sha256 of "FROM scratch\n" (hashDockerfile) + "FROM scratch\n" "Dockerfile" "-rw-r--r--" (hashFile)
    assert docker_build_context_hash(tmp_path, tmp_path / "Dockerfile") == \
        "7edf8126040338efde4ed807349317a22e8beb9fd54443f6f2ba3a05a213b555"
    (tmp_path / "Dockerfile").chmod(0o664)
    # ... the same with "-rw-rw-r--"
    assert docker_build_context_hash(tmp_path, tmp_path / "Dockerfile") == \
        "85e9a8debd29d6728dbab28422010796aaf60af344c66daf50c1650a0e299c13"


def test_the_model_walks_and_hashes_as_worked_out_by_hand(tmp_path: Path) -> None:
    write(tmp_path / "Dockerfile", "FROM scratch\n")
    write(tmp_path / "a.txt", "y", 0o755)
    write(tmp_path / "a" / "b", "x")
    # WalkDir reads a directory's entries by name, "a" before "a.txt", and goes
    # into "a" right away: a/b comes before a.txt (a sort of whole paths would
    # put a.txt first, as "." < "/"). The hash is sha256 of
    # "FROM scratch\n" + "FROM scratch\n" "Dockerfile" "-rw-r--r--"
    #   + "x" "a/b" "-rw-r--r--" + "y" "a.txt" "-rwxr-xr-x".
    assert sent(tmp_path) == ["Dockerfile", "a/b", "a.txt"]
    assert docker_build_context_hash(tmp_path, tmp_path / "Dockerfile") == \
        "fee05d7e0169dbcdeab64b4c0af5452ace5681e0e35732917639a268c4dd7f32"


# Which files docker sends ------------------------------------------------------------------------


def test_the_model_leaves_out_what_app_dockerignore_excludes(tmp_path: Path) -> None:
    shutil.copy(APP_DIR / ".dockerignore", tmp_path / ".dockerignore")
    for name in ("Dockerfile", "dags/a.py", "dags/__pycache__/a.cpython-311.pyc", "b.pyc"):
        write(tmp_path / name, name)
    assert sent(tmp_path) == [".dockerignore", "Dockerfile", "dags/a.py"]


# Two checkouts that differ only in file modes ---------------------------------------------------


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def checkout(project: Path, mask: int) -> Path:
    """app/ as git would check it out under `mask`: files written anew, their modes from the umask."""
    with umask(mask):
        shutil.copytree(APP_DIR, project / "app", copy_function=shutil.copyfile,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return project / "app"


def test_checkouts_under_umask_002_and_022_build_the_same_context(tmp_path: Path) -> None:
    group, private = checkout(tmp_path / "one", 0o002), checkout(tmp_path / "two", 0o022)
    assert stat.S_IMODE((group / "Dockerfile").stat().st_mode) == 0o664
    assert stat.S_IMODE((private / "Dockerfile").stat().st_mode) == 0o644
    # Today's behaviour: docker-build pointed at app/ itself sees two different contexts.
    assert context_hash(tmp_path / "one", "app") != context_hash(tmp_path / "two", "app")

    contexts = [image.prepare_build_context(app, app.parent) for app in (group, private)]
    assert contexts == [PREPARED, PREPARED], "the same relative location in both checkouts"
    assert context_hash(tmp_path / "one", PREPARED) == context_hash(tmp_path / "two", PREPARED)
    assert image.context_revision(group) == image.context_revision(private), "and the same local tag"

    dag = next((private / "dags").glob("*.py"))
    dag.write_text(dag.read_text() + "\n# changed\n")
    assert image.prepare_build_context(private, private.parent) == PREPARED
    assert context_hash(tmp_path / "one", PREPARED) != context_hash(tmp_path / "two", PREPARED), \
        "a changed DAG is still a changed context"


def test_the_executable_bit_is_kept_and_nothing_else(tmp_path: Path) -> None:
    app = tmp_path / "app"
    write(app / "Dockerfile", "FROM scratch\n", 0o664)
    write(app / "entrypoint.sh", "#!/bin/sh\n", 0o775)
    write(app / "secret.txt", "x", 0o600)
    image.prepare_build_context(app, tmp_path)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / PREPARED).iterdir()}
    assert modes == {"Dockerfile": 0o644, "entrypoint.sh": 0o755, "secret.txt": 0o644}


def test_the_copy_is_idempotent_and_drops_stale_files(tmp_path: Path) -> None:
    app = checkout(tmp_path, 0o022)
    write(app / "dags" / "__pycache__" / "fanout.cpython-311.pyc", "bytecode")
    image.prepare_build_context(app, tmp_path)
    prepared = tmp_path / PREPARED
    before = {p: p.stat().st_ino for p in prepared.rglob("*")}
    write(prepared / "dags" / "removed.py", "old")
    write(prepared / "old" / "x", "old")

    image.prepare_build_context(app, tmp_path)
    assert {p: p.stat().st_ino for p in prepared.rglob("*")} == before, "unchanged files are not written again"
    # Everything is copied, .dockerignore with it, so docker-build leaves out
    # of the copy what it would leave out of app/.
    assert sent(prepared) == sent(app)
    assert "dags/__pycache__/fanout.cpython-311.pyc" not in sent(prepared)


def test_symlinks_are_refused(tmp_path: Path) -> None:
    app = tmp_path / "app"
    write(app / "Dockerfile", "FROM scratch\n")
    (app / "link").symlink_to("Dockerfile")
    with pytest.raises(ValueError, match="only regular files"):
        image.prepare_build_context(app, tmp_path)


# The program ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_program_builds_from_the_prepared_copy(runs: dict[str, ProgramRun], stack: str) -> None:
    locations = []
    for run in (runs[stack], run_program(stack)):
        assert run.error is None, run.error
        built = run.one("docker-build:index:Image").inputs
        locations.append((built["context"]["location"], built["dockerfile"]["location"]))
    assert locations == [(PREPARED, f"{PREPARED}/Dockerfile")] * 2
    # The copy holds what docker would send from app/, so the build is the same.
    assert sent(ROOT / PREPARED) == sent(APP_DIR)
    for name in sent(APP_DIR):
        assert (ROOT / PREPARED / name).read_bytes() == (APP_DIR / name).read_bytes(), name
    # The local tag hashes what is built.
    assert image.context_revision(APP_DIR) == image_context.revision(ROOT / PREPARED)
