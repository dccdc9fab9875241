"""The HTTP face of the emulator: discovery, OpenAPI v3, CRUD, PATCH, watch, Tables, subresources, faults.

Requests are handled on one asyncio loop; the store is touched only from that loop, so no locks are needed.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import yaml
from aiohttp import web

from sandbox.kube import leases, protobuf
from sandbox.kube.defaults import apply_defaults
from sandbox.kube.patches import (
    PatchError,
    json_patch,
    managed_fields_v1,
    merge_patch,
    server_side_apply,
    strategic_merge,
)
from sandbox.kube.registry import SERVER_VERSION, Registry, ResourceType
from sandbox.kube.selectors import SelectorError, field_matcher, label_matcher
from sandbox.kube.store import Conflict, Store, Watcher, now_iso
from sandbox.kube.tables import table

REQUEST_LOG_CAP = 2000
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def _qualified(rt: ResourceType) -> str:
    """The group-qualified resource the API server names in its messages: `leases.coordination.k8s.io`, `pods`."""
    return f"{rt.plural}.{rt.group}" if rt.group else rt.plural


def _conflict(rt: ResourceType, name: str) -> ApiError:
    """apierrors.NewConflict with the storage layer's optimistic-lock message, as kube-apiserver answers it."""
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_qualified(rt)} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        {"name": name, "group": rt.group, "kind": rt.plural},
    )


def _precondition_failed(rt: ResourceType, ns: str, name: str, label: str, wanted: str, actual: str) -> ApiError:
    """A DELETE whose preconditions do not hold: the storage layer's invalid-object error wrapped in a Conflict."""
    key = "/".join(p for p in ("/registry", rt.plural, ns, name) if p)
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_qualified(rt)} "{name}": StorageError: invalid object, '
        f"Code: 4, Key: {key}, ResourceVersion: 0, AdditionalErrorMsg: Precondition failed: "
        f"{label} in precondition: {wanted}, {label} in object meta: {actual}",
        {"name": name, "group": rt.group, "kind": rt.plural},
    )


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details or {}


def status_body(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": details or {},
        "code": code,
    }


@dataclass
class FaultRule:
    """Make the next `count` requests matching (verb, resource[, name]) fail with `status` (or be delayed)."""

    verb: str = "*"
    resource: str = "*"
    name: str = "*"
    count: int = 1
    status: int = 500
    message: str = "injected fault"
    delay_seconds: float = 0.0
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def matches(self, verb: str, resource: str, name: str) -> bool:
        return (
            self.verb in ("*", verb)
            and self.resource in ("*", resource)
            and self.name in ("*", name)
            and self.count != 0
        )


@dataclass
class AccessPolicy:
    """What SelfSubjectAccessReviews answer, and which bearer tokens are accepted.

    Tokens: the static ones listed, or EKS tokens (`k8s-aws-v1.` + base64url of a presigned STS
    GetCallerIdentity URL with `x-k8s-aws-id` signed in), accepted for `token_ttl_seconds` after signing,
    as EKS does (about 15 minutes).
    """

    allowed: bool = True
    reject_tokens: bool = False  # every request 401 (API reachable but credentials wrong)
    static_tokens: set[str] = field(default_factory=set)
    token_ttl_seconds: float = 900.0
    principal: str = "arn:aws:iam::123456789012:user/sandbox-admin"


UNAUTHENTICATED_PATHS = ("/version", "/version/", "/healthz", "/livez", "/readyz")


def check_eks_token(token: str, ttl: float, now: float | None = None) -> str | None:
    """None when the token is acceptable, else why not."""
    import base64
    import calendar
    from urllib.parse import parse_qs, urlsplit

    if not token.startswith("k8s-aws-v1."):
        return "not an EKS token"
    raw = token[len("k8s-aws-v1.") :]
    try:
        url = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    except ValueError:
        return "token is not base64url"
    parts = urlsplit(url)
    q = {k.lower(): v[0] for k, v in parse_qs(parts.query).items()}
    if q.get("action") != "GetCallerIdentity" or "sts" not in parts.netloc:
        return "token is not a presigned STS GetCallerIdentity URL"
    if "x-k8s-aws-id" not in q.get("x-amz-signedheaders", "").split(";"):
        return "the x-k8s-aws-id header is not signed into the token"
    try:
        signed = calendar.timegm(time.strptime(q["x-amz-date"], "%Y%m%dT%H%M%SZ"))
    except (KeyError, ValueError):
        return "token has no valid X-Amz-Date"
    if (now or time.time()) - signed > ttl:
        return f"token expired (signed {int((now or time.time()) - signed)} s ago, accepted for {int(ttl)} s)"
    return None


