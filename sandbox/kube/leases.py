"""coordination.k8s.io/v1 Lease as the API server treats it: validation, MicroTime normalisation and the
"no unconditional update" rule (a PUT must carry the resourceVersion it read; the Lease strategy in
pkg/registry/coordination/lease allows create-on-update but not unconditional updates)."""

from __future__ import annotations

import datetime
import re
from typing import Any

GROUP = "coordination.k8s.io"
MICRO_TIME_FIELDS = ("acquireTime", "renewTime")
RFC3339_MICRO = "2006-01-02T15:04:05.000000Z07:00"
MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$")


def is_lease(group: str, kind: str) -> bool:
    return group == GROUP and kind == "Lease"


def _micro_time(value: Any) -> str:
    """metav1.MicroTime as the API server parses it (Go layout RFC3339Micro: exactly six fractional digits) and
    serialises it (UTC, `Z`). The kubernetes Python client's own models drop the fraction when it is zero."""
    if not isinstance(value, str):
        raise ValueError(f"expected an RFC 3339 time string, got {value!r}")
    m = MICRO_TIME.match(value)
    if m is None:
        rest = value[19:] if len(value) > 19 else value
        raise ValueError(f'parsing time "{value}" as "{RFC3339_MICRO}": cannot parse "{rest}" as ".000000"')
    return datetime.datetime.fromisoformat(value).astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def decode_errors(obj: dict[str, Any]) -> list[str]:
    """Fields that would not even decode (the API server answers 400 BadRequest); normalises times in place."""
    spec = obj.get("spec")
    if spec is None:
        return []
    if not isinstance(spec, dict):
        return ["spec: expected an object"]
    errors = []
    for f in MICRO_TIME_FIELDS:
        if spec.get(f) is None:
            spec.pop(f, None)
            continue
        try:
            spec[f] = _micro_time(spec[f])
        except ValueError as e:
            errors.append(str(e))
    for f in ("leaseDurationSeconds", "leaseTransitions"):
        if spec.get(f) is not None and (not isinstance(spec[f], int) or isinstance(spec[f], bool)):
            errors.append(f"spec.{f}: expected an integer, got {spec[f]!r}")
    return errors


def validation_errors(obj: dict[str, Any]) -> list[str]:
    """ValidateLeaseSpec: what makes the API server answer 422 Invalid."""
    spec = obj.get("spec") or {}
    errors = []
    duration = spec.get("leaseDurationSeconds")
    if duration is not None and duration <= 0:
        errors.append(f"spec.leaseDurationSeconds: Invalid value: {duration}: must be greater than 0")
    transitions = spec.get("leaseTransitions")
    if transitions is not None and transitions < 0:
        errors.append(f"spec.leaseTransitions: Invalid value: {transitions}: must be greater than or equal to 0")
    return errors
