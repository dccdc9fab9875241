"""Path-level differences between two values trees (pure), for dry-run plans and drift reports."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

_MISSING = object()


@dataclass(frozen=True)
class PathDiff:
    path: str
    live: Any
    desired: Any

    def __str__(self) -> str:
        def show(v: Any) -> str:
            return "(absent)" if v is _MISSING else json.dumps(v, sort_keys=True)

        return f"{self.path}: live {show(self.live)} -> desired {show(self.desired)}"


def normalise(values: Any) -> Any:
    """JSON round trip: what helm stores and returns (tuples become lists, keys strings)."""
    return json.loads(json.dumps(values, sort_keys=True, default=str)) if values is not None else {}


def diff_values(live: Any, desired: Any, prefix: str = "") -> list[PathDiff]:
    live, desired = normalise(live), normalise(desired)
    return _diff(live, desired, prefix)


def _diff(live: Any, desired: Any, prefix: str) -> list[PathDiff]:
    if isinstance(live, dict) and isinstance(desired, dict):
        out: list[PathDiff] = []
        for key in sorted(set(live) | set(desired)):
            path = f"{prefix}.{key}" if prefix else str(key)
            out.extend(_diff(live.get(key, _MISSING), desired.get(key, _MISSING), path))
        return out
    if live is _MISSING and desired is None or desired is _MISSING and live is None:
        return []  # `key: null` and an absent key mean the same to helm
    if live != desired:
        return [PathDiff(prefix or "(root)", live, desired)]
    return []
