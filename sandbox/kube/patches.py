"""PATCH semantics: JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge patch (keyed lists and
`$patch`/`$retainKeys`/`$setElementOrder`/`$deleteFromPrimitiveList` directives) and server-side apply."""

from __future__ import annotations

import copy
from typing import Any


class PatchError(ValueError):
    pass


# ---- JSON merge patch -------------------------------------------------------------------------------------
def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


# ---- JSON patch -------------------------------------------------------------------------------------------
def _unescape(tok: str) -> str:
    return tok.replace("~1", "/").replace("~0", "~")


def _walk(doc: Any, pointer: str) -> tuple[Any, str]:
    if not pointer.startswith("/"):
        raise PatchError(f"invalid JSON pointer {pointer!r}")
    parts = [_unescape(p) for p in pointer.split("/")[1:]]
    cur = doc
    for p in parts[:-1]:
        if isinstance(cur, list):
            cur = cur[int(p)]
        elif isinstance(cur, dict) and p in cur:
            cur = cur[p]
        else:
            raise PatchError(f"path {pointer!r} does not exist")
    return cur, parts[-1]


def _get_ptr(doc: Any, pointer: str) -> Any:
    parent, last = _walk(doc, pointer)
    try:
        return parent[int(last)] if isinstance(parent, list) else parent[last]
    except (KeyError, IndexError, ValueError):
        raise PatchError(f"path {pointer!r} does not exist") from None


def json_patch(doc: Any, ops: Any) -> Any:
    if not isinstance(ops, list):
        raise PatchError("a JSON patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        kind, path = op.get("op"), op.get("path", "")
        if kind == "test":
            if _get_ptr(doc, path) != op.get("value"):
                raise PatchError(f"test failed at {path}")
            continue
        if kind in ("move", "copy"):
            value = copy.deepcopy(_get_ptr(doc, op["from"]))
            if kind == "move":
                doc = json_patch(doc, [{"op": "remove", "path": op["from"]}])
            doc = json_patch(doc, [{"op": "add", "path": path, "value": value}])
            continue
        parent, last = _walk(doc, path)
        if kind == "add":
            if isinstance(parent, list):
                parent.insert(len(parent) if last == "-" else int(last), op["value"])
            else:
                parent[last] = op["value"]
        elif kind == "replace":
            _get_ptr(doc, path)
            if isinstance(parent, list):
                parent[int(last)] = op["value"]
            else:
                parent[last] = op["value"]
        elif kind == "remove":
            _get_ptr(doc, path)
            if isinstance(parent, list):
                parent.pop(int(last))
            else:
                parent.pop(last)
        else:
            raise PatchError(f"unknown JSON patch op {kind!r}")
    return doc


# ---- strategic merge patch -------------------------------------------------------------------------------
# patchMergeKey of the built-in types' keyed lists (k8s.io/api struct tags).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "conditions": "type",
    "ownerReferences": "uid",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "secrets": "name",
    "readinessGates": "conditionType",
    "resourceClaims": "name",
}
SET_LISTS = {"finalizers"}


def _merge_key(field: str, items: list[Any]) -> str | None:
    if field == "ports":
        sample = next((i for i in items if isinstance(i, dict)), {})
        return "containerPort" if "containerPort" in sample else "port"
    return MERGE_KEYS.get(field)


def strategic_merge(target: Any, patch: Any, field: str = "") -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for k, v in patch.items():
        if k in ("$patch", "$retainKeys") or k.startswith("$setElementOrder/"):
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            name = k.split("/", 1)[1]
            if isinstance(out.get(name), list):
                out[name] = [x for x in out[name] if x not in v]
            continue
        if v is None:
            out.pop(k, None)
        elif isinstance(v, list):
            out[k] = _merge_list(out.get(k), v, k)
        elif isinstance(v, dict):
            merged = strategic_merge(out.get(k), v, k)
            if merged is None:
                out.pop(k, None)
            else:
                out[k] = merged
        else:
            out[k] = copy.deepcopy(v)
    if isinstance(retain, list):
        out = {k: v for k, v in out.items() if k in retain}
    return out


def _merge_list(current: Any, patch: list[Any], field: str) -> list[Any]:
    if field in SET_LISTS and isinstance(current, list):
        return list(current) + [x for x in patch if x not in current]
    key = _merge_key(field, patch + (current if isinstance(current, list) else []))
    if not key or not isinstance(current, list) or not all(isinstance(i, dict) for i in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and i.get("$patch") == "delete")]
    out = [copy.deepcopy(i) for i in current]
    for item in patch:
        if item.get("$patch") == "replace":
            return [copy.deepcopy({k: v for k, v in i.items() if k != "$patch"}) for i in patch]
        idx = next((n for n, cur in enumerate(out) if isinstance(cur, dict) and cur.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
            continue
        if idx is None:
            out.append(strategic_merge({}, item))
        else:
            out[idx] = strategic_merge(out[idx], item)
    return out


# ---- server-side apply -----------------------------------------------------------------------------------
def field_paths(obj: Any, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Leaf paths of an applied configuration; lists are atomic leaves."""
    if isinstance(obj, dict) and obj:
        out: set[tuple[str, ...]] = set()
        for k, v in obj.items():
            out |= field_paths(v, (*prefix, k))
        return out
    return {prefix}


def _remove_path(obj: dict[str, Any], path: tuple[str, ...]) -> None:
    cur: Any = obj
    for p in path[:-1]:
        if not isinstance(cur, dict) or p not in cur:
            return
        cur = cur[p]
    if isinstance(cur, dict):
        cur.pop(path[-1], None)


def server_side_apply(
    live: dict[str, Any] | None, applied: dict[str, Any], previous_applied: dict[str, Any] | None
) -> dict[str, Any]:
    """Upsert `applied`; fields this manager applied last time but no longer applies are removed."""
    base = copy.deepcopy(live) if live else {}
    if previous_applied:
        stale = field_paths(previous_applied) - field_paths(applied)
        for path in sorted(stale, key=len, reverse=True):
            if path and path[0] not in ("apiVersion", "kind") and path[:2] != ("metadata", "name"):
                _remove_path(base, path)
    return _ssa_merge(base, applied)


def _ssa_merge(base: Any, applied: Any) -> Any:
    if isinstance(base, dict) and isinstance(applied, dict):
        out = dict(base)
        for k, v in applied.items():
            out[k] = _ssa_merge(base.get(k), v) if v is not None else None
        return {k: v for k, v in out.items() if v is not None}
    return copy.deepcopy(applied)


def managed_fields_v1(applied: Any) -> dict[str, Any]:
    """The FieldsV1 encoding (f:name keys) of an applied configuration, enough for clients that read it."""
    if isinstance(applied, dict):
        return {f"f:{k}": managed_fields_v1(v) for k, v in applied.items()}
    return {}
