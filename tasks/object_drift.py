"""Object-level drift (pure): every field a rendered manifest sets, against the live object, compared the way the
API server stores it (quantities, numbers written as strings, map order), as report rows; and the noise rules that
keep what controllers and our own repairs write out of the report.

Only the fields the manifest sets are compared: what the server or a controller adds (defaults, status, managed
fields, helm's own annotations) is not drift. Lists of named items (containers, env, ports, volumes) are matched by
name, as strategic merge does, so a reordering is not drift either.
"""

from __future__ import annotations

import base64
import copy
import fnmatch
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from tasks.manifest import CLUSTER_SCOPED_KINDS, RenderedObject

ABSENT: Any = None  # how a missing object or field shows in a row's `live`
_MISSING = object()
_QUANTITY = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")
_SUFFIX = {
    None: Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}


@dataclass(frozen=True)
class ObjectRef:
    kind: str
    namespace: str  # "" for cluster-scoped objects
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"


@dataclass(frozen=True)
class FieldDrift:
    """One field (or a whole object, path "") whose live value is not the rendered one."""

    ref: ObjectRef
    path: str
    live: Any
    desired: Any
    missing: bool = False  # the live object (path "") or field does not exist

    def __str__(self) -> str:
        if self.missing and not self.path:
            return f"{self.ref}: missing"
        live = "(absent)" if self.missing else _show(self.live)
        desired = "(absent)" if self.desired is None else _show(self.desired)
        return f"{self.ref} {self.path}: live {live} → desired {desired}"

    def as_dict(self) -> dict[str, Any]:
        whole = self.missing and not self.path
        return {
            "object": str(self.ref),
            "kind": self.ref.kind,
            "namespace": self.ref.namespace,
            "name": self.ref.name,
            "path": self.path,
            "live": None if self.missing else self.live,
            "desired": None if whole else self.desired,
            "missing": self.missing,
        }


SHOWN = 200  # characters of a value a row's text shows (the JSON rows hold it whole)


def _show(v: Any) -> str:
    text = json.dumps(v, sort_keys=True, default=str)
    return text if len(text) <= SHOWN else text[: SHOWN - 1] + "…"


