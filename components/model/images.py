"""The third-party images the deployment runs, each by tag and digest, read from images.json.

A tag alone is pulled once per node (IfNotPresent) and the registry can move it to
another build, so two nodes can run two builds under one name; a digest names one
build forever. The tag stays in the reference for readers: `postgres:17.11@sha256:...`
pulls by the digest and ignores the tag (Kubernetes docs, "Images": "image@digest").

images.json holds, per image, the tag, its multi-arch index digest, where that digest
was read and when. scripts/image-digests refreshes it from the registries; an entry
whose digest no public source gave has `digest: null` and its reason in `source`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

IMAGES_FILE = Path(__file__).with_name("images.json")
DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
# `<repository>:<tag>@sha256:<64 hex>`: a tag for readers, the digest for the runtime.
PINNED_RE = re.compile(r"[\w.\-/:]+:\w[\w.\-]{0,127}@sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class Image:
    name: str
    reference: str
    digest: str | None
    source: str
    date: str | None

    @property
    def pinned(self) -> str:
        """What a container names: the tag and, when known, the digest."""
        return f"{self.reference}@{self.digest}" if self.digest else self.reference


def load(path: Path = IMAGES_FILE) -> dict[str, Image]:
    """The images file's entries by name."""
    raw = json.loads(path.read_text())["images"]
    return {name: Image(name, e["reference"], e["digest"], e["source"], e["date"]) for name, e in raw.items()}


def image(name: str) -> str:
    """The reference a container runs for one of the file's images."""
    return load()[name].pinned


def has_digest(reference: str) -> bool:
    """The reference names a tag and a sha256 digest."""
    return PINNED_RE.fullmatch(reference) is not None
