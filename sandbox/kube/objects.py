"""Object semantics, shared by the HTTP handlers and the simulated controllers: the rules of create, update
(replace), delete, defaulting, validation, generation and resourceVersion, CRD registration, and the
owner-reference bookkeeping the garbage collector and `propagationPolicy=Orphan` rely on.

Everything here works on the `Store` directly; nothing here knows about HTTP.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from sandbox.kube import leases
from sandbox.kube.defaults import apply_defaults
from sandbox.kube.errors import (
    ApiError,
    already_exists,
    bad_request,
    conflict,
    resource_version_required,
)
from sandbox.kube.registry import Registry, ResourceType
from sandbox.kube.store import Conflict, Store, now_iso

Key = tuple[str, str]
Obj = dict[str, Any]
K_NAMESPACES: Key = ("", "namespaces")
_SERVER_SET = ("resourceVersion", "deletionTimestamp", "generation", "creationTimestamp")
_KEPT_ON_UPDATE = ("uid", "creationTimestamp", "namespace", "generation", "deletionTimestamp")
CRD = "CustomResourceDefinition"
INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
KUBERNETES_SERVICE = {
    "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver"}},
    "spec": {"clusterIP": "10.100.0.1", "ports": [{"name": "https", "port": 443, "targetPort": 443}]},
}


# ---- owner references -------------------------------------------------------------------------------------
def owner_ref(owner: Obj, api_version: str, kind: str) -> dict[str, Any]:
    """The controller reference a controller puts on what it creates."""
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def controlled_by(store: Store, key: Key, owner: Obj) -> list[Obj]:
    """The objects of `key` in the owner's namespace whose controller reference names the owner."""
    uid = owner["metadata"]["uid"]
    return [
        o
        for o in store.list(key, owner["metadata"].get("namespace"))
        if any(r.get("uid") == uid and r.get("controller") for r in o["metadata"].get("ownerReferences") or [])
    ]


def orphaned(store: Store) -> list[tuple[Key, Obj]]:
    """Objects with owner references none of which names a live object: what the garbage collector deletes."""
    uids = store.uids()
    return [
        (key, o)
        for key, bucket in list(store.objects.items())
        for o in list(bucket.values())
        if (refs := o["metadata"].get("ownerReferences") or []) and not any(r.get("uid") in uids for r in refs)
    ]


