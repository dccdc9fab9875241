"""The request handlers for get, list, create, update (PUT), delete and deletecollection; the scale subresource."""

from __future__ import annotations

import copy
from typing import Any

from aiohttp import web

from sandbox.kube.apiserver.auth import AccessPolicy
from sandbox.kube.apiserver.routing import Call
from sandbox.kube.apiserver.wire import json_response, read_body, success, wants_table
from sandbox.kube.errors import ApiError, bad_request, not_found, precondition_failed
from sandbox.kube.objects import Obj, Objects
from sandbox.kube.registry import ResourceType
from sandbox.kube.selectors import field_matcher, label_matcher
from sandbox.kube.store import now_iso
from sandbox.kube.tables import table
from sandbox.kube.validation import decide, unknown_fields

PRECONDITIONS = (("uid", "UID"), ("resourceVersion", "ResourceVersion"))


def check_kind(rt: ResourceType, body: Any) -> None:
    if not isinstance(body, dict):
        raise bad_request("the request body must be an object")
    if body.get("kind") and body["kind"] != rt.kind:
        raise bad_request(f"the kind {body['kind']!r} does not match the resource {rt.plural!r}")


def field_warnings(call: Call, body: Any) -> list[str]:
    """fieldValidation: raise the BadRequest of Strict, or the Warning header values of Warn."""
    unknown = unknown_fields(call.rt.kind, body, bool(call.rt.crd)) if not call.sub else []
    message, warnings = decide(call.query.get("fieldValidation"), call.rt.kind, call.rt.version, unknown)
    if message:
        raise bad_request(message)
    return warnings


def warned(response: web.Response, warnings: list[str]) -> web.Response:
    for w in warnings:
        escaped = w.replace("\\", "\\\\").replace('"', '\\"')
        response.headers.add("Warning", f'299 - "{escaped}"')
    return response


def selected(call: Call, items: list[Obj]) -> list[Obj]:
    """The items the request's label and field selectors select."""
    match_l = label_matcher(call.query.get("labelSelector"))
    match_f = field_matcher(call.query.get("fieldSelector"))
    return [o for o in items if match_l(o) and match_f(o)]


def list_body(rt: ResourceType, items: list[Obj], rv: int) -> dict[str, Any]:
    return {
        "kind": f"{rt.kind}List",
        "apiVersion": rt.api_version,
        "metadata": {"resourceVersion": str(rv)},
        "items": items,
    }


def as_table(call: Call, items: list[Obj], rv: str) -> web.Response:
    return json_response(table(call.rt.kind, items, rv, call.query.get("includeObject", "Metadata")))


# ---- scale subresource ---------------------------------------------------------------------------------------
def scale_of(obj: Obj) -> Obj:
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


def set_scale(objects: Objects, call: Call, live: Obj, scale: Any) -> web.Response:
    replicas = (scale or {}).get("spec", {}).get("replicas")
    if not isinstance(replicas, int) or replicas < 0:
        raise ApiError(
            422, "Invalid", f"Scale is invalid: spec.replicas: must be a non-negative integer, got {replicas!r}"
        )
    new = copy.deepcopy(live)
    new.setdefault("spec", {})["replicas"] = replicas
    return json_response(scale_of(objects.commit(call.rt, live, new, call.dry_run)))


