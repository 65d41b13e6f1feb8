"""Every third-party image by digest (components/model/images.json), and scripts/image-digests,
which refreshes that file from the registries, against a fake HTTP layer (it needs the network)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from components.azure.image import LOCAL_IMAGE
from components.model import images
from components.model.settings import DEFAULTS
from tests.harness import ROOT
from tests.test_render import manifests, render_in_process

STACKS = ("dev", "prod", "local")
DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32


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
        # The render command's own function, in this process (tests/test_render.py runs the command).
        path = tmp_path_factory.mktemp(f"render-{stack}")
        render_in_process(stack, path)
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


# --- scripts/image-digests ------------------------------------------------------------

def load_script() -> ModuleType:
    path = ROOT / "scripts" / "image-digests"
    loader = importlib.machinery.SourceFileLoader("image_digests_script", str(path))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    # Registered first: its dataclasses look their module up while being defined.
    sys.modules[loader.name] = module
    loader.exec_module(module)
    return module


class FakeRegistry:
    """Docker Hub's answers: 401 with a Bearer challenge, a token, then the digest with the token."""

    def __init__(self, script: ModuleType, digests: dict[str, str]) -> None:
        self.script, self.digests, self.calls = script, digests, []

    def __call__(self, method: str, url: str, headers: dict[str, str]) -> Any:
        self.calls.append((method, url, dict(headers)))
        response = self.script.Response
        if url.startswith("https://auth.example/token"):
            return response(200, {}, json.dumps({"token": "t0k"}).encode())
        assert method == "HEAD" and url in self.digests, url
        if headers.get("Authorization") != "Bearer t0k":
            return response(401, {"www-authenticate": 'Bearer realm="https://auth.example/token",'
                                                      'service="registry.example",scope="repository:x:pull"'})
        return response(200, {"docker-content-digest": self.digests[url],
                              "content-type": "application/vnd.oci.image.index.v1+json"})


@pytest.mark.parametrize(("ref", "registry", "repository", "tag"), [
    ("postgres:17.11", "registry-1.docker.io", "library/postgres", "17.11"),
    ("prom/statsd-exporter:v0.29.0@" + DIGEST, "registry-1.docker.io", "prom/statsd-exporter", "v0.29.0"),
    ("quay.io/prometheus/statsd-exporter:v0.28.0", "quay.io", "prometheus/statsd-exporter", "v0.28.0"),
    ("localhost:5000/mirror/rabbitmq:4.1.8", "localhost:5000", "mirror/rabbitmq", "4.1.8"),
])
def test_the_script_reads_a_reference(ref: str, registry: str, repository: str, tag: str) -> None:
    got = load_script().parse_reference(ref)
    assert (got.registry, got.repository, got.tag) == (registry, repository, tag), ref


@pytest.mark.parametrize("ref", ["postgres", "localhost:5000/postgres", "postgres@" + DIGEST])
def test_the_script_needs_a_tag(ref: str) -> None:
    with pytest.raises(ValueError, match="a reference with a tag is needed"):
        load_script().parse_reference(ref)


def test_the_script_takes_a_token_and_asks_for_the_index_digest() -> None:
    script = load_script()
    url = "https://registry-1.docker.io/v2/library/postgres/manifests/17.11"
    fake = FakeRegistry(script, {url: DIGEST})
    digest, media = script.digest_of(fake, script.parse_reference("postgres:17.11"))
    assert (digest, media) == (DIGEST, "application/vnd.oci.image.index.v1+json")
    [first, token, second] = fake.calls
    assert first[2]["Accept"].startswith("application/vnd.oci.image.index.v1+json"), "the index first"
    assert token[1] == "https://auth.example/token?service=registry.example&scope=repository%3Ax%3Apull"
    assert second[2]["Authorization"] == "Bearer t0k"


def test_the_script_refuses_an_answer_without_a_digest() -> None:
    script = load_script()

    def http(method: str, url: str, headers: dict[str, str]) -> Any:
        return script.Response(200, {"docker-content-digest": "sha256:abc"})
    with pytest.raises(RuntimeError, match="no sha256 Docker-Content-Digest"):
        script.digest_of(http, script.parse_reference("postgres:17.11"))


def test_the_script_rewrites_the_file_in_its_format(tmp_path: Path) -> None:
    script = load_script()
    target = tmp_path / "images.json"
    target.write_text(images.IMAGES_FILE.read_text())
    assert script.render(json.loads(target.read_text())) == target.read_text(), "the file is the script's format"
    entries = images.load()
    urls = {}
    for e in entries.values():
        ref = script.parse_reference(e.reference)
        urls[f"https://{ref.registry}/v2/{ref.repository}/manifests/{ref.tag}"] = OTHER
    assert script.main(["--file", str(target)], http=FakeRegistry(script, urls)) == 0
    after = images.load(target)
    assert {n: (e.reference, e.digest) for n, e in after.items()} == {
        n: (e.reference, OTHER) for n, e in entries.items()}, "tags kept, every digest the registry's"
    assert all("scripts/image-digests: HEAD https://" in e.source and e.date for e in after.values())


def test_the_script_resolves_one_reference(capsys: pytest.CaptureFixture[str]) -> None:
    script = load_script()
    url = "https://registry-1.docker.io/v2/library/rabbitmq/manifests/4.1.8"
    assert script.main(["--resolve", "rabbitmq:4.1.8"], http=FakeRegistry(script, {url: DIGEST})) == 0
    assert capsys.readouterr().out == f"rabbitmq:4.1.8@{DIGEST}\n"


def test_the_script_says_it_needs_the_network() -> None:
    assert "HTTPS to the registries" in (load_script().__doc__ or "")
