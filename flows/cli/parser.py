"""The argument parser: every sub-command and its options, registered here and nowhere else."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from flows.cli import render, runs, sandbox
from tasks.render import DEFAULT_CONFIG_DIR

DESCRIPTION = "The `eks-cilium` command line: render, install, drift, upgrade and the local sandbox."


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config-dir",
        type=Path,
        default=DEFAULT_CONFIG_DIR,
        help="directory with stack.yaml, the values files and environments/ (default: %(default)s)",
    )
    p.add_argument(
        "--env", dest="environment", default=None, help="environment overlay: configs/environments/NAME.yaml"
    )


def _target(p: argparse.ArgumentParser, sandbox_help: str) -> None:
    """Which stack, on which cluster: `--stack` and `--sandbox` of the commands that reach a cluster."""
    p.add_argument("--stack", type=Path, help="a stack file to use instead of CONFIG_DIR/stack.yaml")
    p.add_argument("--sandbox", action="store_true", help=sandbox_help)


def _flow_command(sub: Any, name: str, help: str, sandbox_help: str, flag: tuple[str, str], func: Any) -> Any:
    """A command that runs a flow: common options, the target, its one `flag` (name, help), `--output`."""
    p = sub.add_parser(name, help=help)
    _common(p)
    _target(p, sandbox_help)
    p.add_argument(flag[0], action="store_true", help=flag[1])
    p.add_argument("--output", choices=["table", "json"], default="table")
    p.set_defaults(func=func)
    return p


def _sandbox_parser(sbs: Any, name: str, help: str) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sbs.add_parser(name, help=help)
    p.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="the sandbox's state (default: $EKS_CILIUM_SANDBOX_DIR or .sandbox)",
    )
    return p


def _register_render(sub: Any) -> None:
    p = sub.add_parser("render", help="print or write the values files and the nodegroup request")
    _common(p)
    p.add_argument("--endpoint", help="cluster API endpoint (https://HOST); without it the placeholder stays")
    p.add_argument("--out", type=Path, help="write files (mode 0600) into this directory instead of printing")
    p.set_defaults(func=render.cmd_render)


def _register_sandbox(sub: Any) -> None:
    sb = sub.add_parser("sandbox", help="run the local sandbox (moto + Kubernetes API emulator + chart repository)")
    sbs = sb.add_subparsers(dest="sandbox_command", required=True)
    up = _sandbox_parser(sbs, "up", "start a sandbox; prints the env file to source")
    up.add_argument("--detach", action="store_true", help="run in the background (pid file in the state dir)")
    up.add_argument(
        "--clusters", default=sandbox.DEFAULT_CLUSTER, help="comma-separated cluster names (default: %(default)s)"
    )
    up.add_argument(
        "--profile",
        choices=sandbox.PROFILES,
        metavar="PROFILE",  # without a metavar argparse lists the choices, i.e. imports the sandbox, at build time
        default="fresh",
        help="what the cluster looks like before the install: %(choices)s (default: %(default)s)",
    )
    up.add_argument(
        "--realistic",
        action="store_true",
        help="realistic delays (nodegroup ~20 s, image pulls 1-3 s) instead of instant",
    )
    up.set_defaults(func=sandbox.cmd_sandbox_up)
    _sandbox_parser(sbs, "status", "show the running sandbox").set_defaults(func=sandbox.cmd_sandbox_status)
    down = _sandbox_parser(sbs, "down", "stop the sandbox and remove its state")
    down.set_defaults(func=sandbox.cmd_sandbox_down)

    fault = _sandbox_parser(
        sbs, "fault", "make the next N matching API requests fail (or clear all rules with --clear)"
    )
    fault.add_argument("--cluster", default=sandbox.DEFAULT_CLUSTER)
    fault.add_argument("--verb", default="*", help="get, list, watch, create, update, patch, delete or * (default)")
    fault.add_argument("--resource", default="*", help="plural resource name, e.g. daemonsets (default: any)")
    fault.add_argument("--count", type=int, default=1, help="how many requests (-1: until cleared)")
    fault.add_argument("--status", type=int, default=500, help="HTTP status to answer (0 with --delay: only slow down)")
    fault.add_argument("--delay", type=float, default=0.0, help="seconds to wait before answering")
    fault.add_argument("--clear", action="store_true")
    fault.set_defaults(func=sandbox.cmd_sandbox_fault)

    pods = _sandbox_parser(sbs, "pods", "make pods matching a selector crash-loop or stay Pending (or --clear)")
    pods.add_argument("--cluster", default=sandbox.DEFAULT_CLUSTER)
    pods.add_argument("--selector", default="", help="labels, e.g. k8s-app=cilium")
    pods.add_argument(
        "--mode",
        choices=sandbox.POD_FAULT_MODES,
        metavar="MODE",
        default="crashloop",
        help="%(choices)s (default: %(default)s)",
    )
    pods.add_argument("--message", default="injected fault")
    pods.add_argument("--clear", action="store_true")
    pods.set_defaults(func=sandbox.cmd_sandbox_pods)


def _register_runs(sub: Any) -> None:
    _flow_command(
        sub,
        "install",
        "run the install flow (install_stack)",
        "run against the local sandbox (uses a running one, or starts one for this run)",
        ("--dry-run", "discover, preflight and print the plan; change nothing"),
        runs.cmd_install,
    )
    _flow_command(
        sub,
        "drift",
        "run the drift check (check_drift); exit 0 clean, 3 drift found, 1 error",
        "check the running local sandbox",
        ("--repair", "re-run the affected install steps, then report again"),
        runs.cmd_drift,
    )
    up = _flow_command(
        sub,
        "upgrade",
        "run the upgrade flow (upgrade_stack): one minor at a time, pre-pulled images, automatic rollback",
        "upgrade the running local sandbox",
        ("--dry-run", "print the upgrade plan (or why it is refused); change nothing"),
        runs.cmd_upgrade,
    )
    up.add_argument(
        "--allow-downgrade", action="store_true", help="allow going back to the previous deployed revision's chart"
    )
    up.add_argument(
        "--no-prepull-for-patches", action="store_true", help="skip the pre-flight image pre-pull for patch bumps"
    )

    # The operators' way out of a cluster lock whose holder is gone for good.
    un = sub.add_parser(
        "unlock",
        help="remove the cluster's lock (Lease kube-system/eks-cilium-lock) after showing its holder",
        description="Like `terraform force-unlock`: only for a lock whose run is gone for good (a dead "
        "holder also loses the lock 60 s after its last renewal). Needs no Prefect server.",
    )
    _common(un)
    un.add_argument("--confirm", required=True, metavar="CLUSTER", help="the stack's cluster name, to confirm")
    _target(un, "the running local sandbox's cluster")
    un.set_defaults(func=runs.cmd_unlock)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eks-cilium", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    _register_render(sub)
    _register_sandbox(sub)
    _register_runs(sub)
    return parser
