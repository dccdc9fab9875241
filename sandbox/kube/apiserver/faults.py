"""Fault injection at the API: make matching requests fail with a status, or be delayed first."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum

from sandbox.kube.errors import ApiError

ANY = "*"


class FaultReason(StrEnum):
    """The Status reason an injected failure carries, by HTTP status."""

    INTERNAL = "InternalError"
    FORBIDDEN = "Forbidden"
    TOO_MANY_REQUESTS = "TooManyRequests"
    BAD_REQUEST = "BadRequest"

    @classmethod
    def of(cls, status: int) -> FaultReason:
        if status >= 500:
            return cls.INTERNAL
        return {403: cls.FORBIDDEN, 429: cls.TOO_MANY_REQUESTS}.get(status, cls.BAD_REQUEST)


@dataclass
class FaultRule:
    """Make the next `count` requests matching (verb, resource[, name]) fail with `status` (or be delayed).

    `count` -1 matches forever; `status` 0 with a `delay_seconds` only delays."""

    verb: str = ANY
    resource: str = ANY
    name: str = ANY
    count: int = 1
    status: int = 500
    message: str = "injected fault"
    delay_seconds: float = 0.0
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def matches(self, verb: str, resource: str, name: str) -> bool:
        return (
            self.verb in (ANY, verb)
            and self.resource in (ANY, resource)
            and self.name in (ANY, name)
            and self.count != 0
        )

    def error(self) -> ApiError | None:
        return ApiError(self.status, FaultReason.of(self.status), self.message) if self.status else None


def take_fault(rules: list[FaultRule], verb: str, resource: str, name: str) -> FaultRule | None:
    """The first rule matching the request, one of its `count` used up."""
    for rule in rules:
        if rule.matches(verb, resource, name):
            if rule.count > 0:
                rule.count -= 1
            return rule
    return None
