"""helm adapter: locating the binary, running argv lists (never a shell), parsing `-o json`, classifying errors
(transient or not; a missing release is ReleaseNotFound, so callers never read helm's stderr).

Which helm: `EKS_CILIUM_HELM`, else the project's `.tools/bin/helm` (scripts/bootstrap installs it), else PATH.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks import helm_argv
from tasks.errors import CommandError, ReleaseNotFound, ToolError

PROJECT_TOOLS = Path(__file__).resolve().parents[2] / ".tools" / "bin"
MIN_VERSION = (3, 14)
TRANSIENT_PATTERNS = re.compile(
    r"connection refused|connection reset|i/o timeout|TLS handshake timeout|EOF$|server is currently unable|"
    r"Service Unavailable|too many requests|etcdserver: request timed out|http2: client connection lost|"
    r"the server has received too many requests|context deadline exceeded \(Client\.Timeout|Internal error occurred|"
    r"the server is currently unable to handle the request|an error on the server",
    re.IGNORECASE | re.MULTILINE,
)
IN_PROGRESS = "another operation (install/upgrade/rollback) is in progress"
# helm's storage.ErrReleaseNotFound (helm 3 and 4): `Error: release: not found`, and inside uninstall's
# `Error: uninstall: Release not loaded: NAME: release: not found`.
RELEASE_NOT_FOUND = "release: not found"


def error_kind(stderr: str) -> type[CommandError]:
    """The error a failed helm command raises, from its stderr: ReleaseNotFound or CommandError."""
    return ReleaseNotFound if RELEASE_NOT_FOUND in stderr else CommandError


def find_helm() -> str:
    """Path of the helm binary; ToolError with the fix when none is usable."""
    candidates = []
    if os.environ.get("EKS_CILIUM_HELM"):
        candidates.append(os.environ["EKS_CILIUM_HELM"])
    candidates.append(str(PROJECT_TOOLS / "helm"))
    on_path = shutil.which("helm")
    if on_path:
        candidates.append(on_path)
    for c in candidates:
        if os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    raise ToolError(
        "helm was not found",
        observed=f"looked at: {', '.join(candidates)}",
        hint="run scripts/bootstrap (installs helm into .tools/bin) or set EKS_CILIUM_HELM=/path/to/helm",
    )


def parse_version(text: str) -> tuple[int, int, int] | None:
    m = re.search(r"v?(\d+)\.(\d+)\.(\d+)", text)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


_RUNNING: dict[str, set[subprocess.Popen[str]]] = {}
_RUNNING_LOCK = threading.Lock()


def cancel_scope(scope: str, grace_seconds: float = 10.0) -> list[str]:
    """Stop every helm process started under `scope` (SIGTERM, then SIGKILL): helm marks the release failed
    on SIGTERM, which the next run can upgrade. Returns the argv of what was stopped."""
    with _RUNNING_LOCK:
        procs = list(_RUNNING.get(scope, ()))
    stopped = []
    for p in procs:
        if p.poll() is None:
            p.terminate()
            stopped.append(" ".join(str(a) for a in p.args) if isinstance(p.args, list) else str(p.args))
    for p in procs:
        try:
            p.wait(grace_seconds)
        except subprocess.TimeoutExpired:
            p.kill()
    return stopped


def cancel_all(grace_seconds: float = 10.0) -> list[str]:
    """Stop every helm process of this process, whatever its scope (the command line was interrupted)."""
    with _RUNNING_LOCK:
        scopes = list(_RUNNING)
    return [argv for scope in scopes for argv in cancel_scope(scope, grace_seconds)]


@dataclass
class Helm:
    binary: str
    env: dict[str, str] | None = None  # extra environment (isolated HELM_* homes in tests)
    redact: tuple[str, ...] = ()
    scope: str = ""  # processes of one flow run, so that a failed run can stop its helm processes

    def check_version(self) -> tuple[int, int, int]:
        out = self.run(helm_argv.version(self.binary), what="read the helm version")
        v = parse_version(out)
        if v is None or v[:2] < MIN_VERSION:
            raise ToolError(
                f"helm {out.strip() or '?'} at {self.binary} is too old",
                observed=f"version {out.strip()!r}",
                hint="install helm >= 3.14 (scripts/bootstrap) or set EKS_CILIUM_HELM",
            )
        return v

    def _redact(self, text: str) -> str:
        for s in self.redact:
            if s:
                text = text.replace(s, "***")
        return text

    def run(self, argv: list[str], *, what: str, stdin: str | None = None, timeout: float | None = None) -> str:
        env = {**os.environ, **(self.env or {})}
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
            )
        except FileNotFoundError:
            raise ToolError(
                f"{what}: {argv[0]} could not be started", hint="run scripts/bootstrap or set EKS_CILIUM_HELM"
            ) from None
        with _RUNNING_LOCK:
            _RUNNING.setdefault(self.scope, set()).add(proc)
        try:
            stdout, stderr_text = proc.communicate(input=stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.terminate()
            stdout, stderr_text = proc.communicate()
            raise CommandError(
                f"{what}: helm did not finish within {timeout:.0f} s",
                argv=argv,
                returncode=-1,
                stderr=self._redact(stderr_text or ""),
                transient=True,
            ) from None
        finally:
            with _RUNNING_LOCK:
                _RUNNING.get(self.scope, set()).discard(proc)
        if proc.returncode != 0:
            stderr = self._redact(stderr_text or stdout)
            hint = None
            transient = bool(TRANSIENT_PATTERNS.search(stderr))
            if IN_PROGRESS in stderr:
                transient = False
                hint = (
                    "a previous helm operation on this release was interrupted; the flow's recovery step "
                    "handles it, or run "
                    "`helm history RELEASE -n NAMESPACE` then `helm rollback RELEASE REVISION -n NAMESPACE`"
                )
            raise error_kind(stderr)(
                what,
                argv=[self._redact(a) for a in argv],
                returncode=proc.returncode,
                stderr=stderr,
                hint=hint or ("retried automatically" if transient else "read helm's message above"),
                transient=transient,
            )
        return stdout

    def run_json(self, argv: list[str], *, what: str, stdin: str | None = None, timeout: float | None = None) -> Any:
        out = self.run(argv, what=what, stdin=stdin, timeout=timeout)
        try:
            return json.loads(out) if out.strip() else None
        except json.JSONDecodeError:
            # helm prints warnings before the JSON on some paths; take the JSON document at the end.
            start = min((i for i in (out.find("{"), out.find("[")) if i >= 0), default=-1)
            if start >= 0:
                return json.loads(out[start:])
            raise CommandError(f"{what}: helm did not print JSON", argv=argv, returncode=0, stderr=out[:500]) from None
