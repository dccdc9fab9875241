"""PATCH: merge, JSON and strategic-merge patches, and server-side apply (with managedFields per manager)."""

from __future__ import annotations

import copy
from typing import Any

from aiohttp import web

from sandbox.kube.apiserver.handlers import Handlers, check_kind, field_warnings, scale_of, set_scale, warned
from sandbox.kube.apiserver.routing import Call
from sandbox.kube.apiserver.wire import APPLY_PATCH, read_body
from sandbox.kube.errors import ApiError, bad_request, conflict, not_found
from sandbox.kube.objects import Obj
from sandbox.kube.patches import json_patch, managed_fields_v1, merge_patch, server_side_apply, strategic_merge
from sandbox.kube.store import now_iso

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
AppliedKey = tuple[Any, ...]


def _unsupported(ctype: str) -> ApiError:
    return ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {ctype}")


def _no_manager() -> ApiError:
    return ApiError(
        422, "Invalid", "PatchOptions.meta.k8s.io is invalid: fieldManager: Required value: is required for apply patch"
    )


def _managed_entry(call: Call, manager: str, applied: Obj) -> Obj:
    entry = {
        "manager": manager,
        "operation": "Apply",
        "apiVersion": call.rt.api_version,
        "time": now_iso(),
        "fieldsType": "FieldsV1",
        "fieldsV1": managed_fields_v1(applied),
    }
    if call.sub:
        entry["subresource"] = call.sub
    return entry


def _others(live: Obj, manager: str, sub: str | None) -> list[Obj]:
    """The managedFields entries of every other (manager, subresource)."""
    return [
        m
        for m in live["metadata"].get("managedFields") or []
        if m.get("manager") != manager or m.get("subresource", "") != (sub or "")
    ]


class Patcher:
    def __init__(self, handlers: Handlers) -> None:
        self.handlers = handlers
        self.objects = handlers.objects
        # What each (resource, namespace, name, manager, subresource) applied last: the fields it owns.
        self.applied: dict[AppliedKey, Obj] = {}

    async def patch(self, call: Call) -> web.Response:
        body = await read_body(call.request)
        ctype = call.request.content_type
        checked = ctype in (MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH)
        warnings = field_warnings(call, body) if checked else []
        if ctype == APPLY_PATCH:
            return warned(self.apply(call, body), warnings)
        live = self.handlers.existing(call)
        if call.sub == "scale":
            return set_scale(self.objects, call, live, merge_patch(scale_of(live), body))
        patched = self._patched(call, ctype, self.objects.public(call.rt, live), body)
        if patched.get("metadata", {}).get("resourceVersion") not in (None, live["metadata"]["resourceVersion"]):
            raise conflict(call.rt, call.item)
        patched.setdefault("metadata", {})["resourceVersion"] = live["metadata"]["resourceVersion"]
        replaced = self.objects.replace(call.rt, live, patched, call.sub, call.dry_run)
        return warned(self.handlers.respond(call, replaced), warnings)

    @staticmethod
    def _patched(call: Call, ctype: str, current: Obj, body: Any) -> Obj:
        if ctype == MERGE_PATCH:
            return merge_patch(current, body)
        if ctype == JSON_PATCH:
            return json_patch(current, body)
        if ctype != STRATEGIC_MERGE_PATCH:
            raise _unsupported(ctype)
        if call.rt.crd:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "strategic merge patch is not supported for custom resources; use a merge patch",
            )
        return strategic_merge(current, body)

    # ---- server-side apply -------------------------------------------------------------------------------
    def apply(self, call: Call, body: Any) -> web.Response:
        check_kind(call.rt, body)
        manager = call.query.get("fieldManager")
        if not manager:
            raise _no_manager()
        body = copy.deepcopy(body)
        body.setdefault("metadata", {})
        if body["metadata"].get("name", call.item) != call.item:
            raise bad_request("the name of the object does not match the name on the URL")
        body["metadata"]["name"] = call.item
        akey = (call.rt.key, call.ns or "", call.item, manager, call.sub or "")
        applied = {k: v for k, v in body.items() if k not in ("apiVersion", "kind")}
        entry = _managed_entry(call, manager, applied)
        live = self.handlers.live(call)
        if live is None:
            response = self._apply_create(call, applied, entry)
        else:
            response = self._apply_update(call, live, applied, self.applied.get(akey), entry)
        if not call.dry_run:
            self.applied[akey] = applied
        return response

    def _apply_create(self, call: Call, applied: Obj, entry: Obj) -> web.Response:
        if call.sub:
            raise not_found(call.rt, call.item)
        obj = server_side_apply(None, applied, None)
        obj["metadata"]["managedFields"] = [entry]
        return self.handlers.respond(call, self.objects.create(call.rt, obj, call.ns, call.dry_run), 201)

    def _apply_update(self, call: Call, live: Obj, applied: Obj, previous: Obj | None, entry: Obj) -> web.Response:
        if call.sub == "status":
            new = copy.deepcopy(live)
            new["status"] = server_side_apply(
                live.get("status"), applied.get("status", {}), (previous or {}).get("status")
            )
        else:
            new = server_side_apply(copy.deepcopy(live), applied, previous)
            if "status" in live:
                new["status"] = live["status"]
        new["metadata"]["managedFields"] = [*_others(live, str(entry["manager"]), call.sub), entry]
        new["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
        return self.handlers.respond(call, self.objects.replace(call.rt, live, new, call.sub, call.dry_run))