def orphan_dependents(store: Store, uid: str) -> None:
    """Remove the owner reference to `uid` from every dependent (propagationPolicy=Orphan)."""
    for key, bucket in store.objects.items():
        for o in list(bucket.values()):
            refs = o["metadata"].get("ownerReferences") or []
            if any(r.get("uid") == uid for r in refs):
                o2 = copy.deepcopy(o)
                o2["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
                store.update(key, o2, bump_generation=False)


def set_status(store: Store, key: Key, obj: Obj, status: dict[str, Any]) -> None:
    """Write `status` (a status-subresource update: generation unchanged), unless it is already there."""
    if obj.get("status") != status:
        new = copy.deepcopy(obj)
        new["status"] = status
        store.update(key, new, bump_generation=False)


# ---- kind-specific rules -----------------------------------------------------------------------------------
def crd_status(obj: Obj) -> None:
    names = obj.get("spec", {}).get("names", {})
    ts = now_iso()

    def cond(type_: str, reason: str, message: str) -> dict[str, str]:
        return {"type": type_, "status": "True", "reason": reason, "message": message, "lastTransitionTime": ts}

    obj["status"] = {
        "acceptedNames": names,
        "storedVersions": [v["name"] for v in obj.get("spec", {}).get("versions", []) if v.get("storage")],
        "conditions": [
            cond("NamesAccepted", "NoConflicts", "no conflicts found"),
            cond("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
    }


def validate(rt: ResourceType, obj: Obj) -> None:
    """The kind-specific checks of the real API server that clients depend on (only Leases so far)."""
    if not leases.is_lease(rt.group, rt.kind):
        return
    name = obj["metadata"].get("name", "")
    bad = leases.decode_errors(obj)
    if bad:
        raise bad_request(f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: ' + "; ".join(bad))
    invalid = leases.validation_errors(obj)
    if invalid:
        text = invalid[0] if len(invalid) == 1 else "[" + ", ".join(invalid) + "]"
        raise ApiError(
            422,
            "Invalid",
            f'{rt.kind}.{rt.group} "{name}" is invalid: {text}',
            {"name": name, "group": rt.group, "kind": rt.kind},
        )


def _spec_of(o: Obj) -> Any:
    return {k: v for k, v in o.items() if k not in ("metadata", "status")}


def _keeps_status(rt: ResourceType, live: Obj) -> bool:
    """A PUT of the main resource does not change the status of kinds with a status subresource (or Namespaces)."""
    return rt.kind != CRD and "status" in live and ("status" in rt.subresources or rt.kind == "Namespace")


class Objects:
    """The rules of create / replace / delete on one cluster's store."""

    def __init__(self, store: Store, registry: Registry) -> None:
        self.store = store
        self.registry = registry
        # The cluster CA's PEM, published in every namespace as ConfigMap `kube-root-ca.crt` (whoever serves the
        # emulator over TLS sets it; empty until then).
        self.root_ca_pem = ""

    @staticmethod
    def public(rt: ResourceType, obj: Obj) -> Obj:
        out = copy.deepcopy(obj)
        out["apiVersion"], out["kind"] = rt.api_version, rt.kind
        return out

    def namespace_exists(self, ns: str) -> bool:
        return self.store.get(K_NAMESPACES, "", ns) is not None

    def bootstrap(self) -> Objects:
        """What a new cluster has: its four namespaces and the `kubernetes` Service."""
        for ns in INITIAL_NAMESPACES:
            self.create_kind("v1", "Namespace", {"metadata": {"name": ns}})
        self.create_kind("v1", "Service", KUBERNETES_SERVICE, "default")
        return self

    def kind(self, api_version: str, kind: str) -> ResourceType:
        rt = self.registry.by_kind(api_version, kind)
        assert rt is not None, f"{api_version} {kind} is not a registered kind"
        return rt

    # ---- create ------------------------------------------------------------------------------------------
    def create(self, rt: ResourceType, obj: Obj, namespace: str | None, dry_run: bool = False) -> Obj:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        name = meta.get("name")
        if not name:
            raise ApiError(422, "Invalid", f"{rt.kind} is invalid: metadata.name: Required value")
        if rt.namespaced:
            meta["namespace"] = self._target_namespace(rt, name, meta.get("namespace"), namespace)
        else:
            meta.pop("namespace", None)
        if self.store.get(rt.key, meta.get("namespace", ""), name) is not None:
            raise already_exists(rt, name)
        for k in _SERVER_SET:
            meta.pop(k, None)
        meta["uid"] = str(uuid.uuid4())
        obj.pop("apiVersion", None)
        obj.pop("kind", None)
        self._default_and_validate(rt, obj)
        if dry_run:
            obj["metadata"]["creationTimestamp"] = now_iso()
            return obj
        try:
            stored = self.store.create(rt.key, obj)
        except Conflict:
            raise already_exists(rt, name) from None
        if rt.kind == CRD:
            self.registry.register_crd(stored)
        return stored

    def create_kind(self, api_version: str, kind: str, obj: Obj, namespace: str | None = None) -> Obj:
        """Create as a client of the API would (the controllers' way in)."""
        return self.create(self.kind(api_version, kind), obj, namespace)

    def _target_namespace(self, rt: ResourceType, name: str, in_body: str | None, on_url: str | None) -> str:
        ns = on_url or in_body or "default"
        if in_body and in_body != ns:
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        nso = self.store.get(K_NAMESPACES, "", ns)
        if nso is None:
            raise ApiError(404, "NotFound", f'namespaces "{ns}" not found', {"name": ns, "kind": "namespaces"})
        if nso.get("status", {}).get("phase") == "Terminating":
            raise ApiError(
                403,
                "Forbidden",
                f'{rt.plural} "{name}" is forbidden: unable to create new content in '
                f"namespace {ns} because it is being terminated",
            )
        return ns

    @staticmethod
    def _default_and_validate(rt: ResourceType, obj: Obj) -> None:
        apply_defaults(rt.kind, obj)
        validate(rt, obj)
        if rt.kind == CRD:
            crd_status(obj)

    # ---- replace -----------------------------------------------------------------------------------------
    def replace(self, rt: ResourceType, live: Obj, new: Obj, subresource: str | None, dry_run: bool = False) -> Obj:
        new = copy.deepcopy(new)
        new.pop("apiVersion", None)
        new.pop("kind", None)
        meta = new.setdefault("metadata", {})
        name = live["metadata"]["name"]
        if meta.get("name", name) != name:
            raise bad_request("the name of the object does not match the name on the URL")
        rv = meta.get("resourceVersion")
        if rv and rv != live["metadata"]["resourceVersion"]:
            raise conflict(rt, name)
        if not rv and subresource is None and leases.is_lease(rt.group, rt.kind):
            raise resource_version_required(rt, name)
        if subresource == "status":
            merged = copy.deepcopy(live)
            merged["status"] = new.get("status", {})
            return self.commit(rt, live, merged, dry_run)
        for k in _KEPT_ON_UPDATE:
            if k in live["metadata"]:
                meta[k] = live["metadata"][k]
            else:
                meta.pop(k, None)
        meta["name"] = name
        if _keeps_status(rt, live):
            new["status"] = live["status"]
        self._default_and_validate(rt, new)
        return self.commit(rt, live, new, dry_run)

    def commit(self, rt: ResourceType, live: Obj, new: Obj, dry_run: bool) -> Obj:
        """Store `new` in place of `live`: generation moves when anything but metadata and status changed."""
        bump = _spec_of(live) != _spec_of(new)
        if new == live:
            return live
        if dry_run:
            return new
        stored = self.store.update(rt.key, new, bump_generation=bump)
        if rt.kind == CRD:
            self.registry.register_crd(stored)
        return stored

    # ---- delete ------------------------------------------------------------------------------------------
    def delete(self, rt: ResourceType, ns: str, name: str, propagation: str | None = None) -> Obj | None:
        obj = self.store.get(rt.key, ns, name)
        if obj is None:
            return None
        if rt.kind == "Namespace":
            return self._terminate_namespace(rt, obj)
        if propagation == "Orphan":
            orphan_dependents(self.store, obj["metadata"]["uid"])
        deleted = self.store.delete(rt.key, ns, name)
        if rt.kind == CRD and deleted:
            self._drop_crd(deleted)
        return deleted

    def _terminate_namespace(self, rt: ResourceType, obj: Obj) -> Obj:
        """A Namespace is only marked Terminating; the namespace controller empties and then removes it."""
        if obj.get("status", {}).get("phase") != "Terminating":
            obj = copy.deepcopy(obj)
            obj["status"] = {"phase": "Terminating"}
            obj["metadata"]["deletionTimestamp"] = now_iso()
            self.store.update(rt.key, obj, bump_generation=False)
        return obj

    def _drop_crd(self, crd: Obj) -> None:
        spec = crd.get("spec", {})
        group, plural = spec.get("group", ""), spec.get("names", {}).get("plural", "")
        for key in [k for k in self.store.objects if k == (group, plural)]:
            for o in list(self.store.objects[key].values()):
                self.store.delete(key, o["metadata"].get("namespace", ""), o["metadata"]["name"])
        self.registry.unregister_crd(group, plural)