def quantity(value: Any) -> Decimal | None:
    """A Kubernetes quantity (`1Gi`, `500m`, `1e3`, 1073741824) as a number; None if it is not one."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    m = _QUANTITY.match(str(value).strip())
    if not m:
        return None
    try:
        return Decimal(m.group(1)) * _SUFFIX[m.group(2)]
    except InvalidOperation:
        return None


def same(desired: Any, live: Any) -> bool:
    """Whether a scalar the manifest sets is what the server holds: equal, the same number written as a string
    (`"8080"` / 8080), or the same quantity (`1Gi` / `1073741824`, `0.5` / `500m`)."""
    if desired == live and type(desired) is type(live):
        return True
    if isinstance(desired, bool) or isinstance(live, bool):
        return isinstance(desired, bool) and isinstance(live, bool) and desired == live
    if isinstance(desired, (int, float)) and isinstance(live, (int, float)):
        return desired == live
    if isinstance(desired, (str, int, float)) and isinstance(live, (str, int, float)):
        if str(desired) == str(live):
            return True
        q_desired, q_live = quantity(desired), quantity(live)
        return q_desired is not None and q_desired == q_live
    return False


def _empty(value: Any) -> bool:
    # A manifest's empty map or list (`resources: {}`, `args: []`) is dropped by the server: not drift when absent.
    return value is None or value == {} or value == []


def _named(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(i, dict) and isinstance(i.get("name"), str) for i in items)


def field_drift(ref: ObjectRef, desired: Any, live: Any, path: str = "") -> list[FieldDrift]:
    """Rows for every field under `desired` whose live value differs (`live` may be `_MISSING` inside)."""
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return [] if _empty(desired) and live in (None, _MISSING) else [_row(ref, path, desired, live)]
        out: list[FieldDrift] = []
        for key in sorted(desired):
            sub = f"{path}.{key}" if path else str(key)
            if desired[key] is None:
                continue  # `annotations:` with nothing after it sets nothing
            if key not in live:
                if not _empty(desired[key]):
                    out.append(FieldDrift(ref, sub, ABSENT, desired[key], missing=True))
                continue
            out.extend(field_drift(ref, desired[key], live[key], sub))
        return out
    if isinstance(desired, list):
        return _list_drift(ref, desired, live, path)
    if live is _MISSING or not same(desired, live):
        return [_row(ref, path, desired, live)]
    return []


def _list_drift(ref: ObjectRef, desired: list[Any], live: Any, path: str) -> list[FieldDrift]:
    if not isinstance(live, list):
        return [] if _empty(desired) and live in (None, _MISSING) else [_row(ref, path, desired, live)]
    if _named(desired) and _named(live):
        by_name = {i["name"]: i for i in live}
        out: list[FieldDrift] = []
        for item in desired:
            sub = f"{path}[name={item['name']}]"
            if item["name"] not in by_name:
                out.append(FieldDrift(ref, sub, ABSENT, item, missing=True))
            else:
                out.extend(field_drift(ref, item, by_name[item["name"]], sub))
        return out
    if len(desired) != len(live):
        if all(isinstance(d, dict) for d in desired) and all(isinstance(v, dict) for v in live):
            return _unordered_items(ref, desired, live, path)
        return [_row(ref, path, desired, live)]
    rows = [
        r for i, (d, v) in enumerate(zip(desired, live, strict=True)) for r in field_drift(ref, d, v, f"{path}[{i}]")
    ]
    # A list of scalars reads best as one row: the whole list, live against desired.
    if rows and all(not isinstance(d, (dict, list)) for d in desired):
        return [_row(ref, path, desired, live)]
    return rows


def _unordered_items(ref: ObjectRef, desired: list[Any], live: list[Any], path: str) -> list[FieldDrift]:
    """Lists of unnamed maps of different lengths (a ClusterRole's rules): the desired items no live item matches,
    and the live items no desired item matches, each its own row."""
    left = list(range(len(live)))
    out: list[FieldDrift] = []
    for i, d in enumerate(desired):
        match = next((j for j in left if not field_drift(ref, d, live[j])), None)
        if match is None:
            out.append(FieldDrift(ref, f"{path}[{i}]", ABSENT, d, missing=True))
        else:
            left.remove(match)
    out += [FieldDrift(ref, f"{path}[{j}]", live[j], None) for j in left]
    return out


def _row(ref: ObjectRef, path: str, desired: Any, live: Any) -> FieldDrift:
    if live is _MISSING:
        return FieldDrift(ref, path, ABSENT, desired, missing=True)
    return FieldDrift(ref, path, live, desired)


def ref_of(obj: dict[str, Any], default_namespace: str = "") -> ObjectRef:
    """An object's name; without a namespace it is in `default_namespace`, unless its kind is cluster-scoped."""
    meta = obj.get("metadata") or {}
    kind = str(obj.get("kind", ""))
    namespace = "" if kind in CLUSTER_SCOPED_KINDS else str(meta.get("namespace") or default_namespace)
    return ObjectRef(kind, namespace, str(meta.get("name")))


def object_drift(desired: dict[str, Any], live: dict[str, Any] | None, default_namespace: str = "") -> list[FieldDrift]:
    """The rows for one rendered object: missing, or each field it sets that differs live (apiVersion and kind are
    how it was found, not compared; status is the controllers')."""
    ref = ref_of(desired, default_namespace)
    if live is None:
        return [FieldDrift(ref, "", ABSENT, None, missing=True)]
    body = {k: v for k, v in desired.items() if k not in ("apiVersion", "kind", "status")}
    return field_drift(ref, body, live)


def _secret_data(desired: dict[str, Any]) -> dict[str, Any]:
    """A Secret's `stringData` as the server stores it: base64 under `data` (the server drops stringData)."""
    if desired.get("kind") != "Secret" or not isinstance(desired.get("stringData"), dict):
        return desired
    out = dict(desired)
    text = out.pop("stringData")
    data = dict(out.get("data") or {})
    data.update({k: base64.b64encode(str(v).encode()).decode() for k, v in text.items()})
    out["data"] = data
    return out


# ---- noise rules ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IgnoreRule:
    """Flux's `driftDetection.ignore` shape: JSON pointer paths (RFC 6901) left out of the comparison, on the objects
    the target selects (kind, namespace and name as globs; an empty field selects every object)."""

    paths: tuple[str, ...]
    kind: str = ""
    namespace: str = ""
    name: str = ""
    reason: str = ""

    def selects(self, ref: ObjectRef) -> bool:
        return all(
            not pattern or fnmatch.fnmatchcase(value, pattern)
            for pattern, value in ((self.kind, ref.kind), (self.namespace, ref.namespace), (self.name, ref.name))
        )


# On by default, for every release (a stack adds its own per release, Flux-style).
DEFAULT_RULES: tuple[IgnoreRule, ...] = (
    IgnoreRule(
        ("/status", "/metadata/managedFields", "/metadata/resourceVersion", "/metadata/generation", "/metadata/uid"),
        reason="written by the API server and controllers",
    ),
    IgnoreRule(("/metadata/finalizers",), reason="controllers add and remove finalizers"),
    IgnoreRule(
        ("/spec/template/metadata/annotations/kubectl.kubernetes.io~1restartedAt",),
        reason="written by `kubectl rollout restart` and by the repair's agent restart",
    ),
)


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise ValueError(f"not a JSON pointer: {path!r} (write it as /spec/replicas)")
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]


