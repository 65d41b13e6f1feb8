"""The image's build context, copied with the file modes fixed.

pulumi-docker-build rebuilds when its hash of the build context changes
(provider/internal/context.go, hashBuildContext; image.go, Diff), and that hash
takes in every file's mode as Go prints it ("-rw-rw-r--" or "-rw-r--r--"). A
checkout made under umask 002 and one made under umask 022 hold the same files
with different modes, so a `pulumi up` from one after the other would rebuild,
push a new digest and roll every Airflow pod. The program therefore points
docker-build at a copy of app/ whose modes depend only on the owner-executable
bit: 0644 or 0755, directories 0755.

The copy holds the files docker would send, chosen the way docker-build does
(fsutil's filtered walk with moby/patternmatcher and the ignore file of
provider/internal/context.go, getIgnorePatterns), plus the Dockerfile and the
ignore files, which docker-build reads again: it then sends from the copy what
it would have sent from app/.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

DOCKERFILE = "Dockerfile"
IGNORE_FILE = ".dockerignore"

# moby/patternmatcher escapes these when it turns a pattern into a regexp.
_REGEXP_SPECIAL = set(".+()|{}$")
# fsutil (filter.go, NewFilterFS): an exception pattern holding one of these
# stops it from skipping excluded directories whole.
_GLOB_CHARS = set("*[]?^\\")


def go_clean(path: str) -> str:
    """Go's path.Clean: posixpath.normpath, except that it keeps a leading "//"."""
    cleaned = posixpath.normpath(path)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned


def read_ignore_file(data: bytes) -> list[str]:
    """The patterns of a .dockerignore, read as moby/patternmatcher/ignorefile.ReadAll does."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    patterns = []
    for number, raw in enumerate(lines):
        line = raw.removesuffix(b"\r")
        if number == 0:
            line = line.removeprefix(b"\xef\xbb\xbf")
        text = line.decode("utf-8", "surrogateescape")
        if text.startswith("#") or not text.strip():
            continue
        text = text.strip()
        invert = text.startswith("!")
        if invert:
            text = text[1:].strip()
        if text:
            text = go_clean(text)
            if len(text) > 1 and text.startswith("/"):
                text = text[1:]
        patterns.append("!" + text if invert else text)
    return patterns


@dataclass
class Pattern:
    """One compiled pattern of moby/patternmatcher (Pattern.compile and match)."""

    text: str
    exclusion: bool
    kind: str = "exact"
    regexp: re.Pattern[str] | None = None

    @classmethod
    def parse(cls, raw: str) -> Pattern:
        text = go_clean(raw.strip())
        exclusion = text.startswith("!")
        if exclusion:
            if text == "!":
                raise ValueError('illegal exclusion pattern: "!"')
            text = text[1:]
        pattern = cls(text, exclusion)
        pattern.compile()
        return pattern

    def compile(self) -> None:
        regexp, kind, i, first = "^", "exact", 0, True
        text = self.text
        while i < len(text):
            ch, i = text[i], i + 1
            if ch == "*" and text[i:i + 1] == "*":
                i += 1 + (text[i + 1:i + 2] == "/")
                if i >= len(text):
                    kind, regexp = ("prefix", regexp) if kind == "exact" else ("regexp", regexp + ".*")
                else:
                    kind, regexp = "regexp", regexp + "(.*/)?"
                kind = "suffix" if first else kind
            elif ch in "*?":
                kind, regexp = "regexp", regexp + ("[^/]*" if ch == "*" else "[^/]")
            elif ch in _REGEXP_SPECIAL:
                regexp += "\\" + ch
            elif ch == "\\" and i < len(text):
                kind, regexp, i = "regexp", regexp + "\\" + text[i], i + 1
            elif ch in "[]":
                kind, regexp = "regexp", regexp + ch
            else:
                # A trailing backslash as it is, as Go adds it: a regexp then fails to compile, as in docker.
                regexp += ch
            first = False
        self.kind = kind
        if kind == "regexp":
            try:
                self.regexp = re.compile(regexp + r"\Z")
            except re.error as e:
                raise ValueError(f"bad .dockerignore pattern {self.text!r}: {e}") from None

    def match(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.text
        if self.kind == "prefix":
            return path.startswith(self.text[:-2])
        if self.kind == "suffix":
            suffix = self.text[2:]
            return path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
        assert self.regexp is not None
        return self.regexp.match(path) is not None

    def without_trailing_glob(self) -> str:
        return self.text.removesuffix("/**").removesuffix("/*")


@dataclass
class Matcher:
    """moby/patternmatcher's PatternMatcher.MatchesUsingParentResults, as fsutil's walk uses it."""

    patterns: list[Pattern] = field(default_factory=list)

    def matches(self, path: str, parent: list[bool]) -> tuple[bool, list[bool]]:
        matched, info = False, [False] * len(self.patterns)
        for i, pattern in enumerate(self.patterns):
            hit = bool(parent) and parent[i]
            if not hit:
                if pattern.exclusion != matched:
                    continue
                hit = pattern.match(path) or (not parent and self._parent_matches(pattern, path))
            info[i] = hit
            if hit:
                matched = not pattern.exclusion
        return matched, info

    @staticmethod
    def _parent_matches(pattern: Pattern, path: str) -> bool:
        parents = posixpath.dirname(path).split("/")
        return bool(parents[0]) and any(pattern.match("/".join(parents[:n])) for n in range(1, len(parents) + 1))

    def skips_whole(self, directory: str) -> bool:
        """Whether fsutil's filterFS.Walk leaves out an excluded directory without looking inside."""
        exceptions = [p.without_trailing_glob() for p in self.patterns if p.exclusion]
        if any(_GLOB_CHARS & set(e) for e in exceptions):
            return False
        return not any((e + "/").startswith(directory + "/") for e in exceptions)


