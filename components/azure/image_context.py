"""The image's build context, copied with the file modes fixed.

pulumi-docker-build rebuilds when its hash of the build context changes
(provider/internal/context.go, hashBuildContext; image.go, Diff), and that hash
takes in every file's mode as Go prints it ("-rw-rw-r--" or "-rw-r--r--"). A
checkout made under umask 002 and one made under umask 022 hold the same files
with different modes, so a `pulumi up` from one after the other would rebuild,
push a new digest and roll every Airflow pod (pulumi-docker-build#979). The
program therefore points docker-build at a copy of app/ whose modes depend only
on the owner-executable bit: 0644 or 0755, directories 0755.

Everything is copied, .dockerignore with it: docker-build then leaves out of
the copy exactly what it would have left out of app/, by its own rules.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from pathlib import Path


def normalized_mode(mode: int) -> int:
    """0755 if the owner may execute the file, else 0644: the only mode bit a checkout carries."""
    return 0o755 if mode & stat.S_IXUSR else 0o644


def files(context_dir: Path) -> dict[str, int]:
    """Every file under context_dir, as a relative POSIX path, with its normalized mode."""
    found = {}
    for path in sorted(context_dir.rglob("*")):
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode) or not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
            raise ValueError(f"{path}: only regular files and directories go into the image's build context")
        if stat.S_ISREG(info.st_mode):
            found[path.relative_to(context_dir).as_posix()] = normalized_mode(info.st_mode)
    return found


def revision(context_dir: Path) -> str:
    """A short hash of the files' paths, normalized modes and contents, bytecode caches aside.

    The tag of a locally built image: a changed DAG is a new tag, which rolls
    the pods as a new digest does on AKS.
    """
    digest = hashlib.sha256()
    for name, mode in files(context_dir).items():
        if "__pycache__" not in name.split("/"):
            digest.update(f"{name}\0{mode:o}\0".encode() + (context_dir / name).read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def prepare(context_dir: Path, dest: Path) -> None:
    """Make dest a copy of context_dir with normalized modes, and nothing else.

    Unchanged files are left alone, so a second run writes nothing.
    """
    wanted = files(context_dir)
    dirs = {p.as_posix() for name in wanted for p in Path(name).parents if p != Path(".")}
    dest.mkdir(parents=True, exist_ok=True)
    for path in sorted(dest.rglob("*"), reverse=True):  # children before their directory
        rel = path.relative_to(dest).as_posix()
        if path.is_symlink() or (path.is_dir() and rel not in dirs):
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        elif path.is_file() and rel not in wanted:
            path.unlink()
    for name in sorted(dirs):
        (dest / name).mkdir(exist_ok=True)
    for d in [dest, *(dest / name for name in dirs)]:
        d.chmod(0o755)
    for name, mode in wanted.items():
        _write(context_dir / name, dest / name, mode)


def _write(source: Path, target: Path, mode: int) -> None:
    data = source.read_bytes()
    if target.exists() and stat.S_IMODE(target.stat().st_mode) == mode and target.read_bytes() == data:
        return
    # Written beside the target and renamed over it: a reader (docker-build
    # hashing, or a second `pulumi` in the same checkout) sees the old file or the new one.
    fd, partial = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(partial, mode)
    os.replace(partial, target)
