"""Object-level drift (pure): every field a rendered manifest sets, against the live object, compared the way the
API server stores it (quantities, numbers written as strings, map order), as report rows.

Only the fields the manifest sets are compared: what the server or a controller adds (defaults, status, managed
fields, helm's own annotations) is not drift. Lists of named items (containers, env, ports, volumes) are matched by
name, as strategic merge does, so a reordering is not drift either.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from tasks.manifest import CLUSTER_SCOPED_KINDS

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
        return f"{self.ref} {self.path}: live {live} → desired {_show(self.desired)}"


def _show(v: Any) -> str:
    return json.dumps(v, sort_keys=True, default=str)


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
        return [_row(ref, path, desired, live)]
    rows = [
        r for i, (d, v) in enumerate(zip(desired, live, strict=True)) for r in field_drift(ref, d, v, f"{path}[{i}]")
    ]
    # A list of scalars reads best as one row: the whole list, live against desired.
    if rows and all(not isinstance(d, (dict, list)) for d in desired):
        return [_row(ref, path, desired, live)]
    return rows


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