def without(body: Mapping[str, Any], pointers: Iterable[str]) -> dict[str, Any]:
    """A copy of `body` with the fields the pointers name removed (a pointer to nothing removes nothing)."""
    out: dict[str, Any] = copy.deepcopy(dict(body))
    for pointer in pointers:
        parts = _pointer(pointer)
        if not parts:
            continue
        cur: Any = out
        for p in parts[:-1]:
            cur = _child(cur, p)
            if cur is None:
                break
        else:
            last = parts[-1]
            if isinstance(cur, dict):
                cur.pop(last, None)
            elif isinstance(cur, list) and last.isdigit() and int(last) < len(cur):
                # An ignored list item compares as setting nothing; a named one keeps its name (lists match by it).
                item = cur[int(last)]
                cur[int(last)] = {"name": item["name"]} if isinstance(item, dict) and "name" in item else {}
    return out


def _child(node: Any, key: str) -> Any:
    if isinstance(node, dict):
        return node.get(key)
    if isinstance(node, list) and key.isdigit() and int(key) < len(node):
        return node[int(key)]
    return None


def release_rules(objects: Sequence[RenderedObject]) -> list[IgnoreRule]:
    """Noise rules a release's own objects imply: the replicas of what an HPA scales, the data of TLS Secrets
    (certificates generated at install and renewed by a CronJob or cert-manager)."""
    rules: list[IgnoreRule] = []
    for o in objects:
        if o.kind == "HorizontalPodAutoscaler":
            target = (o.body.get("spec") or {}).get("scaleTargetRef") or {}
            if target.get("kind") and target.get("name"):
                rules.append(
                    IgnoreRule(
                        ("/spec/replicas",),
                        str(target["kind"]),
                        o.namespace,
                        str(target["name"]),
                        reason=f"scaled by HorizontalPodAutoscaler {o.namespace}/{o.name}",
                    )
                )
        elif o.kind == "Secret" and o.body.get("type") == "kubernetes.io/tls":
            rules.append(
                IgnoreRule(("/data", "/stringData"), "Secret", o.namespace, o.name, reason="generated certificates")
            )
    return rules


def _hook_expected(o: RenderedObject) -> bool:
    """Whether a hook object should still exist after the install: not a test hook, not deleted by its delete policy
    once it ran, not a Job its ttlSecondsAfterFinished removes."""
    notes = (o.body.get("metadata") or {}).get("annotations") or {}
    phases = {p.strip() for p in str(notes.get("helm.sh/hook", "")).split(",")}
    policies = {p.strip() for p in str(notes.get("helm.sh/hook-delete-policy", "")).split(",")}
    if phases & {"test", "test-success", "test-failure"}:
        return False
    if "hook-succeeded" in policies:  # (hook-failed: deleted only when it failed; a deployed release's stays)
        return False
    return not (o.kind == "Job" and (o.body.get("spec") or {}).get("ttlSecondsAfterFinished") is not None)


def ignored_paths(o: RenderedObject, objects: Sequence[RenderedObject], rules: Sequence[IgnoreRule] = ()) -> list[str]:
    """The JSON pointers of `o` that drift leaves out (and a repair does not apply): the defaults, the rules the
    release's own objects imply, and `rules`."""
    ref = ObjectRef(o.kind, o.namespace, o.name)
    return [p for r in (*DEFAULT_RULES, *release_rules(objects), *rules) if r.selects(ref) for p in r.paths]


def _digest(value: Any) -> str:
    import hashlib

    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return f"<{len(text)} bytes, sha256 {hashlib.sha256(text.encode()).hexdigest()[:12]}>"


def _redacted(row: FieldDrift) -> FieldDrift:
    """A Secret's values never reach a report, an event or a log: a row shows their size and digest instead."""
    if row.ref.kind != "Secret" or not row.path.startswith(("data", "stringData")):
        return row
    live = row.live if row.missing or row.live is None else _digest(row.live)
    desired = None if row.desired is None else _digest(row.desired)
    return FieldDrift(row.ref, row.path, live, desired, row.missing)


def release_drift_rows(
    objects: Sequence[RenderedObject], live: Mapping[ObjectRef, dict[str, Any]], rules: Sequence[IgnoreRule] = ()
) -> list[FieldDrift]:
    """Rows for every object a release renders (`live` holds what was found, by ref), less the noise: the default
    rules, the release's implied ones and `rules`. A hook is compared when it exists; when it is gone, it is drift
    only if it should have stayed. Secret values are redacted."""
    out: list[FieldDrift] = []
    for o in objects:
        found = live.get(ObjectRef(o.kind, o.namespace, o.name))
        if found is None and o.hook and not _hook_expected(o):
            continue
        desired = without(_secret_data(dict(o.body)), ignored_paths(o, objects, rules))
        out.extend(_redacted(r) for r in object_drift(desired, found, o.namespace))
    return out
