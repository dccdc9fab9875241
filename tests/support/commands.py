"""The real helm and kubectl, run as a user would, failing the test with their output."""

from __future__ import annotations

import os
import subprocess

from tests.conftest import TOOLS


def run(
    *argv: str, check: bool = True, timeout: float = 120, env: dict | None = None, input_text: str | None = None
) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(a) for a in argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input_text,
        env={**os.environ, **(env or {})},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def helm(helm_binary, kubeconfig, *args, **kw):
    return run(helm_binary, *args, "--kubeconfig", kubeconfig, **kw)


def kubectl(kubeconfig, *args, **kw):
    return run(TOOLS / "kubectl", "--kubeconfig", kubeconfig, *args, **kw)
