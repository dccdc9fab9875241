"""The project's error hierarchy: every error says what failed, what was observed and what to do next.

`transient` errors are retried by tasks (throttling, 5xx, connection errors); everything else fails fast.
The adapters raise the specific kinds below (AccessDenied, Throttled, ResourceNotFound, ReleaseNotFound) once, where
they read the external system's answer, so callers catch a type and never match message text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class EksCiliumError(Exception):
    """Base error: `what` failed, `observed` is what we saw, `hint` is the next step for the user."""

    transient: bool = False
    # The structured report of the run this error stopped (verification or drift rows), when one could be made:
    # the CLI prints it before the error, so a failed sensor still shows every row.
    report: dict[str, Any] | None = None

    def __init__(self, what: str, *, observed: str | None = None, hint: str | None = None) -> None:
        self.what = what
        self.observed = observed
        self.hint = hint
        super().__init__(self.__str__())

    def __str__(self) -> str:
        parts = [self.what]
        if self.observed:
            parts.append(f"observed: {self.observed}")
        if self.hint:
            parts.append(f"next: {self.hint}")
        return "\n  ".join(parts)

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only constructor: make instances survive pickling (Prefect persists task exceptions).
        return (_rebuild, (type(self), self.__dict__.copy()))


def _rebuild(cls: type[EksCiliumError], state: dict[str, Any]) -> EksCiliumError:
    err = cls.__new__(cls)
    err.__dict__.update(state)
    Exception.__init__(err, str(err))
    return err


class ConfigError(EksCiliumError):
    """A stack file, overlay, values override or parameter is wrong. Nothing was changed."""


class ToolError(EksCiliumError):
    """A required binary (helm, kubectl, eksctl) is missing or too old."""


class TransientError(EksCiliumError):
    """Worth retrying: throttling, 5xx, connection refused/reset, timeouts of a single call."""

    transient = True


class PermanentError(EksCiliumError):
    """Retrying will not help: the cluster, the account or the chart is in a state the user must change."""


class Throttled(TransientError):
    """AWS throttled the request (a throttling error code, or HTTP 429)."""


class AccessDenied(PermanentError):
    """AWS refused the caller: an access-denied or credential error code, or HTTP 403."""


class ResourceNotFound(PermanentError):
    """The AWS resource does not exist (ResourceNotFoundException, NoSuchEntity, NotFoundException, or HTTP 404)."""


class DriftDetected(PermanentError):
    """The cluster differs from its stack (check_drift with fail_on_drift). A parent run (the fleet) tells it by the
    child run's state name (names.DRIFTED_STATE), never by this error's text."""

    MARKER = "drift detected"


class CommandError(EksCiliumError):
    """An external command (helm, kubectl, eksctl) failed. Keeps argv, return code and redacted stderr."""

    def __init__(
        self,
        what: str,
        *,
        argv: Sequence[str],
        returncode: int,
        stderr: str,
        hint: str | None = None,
        transient: bool = False,
    ) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr
        self.transient = transient
        super().__init__(
            what,
            observed=f"`{' '.join(self.argv)}` exited {returncode}: {stderr.strip()[-2000:]}",
            hint=hint,
        )


class ReleaseNotFound(CommandError):
    """helm answered that the release does not exist (`Error: release: not found`, also inside uninstall's
    `Release not loaded: NAME: release: not found`)."""


class SensorTimeout(EksCiliumError):
    """A polling sensor reached its deadline; `observed` carries the last state and the reasons."""


class PreflightFailed(EksCiliumError):
    """One or more preflight checks failed; all findings are listed, each with its fix."""

    def __init__(self, findings: Sequence[str]) -> None:
        self.findings = list(findings)
        body = "\n".join(f"  - {f}" for f in self.findings)
        super().__init__(
            f"preflight failed with {len(self.findings)} problem(s); nothing in the cluster or in AWS was changed",
            observed="\n" + body,
            hint="fix each problem above and run again",
        )