def ignore_file(context_dir: Path, dockerfile: str = DOCKERFILE) -> Path | None:
    """The ignore file docker-build reads: <Dockerfile>.dockerignore first, else the context's."""
    for candidate in (context_dir / f"{dockerfile}{IGNORE_FILE}", context_dir / IGNORE_FILE):
        if candidate.is_file():
            return candidate
    return None


def sent_files(context_dir: Path, dockerfile: str = DOCKERFILE) -> list[str]:
    """What docker would send: every non-directory the ignore file leaves in, in the order of
    fsutil's walk (filepath.WalkDir: each directory's entries by name, a directory's content
    right after its name), as relative POSIX paths."""
    found = ignore_file(context_dir, dockerfile)
    raw = read_ignore_file(found.read_bytes()) if found else []
    matcher = Matcher([Pattern.parse(p) for p in raw if p.strip()])
    return list(_walk(context_dir, "", matcher, []))


def _walk(directory: Path, prefix: str, matcher: Matcher, parent: list[bool]) -> Iterator[str]:
    for name in sorted(os.listdir(directory)):
        rel, path = prefix + name, directory / name
        is_dir = path.is_dir() and not path.is_symlink()
        excluded, info = matcher.matches(rel, parent) if matcher.patterns else (False, [])
        if is_dir and not (excluded and matcher.skips_whole(rel)):
            yield from _walk(path, rel + "/", matcher, info)
        elif not is_dir and not excluded:
            yield rel


def normalized_mode(mode: int) -> int:
    """0755 if the owner may execute the file, else 0644: the only mode bit a checkout carries."""
    return 0o755 if mode & stat.S_IXUSR else 0o644


def prepared_files(context_dir: Path, dockerfile: str = DOCKERFILE) -> dict[str, int]:
    """The copy's files and modes: what docker sends, plus the files docker-build reads itself."""
    names = sent_files(context_dir, dockerfile)
    names += [n for n in (dockerfile, f"{dockerfile}{IGNORE_FILE}", IGNORE_FILE) if (context_dir / n).is_file()]
    files = {}
    for name in sorted(set(names)):
        info = (context_dir / name).lstat()
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{context_dir / name}: only regular files go into the image's build context")
        files[name] = normalized_mode(info.st_mode)
    return files


def revision(context_dir: Path, dockerfile: str = DOCKERFILE) -> str:
    """A short hash of the prepared copy's paths, modes and contents, read from context_dir."""
    digest = hashlib.sha256()
    for name, mode in prepared_files(context_dir, dockerfile).items():
        digest.update(f"{name}\0{mode:o}\0".encode() + (context_dir / name).read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def prepare(context_dir: Path, dest: Path, dockerfile: str = DOCKERFILE) -> None:
    """Make dest hold context_dir's prepared files and nothing else.

    Unchanged files are left alone, so a second run writes nothing.
    """
    files = prepared_files(context_dir, dockerfile)
    dirs = {str(p) for name in files for p in Path(name).parents if str(p) != "."}
    dest.mkdir(parents=True, exist_ok=True)
    _remove_stale(dest, "", files, dirs)
    for name in sorted(dirs):
        (dest / name).mkdir(exist_ok=True)
    for d in [dest, *(dest / name for name in dirs)]:
        d.chmod(0o755)
    for name, mode in files.items():
        _write(context_dir / name, dest / name, mode)


def _remove_stale(directory: Path, prefix: str, files: dict[str, int], dirs: set[str]) -> None:
    for path in directory.iterdir():
        rel = prefix + path.name
        if path.is_dir() and not path.is_symlink() and rel in dirs:
            _remove_stale(path, rel + "/", files, dirs)
        elif path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif rel not in files or path.is_symlink():
            path.unlink()


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
