"""The real helm and kubectl, run as a user would, failing the test with their output."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.conftest import CONFIGS, ROOT, TOOLS

# The Cilium chart version configs/stack.yaml pins: the tests' own helm runs use it as an operator would.
CILIUM_VERSION = "1.18.4"
TETRAGON_VERSION = "1.5.0"  # the sandbox serves Tetragon's open-source chart (configs/environments/sandbox.yaml)
# An out-of-band change to the deployed `cilium` release: a value the stack does not set.
DEBUG_ON = ("--reuse-values", "--set", "debug.enabled=true")


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


def cilium_release(action: str, chart_repo_url: str, *flags: str) -> list[str]:
    """helm's arguments to `install` or `upgrade` the `cilium` release from the sandbox's chart repository, by hand
    (what an operator, an interrupted run or an out-of-band change does), followed by `flags`."""
    return [
        action,
        "cilium",
        "cilium",
        "--repo",
        chart_repo_url,
        "--version",
        CILIUM_VERSION,
        "-n",
        "kube-system",
        *flags,
    ]


def cilium_values(directory: Path) -> Path:
    """The runbook's Cilium values with the API server endpoint filled in for the sandbox, written to `directory`."""
    values = directory / "values.yaml"
    values.write_text(
        (CONFIGS / "cilium-enterprise-values.yaml").read_text().replace("<YOUR-EKS-API-SERVER-ENDPOINT>", "127.0.0.1")
    )
    return values


def spawn(argv: list[str], env: dict[str, str], *, merge_stderr: bool = False) -> subprocess.Popen[str]:
    """A child process in the repository, in a session of its own (so the test can signal its whole process group),
    with text pipes for stdout and stderr (stderr into stdout with `merge_stderr`)."""
    return subprocess.Popen(
        argv,
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