class Emulator:
    def __init__(self, name: str = "sandbox") -> None:
        self.name = name
        self.registry = Registry()
        self.store = Store()
        self.faults: list[FaultRule] = []
        self.latency_seconds = 0.0
        self.access = AccessPolicy()
        self.applied: dict[tuple[Any, ...], dict[str, Any]] = {}
        self.request_log: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_CAP)
        self.request_count = 0
        self.unavailable_until = 0.0
        self.tokens_seen: set[str] = set()  # distinct EKS tokens accepted (capped), to observe credential refreshes
        self.app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[self._middleware])
        self._routes()
        self._init_cluster()

    # ---- setup -------------------------------------------------------------------------------------------
    def _init_cluster(self) -> None:
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.create_object(self.registry.by_kind("v1", "Namespace"), {"metadata": {"name": ns}}, None)  # type: ignore[arg-type]
        self.create_object(
            self.registry.by_kind("v1", "Service"),  # type: ignore[arg-type]
            {
                "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver"}},
                "spec": {"clusterIP": "10.100.0.1", "ports": [{"name": "https", "port": 443, "targetPort": 443}]},
            },
            "default",
        )

    def _routes(self) -> None:
        r = self.app.router

        def static(body: Any) -> Any:
            async def handler(_: web.Request) -> web.Response:
                return self._json(body() if callable(body) else body)

            return handler

        async def ok(_: web.Request) -> web.Response:
            return web.Response(text="ok")

        r.add_get("/version", static(SERVER_VERSION))
        r.add_get("/version/", static(SERVER_VERSION))
        for p in ("/healthz", "/livez", "/readyz"):
            r.add_get(p, ok)
        r.add_get("/api", static(self.registry.api_versions))
        r.add_get("/apis", static(self.registry.api_group_list))
        r.add_get("/openapi/v3", static(self.registry.openapi_index))
        r.add_get("/openapi/v3/{path:.*}", self._openapi_doc)
        r.add_route("*", "/api/{tail:.*}", self._resource)
        r.add_route("*", "/apis/{tail:.*}", self._resource)

    # ---- plumbing ------------------------------------------------------------------------------------------
    @staticmethod
    def _json(body: Any, status: int = 200) -> web.Response:
        return web.Response(
            body=json.dumps(body, separators=(",", ":")).encode(), status=status, content_type="application/json"
        )

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.request_count += 1
        entry = {
            "t": time.time(),
            "method": request.method,
            "path": request.path,
            "query": request.query_string,
            "status": 0,
        }
        self.request_log.append(entry)
        try:
            if time.time() < self.unavailable_until:
                raise ApiError(
                    503, "ServiceUnavailable", "the server is currently unable to handle the request (injected outage)"
                )
            if request.path not in UNAUTHENTICATED_PATHS:
                self._authenticate(request)
            if self.latency_seconds:
                await asyncio.sleep(self.latency_seconds)
            resp = await handler(request)
        except ApiError as e:
            resp = self._json(status_body(e.code, e.reason, e.message, e.details), e.code)
        except (SelectorError, PatchError, protobuf.ProtobufError, yaml.YAMLError, json.JSONDecodeError) as e:
            resp = self._json(status_body(400, "BadRequest", str(e)), 400)
        entry["status"] = resp.status
        return resp

    def _authenticate(self, request: web.Request) -> None:
        auth = request.headers.get("Authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if self.access.reject_tokens or not token:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        if token in self.access.static_tokens:
            return
        why = check_eks_token(token, self.access.token_ttl_seconds)
        if why is not None:
            self.request_log.append({"t": time.time(), "auth_error": why})
            raise ApiError(401, "Unauthorized", "Unauthorized")
        if len(self.tokens_seen) < 10_000:
            self.tokens_seen.add(token[-16:])

    def _check_faults(self, verb: str, rt: ResourceType, name: str) -> FaultRule | None:
        for rule in self.faults:
            if rule.matches(verb, rt.plural, name):
                if rule.count > 0:
                    rule.count -= 1
                return rule
        return None

    async def _openapi_doc(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        m = re.match(r"^(api/v1|apis/([^/]+)/([^/]+))$", path)
        if not m:
            raise ApiError(404, "NotFound", f"no OpenAPI document for {path}")
        group, version = (m.group(2) or "", m.group(3) or "v1")
        if path != "api/v1" and not self.registry.resource_list(group, version):
            raise ApiError(404, "NotFound", f"no OpenAPI document for {path}")
        if path == "api/v1":
            group, version = "", "v1"
        return self._json(self.registry.openapi_doc(group, version))

    # ---- object helpers ---------------------------------------------------------------------------------------
    def public(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(obj)
        out["apiVersion"], out["kind"] = rt.api_version, rt.kind
        return out

    def namespace_exists(self, ns: str) -> bool:
        return self.store.get(("", "namespaces"), "", ns) is not None

    def create_object(
        self, rt: ResourceType, obj: dict[str, Any], namespace: str | None, dry_run: bool = False
    ) -> dict[str, Any]:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        name = meta.get("name")
        if not name:
            raise ApiError(422, "Invalid", f"{rt.kind} is invalid: metadata.name: Required value")
        if rt.namespaced:
            ns = namespace or meta.get("namespace") or "default"
            if meta.get("namespace") and meta["namespace"] != ns:
                raise ApiError(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on the request",
                )
            meta["namespace"] = ns
            nso = self.store.get(("", "namespaces"), "", ns)
            if nso is None:
                raise ApiError(404, "NotFound", f'namespaces "{ns}" not found', {"name": ns, "kind": "namespaces"})
            if nso.get("status", {}).get("phase") == "Terminating":
                raise ApiError(
                    403,
                    "Forbidden",
                    f'{rt.plural} "{name}" is forbidden: unable to create new content in '
                    f"namespace {ns} because it is being terminated",
                )
        else:
            meta.pop("namespace", None)
        if self.store.get(rt.key, meta.get("namespace", ""), name) is not None:
            raise ApiError(
                409,
                "AlreadyExists",
                f'{_qualified(rt)} "{name}" already exists',
                {"name": name, "group": rt.group, "kind": rt.plural},
            )
        for k in ("resourceVersion", "deletionTimestamp", "generation", "creationTimestamp"):
            meta.pop(k, None)
        meta["uid"] = str(uuid.uuid4())
        obj.pop("apiVersion", None)
        obj.pop("kind", None)
        apply_defaults(rt.kind, obj)
        self._validate(rt, obj)
        if rt.kind == "CustomResourceDefinition":
            self._crd_status(obj)
        if dry_run:
            obj["metadata"]["creationTimestamp"] = now_iso()
            return obj
        try:
            stored = self.store.create(rt.key, obj)
        except Conflict:
            raise ApiError(
                409,
                "AlreadyExists",
                f'{_qualified(rt)} "{name}" already exists',
                {"name": name, "group": rt.group, "kind": rt.plural},
            ) from None
        if rt.kind == "CustomResourceDefinition":
            self.registry.register_crd(stored)
        return stored

    @staticmethod
    def _crd_status(obj: dict[str, Any]) -> None:
        names = obj.get("spec", {}).get("names", {})
        ts = now_iso()
        obj["status"] = {
            "acceptedNames": names,
            "storedVersions": [v["name"] for v in obj.get("spec", {}).get("versions", []) if v.get("storage")],
            "conditions": [
                {
                    "type": "NamesAccepted",
                    "status": "True",
                    "reason": "NoConflicts",
                    "message": "no conflicts found",
                    "lastTransitionTime": ts,
                },
                {
                    "type": "Established",
                    "status": "True",
                    "reason": "InitialNamesAccepted",
                    "message": "the initial names have been accepted",
                    "lastTransitionTime": ts,
                },
            ],
        }

    def replace_object(
        self,
        rt: ResourceType,
        live: dict[str, Any],
        new: dict[str, Any],
        subresource: str | None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        new = copy.deepcopy(new)
        new.pop("apiVersion", None)
        new.pop("kind", None)
        meta = new.setdefault("metadata", {})
        if meta.get("name", live["metadata"]["name"]) != live["metadata"]["name"]:
            raise ApiError(400, "BadRequest", "the name of the object does not match the name on the URL")
        rv = meta.get("resourceVersion")
        if rv and rv != live["metadata"]["resourceVersion"]:
            raise _conflict(rt, live["metadata"]["name"])
        if not rv and subresource is None and leases.is_lease(rt.group, rt.kind):
            # The Lease strategy does not allow unconditional updates: a PUT must say which version it replaces.
            raise ApiError(
                422,
                "Invalid",
                f'{_qualified(rt)} "{live["metadata"]["name"]}" is invalid: '
                "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update",
                {
                    "name": live["metadata"]["name"],
                    "group": rt.group,
                    "kind": rt.plural,
                    "causes": [
                        {
                            "reason": "FieldValueInvalid",
                            "field": "metadata.resourceVersion",
                            "message": "Invalid value: 0x0: must be specified for an update",
                        }
                    ],
                },
            )
        if subresource == "status":
            merged = copy.deepcopy(live)
            merged["status"] = new.get("status", {})
            return self._store_update(rt, live, merged, dry_run)
        for k in ("uid", "creationTimestamp", "namespace", "generation", "deletionTimestamp"):
            if k in live["metadata"]:
                meta[k] = live["metadata"][k]
            else:
                meta.pop(k, None)
        meta["name"] = live["metadata"]["name"]
        if (
            rt.kind not in ("CustomResourceDefinition",)
            and "status" in live
            and ("status" in rt.subresources or rt.kind == "Namespace")
        ):
            new["status"] = live["status"]
        apply_defaults(rt.kind, new)
        self._validate(rt, new)
        if rt.kind == "CustomResourceDefinition":
            self._crd_status(new)
        return self._store_update(rt, live, new, dry_run)

    @staticmethod
    def _validate(rt: ResourceType, obj: dict[str, Any]) -> None:
        """The kind-specific checks of the real API server that clients depend on (only Leases so far)."""
        if not leases.is_lease(rt.group, rt.kind):
            return
        name = obj["metadata"].get("name", "")
        bad = leases.decode_errors(obj)
        if bad:
            raise ApiError(
                400,
                "BadRequest",
                f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: ' + "; ".join(bad),
            )
        invalid = leases.validation_errors(obj)
        if invalid:
            text = invalid[0] if len(invalid) == 1 else "[" + ", ".join(invalid) + "]"
            raise ApiError(
                422,
                "Invalid",
                f'{rt.kind}.{rt.group} "{name}" is invalid: {text}',
                {"name": name, "group": rt.group, "kind": rt.kind},
            )

    def _store_update(
        self, rt: ResourceType, live: dict[str, Any], new: dict[str, Any], dry_run: bool
    ) -> dict[str, Any]:
        def body(o: dict[str, Any]) -> Any:
            return {k: v for k, v in o.items() if k not in ("metadata", "status")}

        bump = body(live) != body(new)
        if new == live:
            return live
        if dry_run:
            return new
        stored = self.store.update(rt.key, new, bump_generation=bump)
        if rt.kind == "CustomResourceDefinition":
            self.registry.register_crd(stored)
        return stored

    def delete_object(
        self, rt: ResourceType, ns: str, name: str, propagation: str | None = None
    ) -> dict[str, Any] | None:
        obj = self.store.get(rt.key, ns, name)
        if obj is None:
            return None
        if rt.kind == "Namespace":
            if obj.get("status", {}).get("phase") != "Terminating":
                obj = copy.deepcopy(obj)
                obj["status"] = {"phase": "Terminating"}
                obj["metadata"]["deletionTimestamp"] = now_iso()
                self.store.update(rt.key, obj, bump_generation=False)
            return obj
        if propagation == "Orphan":
            self._orphan_dependents(obj["metadata"]["uid"])
        deleted = self.store.delete(rt.key, ns, name)
        if rt.kind == "CustomResourceDefinition" and deleted:
            spec = deleted.get("spec", {})
            group, plural = spec.get("group", ""), spec.get("names", {}).get("plural", "")
            for key in [k for k in self.store.objects if k == (group, plural)]:
                for o in list(self.store.objects[key].values()):
                    self.store.delete(key, o["metadata"].get("namespace", ""), o["metadata"]["name"])
            self.registry.unregister_crd(group, plural)
        return deleted

    def _orphan_dependents(self, uid: str) -> None:
        for key, bucket in self.store.objects.items():
            for o in list(bucket.values()):
                refs = o["metadata"].get("ownerReferences") or []
                if any(r.get("uid") == uid for r in refs):
                    o2 = copy.deepcopy(o)
                    o2["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
                    self.store.update(key, o2, bump_generation=False)

    # ---- request parsing ------------------------------------------------------------------------------------
    def _resolve(
        self, request: web.Request
    ) -> tuple[ResourceType | None, str | None, str | None, str | None, tuple[str, str]]:
        """-> (resource type, namespace, name, subresource, (group, version)). rt None = discovery request."""
        parts = [p for p in request.path.split("/") if p]
        if parts[0] == "api":
            if len(parts) < 2:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            group, version, rest = "", parts[1], parts[2:]
        else:
            if len(parts) == 2:
                return None, None, None, None, (parts[1], "")
            group, version, rest = parts[1], parts[2], parts[3:]
        if not rest:
            return None, None, None, None, (group, version)
        ns = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            cand = self.registry.by_plural(group, version, rest[2])
            if cand is not None and cand.namespaced:
                ns, rest = rest[1], rest[2:]
        rt = self.registry.by_plural(group, version, rest[0])
        if rt is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub is not None and sub not in rt.subresources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return rt, ns, name, sub, (group, version)

    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()
        ctype = request.content_type
        if ctype == "application/vnd.kubernetes.protobuf":
            return protobuf.decode(raw)
        if not raw:
            return None
        if ctype == "application/apply-patch+yaml" or ctype.endswith("yaml"):
            return yaml.safe_load(raw)
        return json.loads(raw)

    # ---- the resource handler ---------------------------------------------------------------------------------
    async def _resource(self, request: web.Request) -> web.StreamResponse:
        rt, ns, name, sub, (group, version) = self._resolve(request)
        if rt is None:
            if not version:
                versions = self.registry.group_versions().get(group)
                if not versions:
                    raise ApiError(404, "NotFound", "the server could not find the requested resource")
                vs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
                return self._json(
                    {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": vs, "preferredVersion": vs[0]}
                )
            rl = self.registry.resource_list(group, version)
            if rl is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return self._json(rl)
        q = request.query
        verb = {
            "GET": "get" if name else ("watch" if q.get("watch") in ("true", "1") else "list"),
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if name else "deletecollection",
        }.get(request.method, "")
        rule = self._check_faults(verb, rt, name or "")
        if rule is not None:
            if rule.delay_seconds:
                await asyncio.sleep(rule.delay_seconds)
            if rule.status:
                raise ApiError(
                    rule.status,
                    "InternalError"
                    if rule.status >= 500
                    else "Forbidden"
                    if rule.status == 403
                    else "TooManyRequests"
                    if rule.status == 429
                    else "BadRequest",
                    rule.message,
                )
        if verb not in rt.verbs and not (sub and verb in ("get", "update", "patch")):
            raise ApiError(405, "MethodNotAllowed", f"{verb} is not supported on {rt.plural}")
        dry_run = q.get("dryRun") == "All"
        if verb == "watch":
            return await self._watch(request, rt, ns)
        if verb == "list":
            return self._list(request, rt, ns)
        if verb == "create":
            body = await self._body(request)
            return self._create(request, rt, ns, name, sub, body, dry_run)
        if verb == "deletecollection":
            match_l, match_f = label_matcher(q.get("labelSelector")), field_matcher(q.get("fieldSelector"))
            deleted = []
            for o in sorted(self.store.list(rt.key, ns), key=lambda o: o["metadata"]["name"]):
                if match_l(o) and match_f(o):
                    self.delete_object(rt, o["metadata"].get("namespace", ""), o["metadata"]["name"])
                    deleted.append(self.public(rt, o))
            return self._json(
                {
                    "kind": f"{rt.kind}List",
                    "apiVersion": rt.api_version,
                    "metadata": {"resourceVersion": str(self.store.rv)},
                    "items": deleted,
                }
            )
        assert name is not None
        key_ns = (ns or "") if rt.namespaced else ""
        live = self.store.get(rt.key, key_ns, name)
        if verb == "get":
            if live is None:
                raise self._not_found(rt, name)
            if sub == "scale":
                return self._json(self._scale(rt, live))
            if sub == "log":
                return web.Response(text=f"(sandbox) no logs are kept for pod {name}\n")
            if "as=Table" in request.headers.get("Accept", ""):
                return self._json(
                    table(
                        rt.kind,
                        [self.public(rt, live)],
                        live["metadata"]["resourceVersion"],
                        q.get("includeObject", "Metadata"),
                    )
                )
            return self._json(self.public(rt, live))
        if verb == "delete":
            if live is None:
                raise self._not_found(rt, name)
            body = await self._body(request)
            propagation = q.get("propagationPolicy") or (body or {}).get("propagationPolicy")
            pre = (body or {}).get("preconditions") or {}
            for field_, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
                if pre.get(field_) and pre[field_] != live["metadata"][field_]:
                    raise _precondition_failed(rt, key_ns, name, label, pre[field_], live["metadata"][field_])
            if dry_run:
                return self._json(self.public(rt, live))
            gone = self.delete_object(rt, key_ns, name, propagation)
            return self._json(self.public(rt, gone or live))
        body = await self._body(request)
        if verb == "update":
            if live is None:
                if sub:
                    raise self._not_found(rt, name)
                return self._create(request, rt, ns, name, sub, body, dry_run)
            if sub == "scale":
                return self._json(self._set_scale(rt, live, (body or {}).get("spec", {}).get("replicas"), dry_run))
            self._check_kind(rt, body)
            return self._json(self.public(rt, self.replace_object(rt, live, body, sub, dry_run)))
        # PATCH
        ctype = request.content_type
        if ctype == "application/apply-patch+yaml":
            return self._apply(request, rt, ns, name, sub, live, body, dry_run)
        if live is None:
            raise self._not_found(rt, name)
        if sub == "scale":
            patched_scale = merge_patch(self._scale(rt, live), body)
            return self._json(self._set_scale(rt, live, patched_scale.get("spec", {}).get("replicas"), dry_run))
        current = self.public(rt, live)
        if ctype == "application/merge-patch+json":
            patched = merge_patch(current, body)
        elif ctype == "application/json-patch+json":
            patched = json_patch(current, body)
        elif ctype == "application/strategic-merge-patch+json":
            if rt.crd:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    "strategic merge patch is not supported for custom resources; use a merge patch",
                )
            patched = strategic_merge(current, body)
        else:
            raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {ctype}")
        if patched.get("metadata", {}).get("resourceVersion") not in (None, live["metadata"]["resourceVersion"]):
            raise _conflict(rt, name)
        patched.setdefault("metadata", {})["resourceVersion"] = live["metadata"]["resourceVersion"]
        return self._json(self.public(rt, self.replace_object(rt, live, patched, sub, dry_run)))

    @staticmethod
    def _not_found(rt: ResourceType, name: str) -> ApiError:
        return ApiError(
            404,
            "NotFound",
            f'{_qualified(rt)} "{name}" not found',
            {"name": name, "group": rt.group, "kind": rt.plural},
        )

    @staticmethod
    def _check_kind(rt: ResourceType, body: Any) -> None:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the request body must be an object")
        if body.get("kind") and body["kind"] != rt.kind:
            raise ApiError(400, "BadRequest", f"the kind {body['kind']!r} does not match the resource {rt.plural!r}")

    def _create(
        self,
        request: web.Request,
        rt: ResourceType,
        ns: str | None,
        name: str | None,
        sub: str | None,
        body: Any,
        dry_run: bool,
    ) -> web.Response:
        self._check_kind(rt, body)
        if rt.group == "authorization.k8s.io":
            body = copy.deepcopy(body)
            body["status"] = {
                "allowed": self.access.allowed,
                **({} if self.access.allowed else {"reason": "sandbox policy denies this request"}),
            }
            return self._json({**body, "apiVersion": rt.api_version, "kind": rt.kind}, 201)
        if rt.group == "authentication.k8s.io":
            return self._json(
                {
                    "apiVersion": rt.api_version,
                    "kind": rt.kind,
                    "metadata": {},
                    "status": {
                        "userInfo": {"username": "sandbox-admin", "groups": ["system:masters"]},
                        "authenticated": True,
                    },
                },
                201,
            )
        if sub == "binding" and name:
            pod = self.store.get(rt.key, ns or "", name)
            if pod is None:
                raise self._not_found(rt, name)
            pod = copy.deepcopy(pod)
            pod["spec"]["nodeName"] = (body.get("target") or {}).get("name")
            self.store.update(rt.key, pod, bump_generation=False)
            return self._json({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201}, 201)
        if sub == "eviction" and name:
            self.delete_object(rt, ns or "", name)
            return self._json({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201}, 201)
        if sub == "token":
            return self._json(
                {
                    "apiVersion": "authentication.k8s.io/v1",
                    "kind": "TokenRequest",
                    "status": {"token": "sandbox-sa-token", "expirationTimestamp": now_iso()},
                },
                201,
            )
        created = self.create_object(rt, body, ns, dry_run)
        return self._json(self.public(rt, created), 201)

    def _apply(
        self,
        request: web.Request,
        rt: ResourceType,
        ns: str | None,
        name: str,
        sub: str | None,
        live: dict[str, Any] | None,
        body: Any,
        dry_run: bool,
    ) -> web.Response:
        self._check_kind(rt, body)
        manager = request.query.get("fieldManager")
        if not manager:
            raise ApiError(
                422,
                "Invalid",
                "PatchOptions.meta.k8s.io is invalid: fieldManager: Required value: is required for apply patch",
            )
        body = copy.deepcopy(body)
        body.setdefault("metadata", {})
        if body["metadata"].get("name", name) != name:
            raise ApiError(400, "BadRequest", "the name of the object does not match the name on the URL")
        body["metadata"]["name"] = name
        akey = (rt.key, ns or "", name, manager, sub or "")
        previous = self.applied.get(akey)
        applied_cfg = {k: v for k, v in body.items() if k not in ("apiVersion", "kind")}
        entry = {
            "manager": manager,
            "operation": "Apply",
            "apiVersion": rt.api_version,
            "time": now_iso(),
            "fieldsType": "FieldsV1",
            "fieldsV1": managed_fields_v1(applied_cfg),
        }
        if sub:
            entry["subresource"] = sub
        if live is None:
            if sub:
                raise self._not_found(rt, name)
            obj = server_side_apply(None, applied_cfg, None)
            obj["metadata"]["managedFields"] = [entry]
            created = self.create_object(rt, obj, ns, dry_run)
            if not dry_run:
                self.applied[akey] = applied_cfg
            return self._json(self.public(rt, created), 201)
        current = copy.deepcopy(live)
        if sub == "status":
            new = copy.deepcopy(live)
            new["status"] = server_side_apply(
                live.get("status"), applied_cfg.get("status", {}), (previous or {}).get("status")
            )
        else:
            new = server_side_apply(current, applied_cfg, previous)
            if "status" in live:
                new["status"] = live["status"]
        others = [
            m
            for m in live["metadata"].get("managedFields") or []
            if m.get("manager") != manager or m.get("subresource", "") != (sub or "")
        ]
        new["metadata"]["managedFields"] = [*others, entry]
        new["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
        result = self.replace_object(rt, live, new, sub, dry_run)
        if not dry_run:
            self.applied[akey] = applied_cfg
        return self._json(self.public(rt, result))

    # ---- scale subresource -------------------------------------------------------------------------------
    def _scale(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": obj["metadata"]["name"],
                "namespace": obj["metadata"].get("namespace"),
                "uid": obj["metadata"]["uid"],
                "resourceVersion": obj["metadata"]["resourceVersion"],
            },
            "spec": {"replicas": obj.get("spec", {}).get("replicas", 1)},
            "status": {"replicas": obj.get("status", {}).get("replicas", 0)},
        }

    def _set_scale(self, rt: ResourceType, live: dict[str, Any], replicas: Any, dry_run: bool) -> dict[str, Any]:
        if not isinstance(replicas, int) or replicas < 0:
            raise ApiError(
                422, "Invalid", f"Scale is invalid: spec.replicas: must be a non-negative integer, got {replicas!r}"
            )
        new = copy.deepcopy(live)
        new.setdefault("spec", {})["replicas"] = replicas
        return self._scale(rt, self._store_update(rt, live, new, dry_run))

    # ---- list and watch --------------------------------------------------------------------------------------
    def _select(self, request: web.Request, rt: ResourceType, ns: str | None) -> tuple[Any, Any]:
        return label_matcher(request.query.get("labelSelector")), field_matcher(request.query.get("fieldSelector"))

    def _list(self, request: web.Request, rt: ResourceType, ns: str | None) -> web.Response:
        match_l, match_f = self._select(request, rt, ns)
        items = [self.public(rt, o) for o in self.store.list(rt.key, ns if rt.namespaced else None)]
        items = [o for o in items if match_l(o) and match_f(o)]
        items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        rv = str(self.store.rv)
        if "as=Table" in request.headers.get("Accept", ""):
            return self._json(table(rt.kind, items, rv, request.query.get("includeObject", "Metadata")))
        return self._json(
            {
                "kind": f"{rt.kind}List",
                "apiVersion": rt.api_version,
                "metadata": {"resourceVersion": rv},
                "items": items,
            }
        )

    async def _watch(self, request: web.Request, rt: ResourceType, ns: str | None) -> web.StreamResponse:
        q = request.query
        match_l, match_f = self._select(request, rt, ns)
        watcher = Watcher(rt.key, ns if rt.namespaced else None, lambda o: match_l(o) and match_f(o))
        timeout = min(float(q.get("timeoutSeconds") or 1800), 3600)
        deadline = time.monotonic() + timeout
        rv_param = q.get("resourceVersion") or ""
        send_initial = q.get("sendInitialEvents") == "true"
        as_table = "as=Table" in request.headers.get("Accept", "")
        resp = web.StreamResponse(
            status=200, headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
        )
        await resp.prepare(request)
        self.store.watchers.append(watcher)
        last_sent = 0

        async def send(type_: str, obj: dict[str, Any]) -> None:
            if as_table and type_ != "BOOKMARK" and type_ != "ERROR":
                obj = table(rt.kind, [obj], obj["metadata"]["resourceVersion"], q.get("includeObject", "Metadata"))
            await resp.write(json.dumps({"type": type_, "object": obj}, separators=(",", ":")).encode() + b"\n")

        try:
            snapshot_rv = self.store.rv
            if send_initial or rv_param in ("", "0"):
                items = [o for o in self.store.list(rt.key, watcher.namespace) if watcher.match(o)]
                for o in sorted(items, key=lambda o: int(o["metadata"]["resourceVersion"])):
                    await send("ADDED", self.public(rt, o))
                last_sent = snapshot_rv
                if send_initial:
                    await send(
                        "BOOKMARK",
                        {
                            "kind": rt.kind,
                            "apiVersion": rt.api_version,
                            "metadata": {
                                "resourceVersion": str(snapshot_rv),
                                "annotations": {"k8s.io/initial-events-end": "true"},
                            },
                        },
                    )
            else:
                try:
                    since = int(rv_param)
                except ValueError:
                    raise ApiError(400, "BadRequest", f"invalid resourceVersion {rv_param!r}") from None
                log = self.store.logs.get(rt.key)
                if log and since < log[0].rv - 1 and len(log) == log.maxlen:
                    await send("ERROR", status_body(410, "Expired", f"too old resource version: {since} ({log[0].rv})"))
                    return resp
                for ev in list(log or []):
                    if (
                        ev.rv > since
                        and (not watcher.namespace or ev.obj["metadata"].get("namespace") == watcher.namespace)
                        and watcher.match(ev.obj)
                    ):
                        await send(ev.type, self.public(rt, ev.obj))
                        last_sent = ev.rv
                last_sent = max(last_sent, since)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    ev = await asyncio.wait_for(watcher.queue.get(), timeout=min(remaining, 5.0))
                except TimeoutError:
                    if q.get("allowWatchBookmarks") == "true":
                        await send(
                            "BOOKMARK",
                            {
                                "kind": rt.kind,
                                "apiVersion": rt.api_version,
                                "metadata": {"resourceVersion": str(self.store.rv)},
                            },
                        )
                    continue
                if ev.rv <= last_sent:
                    continue
                await send(ev.type, self.public(rt, ev.obj))
                last_sent = ev.rv
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            if watcher in self.store.watchers:
                self.store.watchers.remove(watcher)
        return resp
