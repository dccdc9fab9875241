"""The `sandbox up|status|fault|pods|down` command and `--sandbox` of the run commands.

The only product module that imports the sandbox, and only inside functions, so every other command works
without the sandbox extras. The sandbox's state directory is decided here, once, for both.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tasks.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# The sandbox's state directory, shared by `sandbox up|down|...` and `--sandbox` (EKS_CILIUM_SANDBOX_DIR moves it).
DEFAULT_STATE = Path(os.environ.get("EKS_CILIUM_SANDBOX_DIR") or PROJECT_ROOT / ".sandbox")
DEFAULT_CLUSTER = "isovalent-demo"
# Public chart repositories the sandbox's chart repository mirrors under a path of its own (sandbox/chartrepo.py
# OSS_PATH): a stack that installs from one of them (the oss edition) installs from that path in the sandbox.
SANDBOX_MIRRORS = {"https://helm.cilium.io": "oss"}
StackPatch = Callable[[dict[str, Any]], dict[str, Any]]  # the unpatched stack's data -> what to merge over it


def sandbox_chart_url(stack_url: Any, sandbox_url: str) -> str:
    """The sandbox's stand-in for the stack's chart repository URL: its mirror path, or its default repository."""
    path = SANDBOX_MIRRORS.get(str(stack_url or "").rstrip("/"))
    return f"{sandbox_url}/{path}" if path else sandbox_url


def state_dir(args: argparse.Namespace) -> Path:
    """The state directory a command works on: its `--state-dir`, else the default one."""
    return getattr(args, "state_dir", None) or DEFAULT_STATE


class SandboxChoices:
    """Choices for argparse from one of the sandbox's own tables, read only when a value is checked or the help
    is shown: importing the sandbox takes a while and needs its extras, which other commands do without."""

    def __init__(self, names: Callable[[], list[str]]) -> None:
        self._names = names

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())


def _profile_names() -> list[str]:
    from sandbox.control import PROFILES

    return list(PROFILES)


def _pod_fault_modes() -> list[str]:
    from sandbox.kube.controllers import PodFaultMode

    return [m.value for m in PodFaultMode]


PROFILES = SandboxChoices(_profile_names)
POD_FAULT_MODES = SandboxChoices(_pod_fault_modes)


def cmd_sandbox_up(args: argparse.Namespace) -> int:
    from sandbox import control

    clusters = [c.strip() for c in args.clusters.split(",") if c.strip()]
    return control.up(state_dir(args), clusters, args.profile, args.realistic, args.detach)


def cmd_sandbox_status(args: argparse.Namespace) -> int:
    from sandbox import control

    return control.status(state_dir(args))


def cmd_sandbox_down(args: argparse.Namespace) -> int:
    from sandbox import control

    return control.down(state_dir(args))


def _control(args: argparse.Namespace, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One request to the running sandbox's control API; its JSON answer."""
    import urllib.error
    import urllib.request

    from sandbox import control

    state = control.running(state_dir(args))
    if state is None:
        raise ConfigError("no sandbox is running", hint="start one with `eks-cilium sandbox up --detach`")
    req = urllib.request.Request(
        state["control_url"] + path,
        method=method,
        data=json.dumps(body or {}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        raise ConfigError(f"the sandbox refused {method} {path}", observed=e.read().decode(errors="replace")) from None


def _clear_or_add(args: argparse.Namespace, rules: str, body: Callable[[], dict[str, Any]]) -> Any:
    """`--clear`: delete every rule of the cluster's `rules` collection (None); else add `body()` (the rule)."""
    path = f"/_sandbox/clusters/{args.cluster}/{rules}"
    if args.clear:
        _control(args, "DELETE", path)
        return None
    return _control(args, "POST", path, body())


def cmd_sandbox_fault(args: argparse.Namespace) -> int:
    rule = _clear_or_add(
        args,
        "faults",
        lambda: {
            "verb": args.verb,
            "resource": args.resource,
            "count": args.count,
            "status": args.status,
            "delay_seconds": args.delay,
        },
    )
    if rule is None:
        print("sandbox: fault rules cleared")
    else:
        print(
            f"sandbox: fault {rule['id']}: next {rule['count']} {rule['verb']} {rule['resource']} -> {rule['status']}"
        )
    return 0


def _pod_policy(args: argparse.Namespace) -> dict[str, Any]:
    selector = dict(kv.split("=", 1) for kv in args.selector.split(",") if "=" in kv)
    if not selector:
        raise ConfigError("--selector needs at least one label, e.g. k8s-app=cilium")
    return {"selector": selector, "mode": args.mode, "message": args.message}


def cmd_sandbox_pods(args: argparse.Namespace) -> int:
    policy = _clear_or_add(args, "pod-policies", lambda: _pod_policy(args))
    if policy is None:
        print("sandbox: pod policies cleared")
    else:
        print(f"sandbox: pods matching {policy['selector']} now {policy['mode']}")
    return 0


@contextlib.contextmanager
def sandbox_session(args: argparse.Namespace, *, start: bool) -> Iterator[StackPatch | None]:
    """With --sandbox: use the running sandbox (or start one for this command when `start`), export what boto3
    and helm read from the environment, and yield the stack patch pointing at its chart repository."""
    if not args.sandbox:
        yield None
        return
    # The sandbox is reached exactly like AWS and EKS: through the environment variables boto3 reads
    # (AWS_ENDPOINT_URL, credentials) and the cluster endpoint DescribeCluster returns.
    from sandbox import control

    directory = state_dir(args)
    state = control.running(directory)
    started_here = False
    if state is None:
        if not start:
            raise ConfigError(
                "no sandbox is running", hint="start one with `eks-cilium sandbox up --detach` (and install into it)"
            )
        print("sandbox: starting one for this run", file=sys.stderr)
        state = control.start_detached(directory, [DEFAULT_CLUSTER])
        started_here = True
    env = control.env_for(state, directory)
    os.environ.update({k: v for k, v in env.items() if k != "KUBECONFIG"})
    if args.environment is None:
        args.environment = "sandbox"
    args.sandbox_started_here = started_here
    try:
        repo = env["EKS_CILIUM_CHART_REPO_URL"]
        yield lambda data: {
            "chart_repository": {"url": sandbox_chart_url((data.get("chart_repository") or {}).get("url"), repo)}
        }
    finally:
        if started_here:
            control.down(directory, out=sys.stderr)
