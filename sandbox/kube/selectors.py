"""Label and field selectors, parsed once and matched against objects."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Matcher = Callable[[dict[str, Any]], bool]


class SelectorError(ValueError):
    pass


def _split_top(s: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


_SET = re.compile(r"^([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)$")


def label_requirements(selector: str | None) -> list[Callable[[dict[str, str]], bool]]:
    reqs: list[Callable[[dict[str, str]], bool]] = []
    for term in _split_top(selector or ""):
        m = _SET.match(term)
        if m:
            key, op, vals = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",") if v.strip()}
            if op == "in":
                reqs.append(lambda lb, k=key, vs=vals: lb.get(k) in vs)
            else:
                reqs.append(lambda lb, k=key, vs=vals: lb.get(k) not in vs)
        elif "!=" in term:
            k, v = (x.strip() for x in term.split("!=", 1))
            reqs.append(lambda lb, k=k, v=v: lb.get(k) != v)
        elif "==" in term or "=" in term:
            k, v = (x.strip() for x in re.split(r"==?", term, maxsplit=1))
            reqs.append(lambda lb, k=k, v=v: lb.get(k) == v)
        elif term.startswith("!"):
            reqs.append(lambda lb, k=term[1:].strip(): k not in lb)
        elif re.match(r"^[A-Za-z0-9./_-]+$", term):
            reqs.append(lambda lb, k=term: k in lb)
        else:
            raise SelectorError(f"unable to parse requirement: {term!r}")
    return reqs


def label_matcher(selector: str | None) -> Matcher:
    reqs = label_requirements(selector)

    def match(obj: dict[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(r(labels) for r in reqs)

    return match


def _field_value(obj: dict[str, Any], path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def field_matcher(selector: str | None) -> Matcher:
    reqs: list[Callable[[dict[str, Any]], bool]] = []
    for term in _split_top(selector or ""):
        if "!=" in term:
            k, v = term.split("!=", 1)
            reqs.append(lambda o, k=k.strip(), v=v.strip(): _field_value(o, k) != v)
        elif "=" in term:
            k, v = re.split(r"==?", term, maxsplit=1)
            reqs.append(lambda o, k=k.strip(), v=v.strip(): _field_value(o, k) == v)
        else:
            raise SelectorError(f"invalid field selector: {term!r}")
    return lambda o: all(r(o) for r in reqs)


def match_label_selector_object(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A metav1.LabelSelector (matchLabels/matchExpressions) against labels; empty matches everything."""
    if not selector:
        return True
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        k, op, vals = e.get("key"), e.get("operator"), set(e.get("values") or [])
        if (op == "In" and labels.get(k) not in vals) or (op == "NotIn" and labels.get(k) in vals) \
                or (op == "Exists" and k not in labels) or (op == "DoesNotExist" and k in labels):
            return False
    return True