class Handlers:
    def __init__(self, objects: Objects, access: AccessPolicy) -> None:
        self.objects = objects
        self.store = objects.store
        self.access = access

    def live(self, call: Call) -> Obj | None:
        return self.store.get(call.rt.key, call.key_ns, call.item)

    def existing(self, call: Call) -> Obj:
        live = self.live(call)
        if live is None:
            raise not_found(call.rt, call.item)
        return live

    def respond(self, call: Call, obj: Obj, status: int = 200) -> web.Response:
        return json_response(self.objects.public(call.rt, obj), status)

    # ---- reads -------------------------------------------------------------------------------------------
    async def list(self, call: Call) -> web.Response:
        rt = call.rt
        items = [self.objects.public(rt, o) for o in self.store.list(rt.key, call.ns if rt.namespaced else None)]
        items = selected(call, items)
        items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        if wants_table(call.request):
            return as_table(call, items, str(self.store.rv))
        return json_response(list_body(rt, items, self.store.rv))

    async def get(self, call: Call) -> web.StreamResponse:
        live = self.existing(call)
        if call.sub == "scale":
            return json_response(scale_of(live))
        if call.sub == "log":
            return web.Response(text=f"(sandbox) no logs are kept for pod {call.name}\n")
        if wants_table(call.request):
            return as_table(call, [self.objects.public(call.rt, live)], live["metadata"]["resourceVersion"])
        return self.respond(call, live)

    # ---- deletes -----------------------------------------------------------------------------------------
    async def delete(self, call: Call) -> web.Response:
        live = self.existing(call)
        body = await read_body(call.request) or {}
        propagation = call.query.get("propagationPolicy") or body.get("propagationPolicy")
        pre = body.get("preconditions") or {}
        for field_, label in PRECONDITIONS:
            if pre.get(field_) and pre[field_] != live["metadata"][field_]:
                raise precondition_failed(call.rt, call.key_ns, call.item, label, pre[field_], live["metadata"][field_])
        if call.dry_run:
            return self.respond(call, live)
        gone = self.objects.delete(call.rt, call.key_ns, call.item, propagation)
        return self.respond(call, gone or live)

    async def deletecollection(self, call: Call) -> web.Response:
        rt = call.rt
        deleted = []
        for o in selected(call, sorted(self.store.list(rt.key, call.ns), key=lambda o: o["metadata"]["name"])):
            self.objects.delete(rt, o["metadata"].get("namespace", ""), o["metadata"]["name"])
            deleted.append(self.objects.public(rt, o))
        return json_response(list_body(rt, deleted, self.store.rv))

    # ---- writes ------------------------------------------------------------------------------------------
    async def create(self, call: Call) -> web.Response:
        return self.create_with(call, await read_body(call.request))

    def create_with(self, call: Call, body: Any) -> web.Response:
        check_kind(call.rt, body)
        special = self._review(call, body) or self._pod_subresource(call, body)
        if special is not None:
            return special
        warnings = field_warnings(call, body)
        return warned(self.respond(call, self.objects.create(call.rt, body, call.ns, call.dry_run), 201), warnings)

    async def update(self, call: Call) -> web.Response:
        body = await read_body(call.request)
        live = self.live(call)
        if live is None:
            if call.sub:
                raise not_found(call.rt, call.item)
            return self.create_with(call, body)
        if call.sub == "scale":
            return set_scale(self.objects, call, live, body)
        check_kind(call.rt, body)
        warnings = field_warnings(call, body)
        return warned(self.respond(call, self.objects.replace(call.rt, live, body, call.sub, call.dry_run)), warnings)

    # ---- create-only kinds and subresources --------------------------------------------------------------
    def _review(self, call: Call, body: Obj) -> web.Response | None:
        """SelfSubjectAccessReview and SelfSubjectReview: answered, never stored."""
        rt = call.rt
        if rt.group == "authorization.k8s.io":
            allowed = self.access.allowed
            status = {"allowed": allowed, **({} if allowed else {"reason": "sandbox policy denies this request"})}
            return json_response(
                {**copy.deepcopy(body), "status": status, "apiVersion": rt.api_version, "kind": rt.kind}, 201
            )
        if rt.group == "authentication.k8s.io":
            user = {"username": "sandbox-admin", "groups": ["system:masters"]}
            status = {"userInfo": user, "authenticated": True}
            return json_response({"apiVersion": rt.api_version, "kind": rt.kind, "metadata": {}, "status": status}, 201)
        return None

    def _pod_subresource(self, call: Call, body: Obj) -> web.Response | None:
        """POST to pods/binding, pods/eviction and serviceaccounts/token."""
        if call.sub == "binding" and call.name:
            pod = copy.deepcopy(self.existing(call))
            pod["spec"]["nodeName"] = (body.get("target") or {}).get("name")
            self.store.update(call.rt.key, pod, bump_generation=False)
            return success()
        if call.sub == "eviction" and call.name:
            self.objects.delete(call.rt, call.ns or "", call.name)
            return success()
        if call.sub == "token":
            status = {"token": "sandbox-sa-token", "expirationTimestamp": now_iso()}
            token = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "status": status}
            return json_response(token, 201)
        return None
