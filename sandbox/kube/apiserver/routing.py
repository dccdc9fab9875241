"""Routing: from a request path and method to (resource type, namespace, name, subresource, verb); discovery."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from aiohttp import web

from sandbox.kube.errors import ApiError, no_such_resource
from sandbox.kube.registry import Registry, ResourceType


class Verb(StrEnum):
    GET = "get"
    LIST = "list"
    WATCH = "watch"
    CREATE = "create"
    UPDATE = "update"
    PATCH = "patch"
    DELETE = "delete"
    DELETECOLLECTION = "deletecollection"


SUBRESOURCE_VERBS = (Verb.GET, Verb.UPDATE, Verb.PATCH)


@dataclass(frozen=True)
class GroupVersion:
    """A discovery request: `/apis/G` (version "") or `/apis/G/V`, `/api/v1`."""

    group: str
    version: str


@dataclass
class Call:
    """One resource request, routed."""

    request: web.Request
    rt: ResourceType
    ns: str | None
    name: str | None
    sub: str | None
    verb: Verb

    @property
    def query(self) -> Any:
        return self.request.query

    @property
    def dry_run(self) -> bool:
        return self.request.query.get("dryRun") == "All"

    @property
    def key_ns(self) -> str:
        """The namespace part of the store key: '' for cluster-scoped kinds."""
        return (self.ns or "") if self.rt.namespaced else ""

    @property
    def item(self) -> str:
        assert self.name is not None
        return self.name


def verb_of(method: str, name: str | None, query: Any) -> Verb | None:
    if method == "GET":
        if name:
            return Verb.GET
        return Verb.WATCH if query.get("watch") in ("true", "1") else Verb.LIST
    if method == "DELETE":
        return Verb.DELETE if name else Verb.DELETECOLLECTION
    return {"POST": Verb.CREATE, "PUT": Verb.UPDATE, "PATCH": Verb.PATCH}.get(method)


def _split(parts: list[str]) -> tuple[str, str, list[str]] | GroupVersion:
    if parts[0] == "api":
        if len(parts) < 2:
            raise no_such_resource()
        return "", parts[1], parts[2:]
    if len(parts) == 2:
        return GroupVersion(parts[1], "")
    return parts[1], parts[2], parts[3:]


def resolve(registry: Registry, path: str) -> GroupVersion | tuple[ResourceType, str | None, str | None, str | None]:
    """-> (resource type, namespace, name, subresource), or the group-version of a discovery request."""
    split = _split([p for p in path.split("/") if p])
    if isinstance(split, GroupVersion):
        return split
    group, version, rest = split
    if not rest:
        return GroupVersion(group, version)
    ns = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        cand = registry.by_plural(group, version, rest[2])
        if cand is not None and cand.namespaced:
            ns, rest = rest[1], rest[2:]
    rt = registry.by_plural(group, version, rest[0])
    if rt is None:
        raise no_such_resource()
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if sub is not None and sub not in rt.subresources:
        raise no_such_resource()
    return rt, ns, name, sub


def allowed(rt: ResourceType, verb: Verb, sub: str | None) -> bool:
    return verb in rt.verbs or bool(sub and verb in SUBRESOURCE_VERBS)


def not_allowed(rt: ResourceType, verb: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", f"{verb} is not supported on {rt.plural}")


def discovery(registry: Registry, gv: GroupVersion) -> dict[str, Any]:
    """APIGroup for `/apis/G`, APIResourceList for `/apis/G/V`."""
    if not gv.version:
        versions = registry.group_versions().get(gv.group)
        if not versions:
            raise no_such_resource()
        vs = [{"groupVersion": f"{gv.group}/{v}", "version": v} for v in versions]
        return {"kind": "APIGroup", "apiVersion": "v1", "name": gv.group, "versions": vs, "preferredVersion": vs[0]}
    rl = registry.resource_list(gv.group, gv.version)
    if rl is None:
        raise no_such_resource()
    return rl


def openapi_group_version(registry: Registry, path: str) -> GroupVersion:
    """The group-version an `/openapi/v3/<path>` document describes."""
    if path == "api/v1":
        return GroupVersion("", "v1")
    parts = path.split("/")
    if len(parts) != 3 or parts[0] != "apis" or not all(parts) or not registry.resource_list(parts[1], parts[2]):
        raise ApiError(404, "NotFound", f"no OpenAPI document for {path}")
    return GroupVersion(parts[1], parts[2])
