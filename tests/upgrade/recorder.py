"""What a Pulumi program registers, as the engine receives it, under the SDK's mocks.

The engine keys state by URN (the parent chain's types and the logical name)
and decides replacements and refusals from what each registration carries:
its inputs, protect, ignoreChanges, aliases, deleteBeforeReplace. The SDK's
MockMonitor sees every RegisterResource and ReadResource request; this
subclass keeps them.

It imports nothing of this project but pulumi, so it also records a program
checked out from an older commit (tests/upgrade/capture.py).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from google.protobuf.json_format import MessageToDict
from pulumi.runtime import mocks, rpc
from pulumi.runtime import resource as sdk_resource
from pulumi.runtime.proto import source_pb2

SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"


def plain(value: Any) -> Any:
    """Property values as JSON: secrets unwrapped, whole floats as int, anything else by its str."""
    if isinstance(value, dict):
        if SECRET_SIG_KEY in value and "value" in value:
            return plain(value["value"])
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


@dataclass
class Registration:
    urn: str
    type: str
    name: str
    parent: str
    custom: bool
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    protect: bool = False
    ignore_changes: list[str] = field(default_factory=list)
    delete_before_replace: bool = False
    retain_on_delete: bool = False
    alias_urns: list[str] = field(default_factory=list)
    aliases: list[dict[str, Any]] = field(default_factory=list)
    read: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Registration:
        return cls(**data)


class RecordingMonitor(mocks.MockMonitor):
    """A MockMonitor that keeps each registration request with the answer the mocks gave."""

    def __init__(self, mocks_: mocks.Mocks) -> None:
        super().__init__(mocks_)
        self.registrations: list[Registration] = []
        # The mock's URN -> the engine's: the mock names only the parent's
        # own type, the engine every ancestor's but the root stack's.
        self.engine_urns: dict[str, str] = {}

    def engine_urn(self, parent: str, type_: str, name: str) -> str:
        parent_urn = self.engine_urns.get(parent, "")
        qualified = type_
        if parent_urn:
            qualified = f"{parent_urn.split('::')[2]}${type_}"
        return "::".join(["urn:pulumi:" + mocks.get_stack(), mocks.get_project(), qualified, name])

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            return response
        urn = self.engine_urns[response.urn] = self.engine_urn(request.parent, request.type, request.name)
        self.registrations.append(Registration(
            urn=urn, type=request.type, name=request.name, parent=self.engine_urns.get(request.parent, ""),
            custom=bool(request.custom),
            inputs=plain(rpc.deserialize_properties(request.object)),
            outputs=plain(self.resources[response.urn].state),
            protect=bool(request.protect), ignore_changes=list(request.ignoreChanges),
            delete_before_replace=bool(request.deleteBeforeReplace),
            retain_on_delete=bool(request.retainOnDelete),
            alias_urns=list(request.aliasURNs),
            aliases=[self._alias(MessageToDict(a)) for a in request.aliases],
        ))
        return response

    def _alias(self, alias: dict[str, Any]) -> dict[str, Any]:
        spec = alias.get("spec")
        if spec and spec.get("parentUrn"):
            spec["parentUrn"] = self.engine_urns.get(spec["parentUrn"], spec["parentUrn"])
        return alias

    def ReadResource(self, request: Any) -> Any:
        response = super().ReadResource(request)
        urn = self.engine_urns[response.urn] = self.engine_urn(request.parent, request.type, request.name)
        self.registrations.append(Registration(
            urn=urn, type=request.type, name=request.name, parent=self.engine_urns.get(request.parent, ""),
            custom=True,
            inputs=plain(rpc.deserialize_properties(request.properties)),
            outputs=plain(self.resources[response.urn].state), read=True,
        ))
        return response


@contextlib.contextmanager
def without_stack_traces() -> Iterator[None]:
    """The SDK without the call stack it sends with each registration.

    For every resource the SDK walks the whole Python stack and reads each
    frame's source line (pulumi/runtime/resource.py, _get_stack_trace), for
    the engine to show where a resource was declared. A mock monitor keeps
    none of it, and under pytest the stack is deep: 70 frames down, a run of
    the prod stack took 1.26 s with it and 1.04 s without (this machine).
    What is registered is otherwise the same.
    """
    original = sdk_resource._get_stack_trace
    sdk_resource._get_stack_trace = source_pb2.StackTrace
    try:
        yield
    finally:
        sdk_resource._get_stack_trace = original


def install() -> list[RecordingMonitor]:
    """Make every later set_mocks() use a RecordingMonitor; returns the list they are added to."""
    made: list[RecordingMonitor] = []

    class Recording(RecordingMonitor):
        def __init__(self, mocks_: mocks.Mocks) -> None:
            super().__init__(mocks_)
            made.append(self)

    mocks.MockMonitor = Recording  # type: ignore[misc]  # set_mocks() looks the class up at call time
    return made


def dumps(registrations: list[Registration], outputs: dict[str, Any], **meta: Any) -> str:
    """A state as JSON: what each resource was registered with (the mocks' outputs left out: the
    providers diff inputs against the recorded object, which the inputs stand for here)."""
    # The engine keeps one state per URN. A release whose own harness records
    # too (0.2.0's) hands every registration to both recorders: keep one.
    unique = {r.urn: r for r in registrations}
    regs = [{**r.to_json(), "outputs": {}} for r in sorted(unique.values(), key=lambda r: r.urn)]
    return json.dumps({**meta, "outputs": plain(outputs), "registrations": regs},
                      indent=1, sort_keys=True, default=str) + "\n"
