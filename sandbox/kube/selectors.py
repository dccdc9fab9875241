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


LabelTest = Callable[[dict[str, str]], bool]


def _requirement(term: str) -> LabelTest:
    m = _SET.match(term)
    if m:
        key, negate = m.group(1), m.group(2) == "notin"
        values = {v.strip() for v in m.group(3).split(",") if v.strip()}
        return lambda lb: (lb.get(key) in values) != negate
    if "=" in term:
        negate = "!=" in term
        key, value = (x.strip() for x in (term.split("!=", 1) if negate else re.split(r"==?", term, maxsplit=1)))
        return lambda lb: (lb.get(key) == value) != negate
    if term.startswith("!"):
        absent = term[1:].strip()
        return lambda lb: absent not in lb
    if re.match(r"^[A-Za-z0-9./_-]+$", term):
        return lambda lb: term in lb
    raise SelectorError(f"unable to parse requirement: {term!r}")


def label_requirements(selector: str | None) -> list[LabelTest]:
    return [_requirement(term) for term in _split_top(selector or "")]


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
    def requirement(term: str) -> Matcher:
        negate = "!=" in term
        if not negate and "=" not in term:
            raise SelectorError(f"invalid field selector: {term!r}")
        key, value = (x.strip() for x in (term.split("!=", 1) if negate else re.split(r"==?", term, maxsplit=1)))
        return lambda o: (_field_value(o, key) == value) != negate

    reqs = [requirement(term) for term in _split_top(selector or "")]
    return lambda o: all(r(o) for r in reqs)
