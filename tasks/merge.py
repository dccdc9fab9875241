"""Deep merge used for overlays and values overrides: dicts merge, lists replace, an explicit null removes a key."""

from __future__ import annotations

import copy
from typing import Any


def deep_merge(base: Any, overlay: Any) -> Any:
    """Return a new object: `overlay` merged over `base` (neither is modified)."""
    if not isinstance(base, dict) or not isinstance(overlay, dict):
        return copy.deepcopy(overlay)
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
