"""The API server's error answers: `ApiError` carries a `Status`; the constructors word them as kube-apiserver does."""

from __future__ import annotations

from typing import Any

from sandbox.kube.registry import ResourceType


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details or {}


def status_body(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": details or {},
        "code": code,
    }


def qualified(rt: ResourceType) -> str:
    """The group-qualified resource the API server names in its messages: `leases.coordination.k8s.io`, `pods`."""
    return f"{rt.plural}.{rt.group}" if rt.group else rt.plural


def _details(rt: ResourceType, name: str) -> dict[str, Any]:
    return {"name": name, "group": rt.group, "kind": rt.plural}


def not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{qualified(rt)} "{name}" not found', _details(rt, name))


def no_such_resource() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource")


def already_exists(rt: ResourceType, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{qualified(rt)} "{name}" already exists', _details(rt, name))


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def conflict(rt: ResourceType, name: str) -> ApiError:
    """apierrors.NewConflict with the storage layer's optimistic-lock message, as kube-apiserver answers it."""
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {qualified(rt)} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        _details(rt, name),
    )


def precondition_failed(rt: ResourceType, ns: str, name: str, label: str, wanted: str, actual: str) -> ApiError:
    """A DELETE whose preconditions do not hold: the storage layer's invalid-object error wrapped in a Conflict."""
    key = "/".join(p for p in ("/registry", rt.plural, ns, name) if p)
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {qualified(rt)} "{name}": StorageError: invalid object, '
        f"Code: 4, Key: {key}, ResourceVersion: 0, AdditionalErrorMsg: Precondition failed: "
        f"{label} in precondition: {wanted}, {label} in object meta: {actual}",
        _details(rt, name),
    )


def resource_version_required(rt: ResourceType, name: str) -> ApiError:
    """The Lease strategy does not allow unconditional updates: a PUT must say which version it replaces."""
    message = "Invalid value: 0x0: must be specified for an update"
    cause = {"reason": "FieldValueInvalid", "field": "metadata.resourceVersion", "message": message}
    return ApiError(
        422,
        "Invalid",
        f'{qualified(rt)} "{name}" is invalid: metadata.resourceVersion: {message}',
        {**_details(rt, name), "causes": [cause]},
    )
