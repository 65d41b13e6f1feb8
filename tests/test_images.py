"""Every third-party image by digest (components/model/images.json)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from components.azure.image import LOCAL_IMAGE
from components.model import images
from components.model.settings import DEFAULTS
from tests.test_render import manifests, run_render

STACKS = ("dev", "prod", "local")


def containers(obj: Any) -> Iterator[dict[str, Any]]:
    """Every container and init container anywhere in a manifest."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                yield from value
            else:
                yield from containers(value)
    elif isinstance(obj, list):
        for item in obj:
            yield from containers(item)


def own_airflow_image(image: str) -> bool:
    """The project's Airflow build: the pushed digest on AKS, a content tag on a local cluster."""
    return image.startswith(("<registry>/airflow:", f"{LOCAL_IMAGE}:"))


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for stack in STACKS:
        path = tmp_path_factory.mktemp(f"render-{stack}")
        done = run_render(stack, path)
        assert done.returncode == 0, done.stderr
        out[stack] = manifests(path)
    return out


def third_party(docs: list[dict[str, Any]]) -> dict[str, str]:
    """Each third-party image the render runs -> an object that runs it."""
    return {c["image"]: f"{d['kind']} {d['metadata'].get('name', '(generated)')}"
            for d in docs for c in containers(d) if not own_airflow_image(c["image"])}


@pytest.mark.parametrize("stack", STACKS)
def test_every_third_party_image_is_pinned_by_digest(rendered: dict[str, list[dict[str, Any]]], stack: str) -> None:
    no_digest = {e.reference for e in images.load().values() if e.digest is None}
    for image, where in third_party(rendered[stack]).items():
        if image not in no_digest:
            assert images.has_digest(image), f"{stack}: {where} runs {image}, not <tag>@sha256:<64 hex>"


def test_only_pgbouncer_lacks_a_digest_and_says_why() -> None:
    # No public record of its digest was found (images.json's source): scripts/image-digests adds it.
    missing = {name: e.source for name, e in images.load().items() if e.digest is None}
    assert list(missing) == ["pgbouncer"], f"images without a digest: {missing}"
    assert "scripts/image-digests" in missing["pgbouncer"]


@pytest.mark.parametrize("stack", STACKS)
def test_the_renders_run_the_files_images_and_no_other(rendered: dict[str, list[dict[str, Any]]],
                                                       stack: str) -> None:
    used = set(third_party(rendered[stack]))
    assert used == {e.pinned for e in images.load().values()}, f"{stack}: third-party images {sorted(used)}"


def test_every_entry_says_where_its_digest_was_read() -> None:
    for name, entry in images.load().items():
        if entry.digest is not None:
            assert images.DIGEST_RE.fullmatch(entry.digest), f"{name}: digest {entry.digest!r}"
            assert entry.date and len(entry.source) > 40, f"{name}: a source and a date for its digest"
            assert images.has_digest(entry.pinned), f"{name}: {entry.pinned} keeps its tag"


def test_the_settings_defaults_are_the_files_references() -> None:
    entries = images.load()
    assert DEFAULTS["postgresImage"] == entries["postgres"].pinned
    assert DEFAULTS["rabbitmqImage"] == entries["rabbitmq"].pinned
    assert DEFAULTS["pgbouncerImage"] == entries["pgbouncer"].pinned


def test_checkov_digest_skips_only_where_the_image_has_no_digest(
        rendered: dict[str, list[dict[str, Any]]]) -> None:
    for doc in rendered["prod"]:
        found = [c["image"] for c in containers(doc)]
        if not found:
            continue
        skipped = " ".join((doc["metadata"].get("annotations") or {}).values())
        name = f"{doc['kind']} {doc['metadata'].get('name', '(generated)')}"
        if all(images.has_digest(i) or i.startswith("<registry>/airflow:") for i in found):
            assert "CKV_K8S_43" not in skipped and "CKV_K8S_15" not in skipped, \
                f"{name}: its images have digests, checkov passes both checks without a skip"
        else:
            assert "CKV_K8S_43=the image has no known digest" in skipped, f"{name}: {found}"
