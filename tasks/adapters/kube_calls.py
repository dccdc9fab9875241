"""Kubernetes adapter, its calls: every client call runs through `_call`, which turns the client's exceptions into
ours. TransientError (429, 5xx, connection problems), PermanentError (401, 403, invalid requests), a 404 on a read
asked for as `None`, a 409 on a write that asked for it as `Conflict`: callers never look at message text."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from tasks.errors import PermanentError, TransientError

T = TypeVar("T")
TIMEOUT = (5, 30)  # connect, read


class Conflict(PermanentError):
    """HTTP 409: `reason` is AlreadyExists (a create lost to an existing object) or Conflict (the resourceVersion
    or UID sent as a precondition is no longer the object's: someone else changed it first). Re-read and decide."""

    def __init__(self, what: str, *, reason: str, observed: str) -> None:
        self.reason = reason
        super().__init__(what, observed=observed)


def _status_reason(text: str) -> str:
    """The `reason` of a Kubernetes Status body (AlreadyExists, Conflict, ...), or "" when the body is not one."""
    import json

    try:
        body = json.loads(text)
    except ValueError:
        return ""
    return str(body.get("reason") or "") if isinstance(body, dict) else ""


def _call(what: str, fn: Callable[[], T], *, missing_ok: bool = False, conflict_ok: bool = False) -> T | None:
    try:
        return fn()
    except ApiException as e:
        if e.status == 404 and missing_ok:
            return None
        body = e.body or b""
        text = body.decode(errors="replace") if isinstance(body, bytes) else str(body)
        observed = f"HTTP {e.status} {e.reason}: {text[:500]}"
        if e.status == 409 and conflict_ok:
            raise Conflict(f"{what}: conflict", reason=_status_reason(text) or "Conflict", observed=observed) from None
        if e.status == 429 or (e.status or 0) >= 500:
            raise TransientError(
                f"{what}: the Kubernetes API is busy or failing", observed=observed, hint="retried automatically"
            ) from None
        if e.status == 401:
            raise PermanentError(
                f"{what}: the Kubernetes API rejected our credentials",
                observed=observed,
                hint="give this IAM principal an EKS access entry with AmazonEKSClusterAdminPolicy "
                "(or an aws-auth mapping); see README, 'Permissions'",
            ) from None
        if e.status == 403:
            raise PermanentError(
                f"{what}: forbidden",
                observed=observed,
                hint="the caller needs cluster-admin rights (EKS access policy AmazonEKSClusterAdminPolicy)",
            ) from None
        raise PermanentError(f"{what}: rejected by the Kubernetes API", observed=observed) from None
    except (urllib3.exceptions.HTTPError, OSError) as e:
        raise TransientError(
            f"{what}: could not reach the Kubernetes API",
            observed=str(e)[:500],
            hint="retried automatically; check that the endpoint is reachable from here",
        ) from None
