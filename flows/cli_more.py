"""Sub-commands that need the sandbox or Prefect: `sandbox up|status|down`, `install`."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from flows.interrupt import run_interruptibly
from tasks.errors import ConfigError, EksCiliumError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The sandbox's state directory, shared by `sandbox up|down|...` and `--sandbox` (EKS_CILIUM_SANDBOX_DIR moves it).
DEFAULT_STATE = Path(os.environ.get("EKS_CILIUM_SANDBOX_DIR") or PROJECT_ROOT / ".sandbox")


def register(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    sb = sub.add_parser("sandbox", help="run the local sandbox (moto + Kubernetes API emulator + chart repository)")
    sbs = sb.add_subparsers(dest="sandbox_command", required=True)
    up = sbs.add_parser("up", help="start a sandbox; prints the env file to source")
    up.add_argument("--state-dir", type=Path, default=DEFAULT_STATE)
    up.add_argument("--detach", action="store_true", help="run in the background (pid file in the state dir)")
    up.add_argument("--clusters", default="isovalent-demo", help="comma-separated cluster names (default: %(default)s)")
    up.add_argument(
        "--profile",
        choices=["fresh", "default-addons", "no-servicemonitor-crd", "existing-nodegroup"],
        default="fresh",
        help="what the cluster looks like before the install",
    )
    up.add_argument(
        "--realistic",
        action="store_true",
        help="realistic delays (nodegroup ~20 s, image pulls 1-3 s) instead of instant",
    )
    up.set_defaults(func=cmd_sandbox_up)
    st = sbs.add_parser("status", help="show the running sandbox")
    st.add_argument("--state-dir", type=Path, default=DEFAULT_STATE)
    st.set_defaults(func=cmd_sandbox_status)
    down = sbs.add_parser("down", help="stop the sandbox and remove its state")
    down.add_argument("--state-dir", type=Path, default=DEFAULT_STATE)
    down.set_defaults(func=cmd_sandbox_down)
    fault = sbs.add_parser("fault", help="make the next N matching API requests fail (or clear all rules with --clear)")
    fault.add_argument("--state-dir", type=Path, default=DEFAULT_STATE)
    fault.add_argument("--cluster", default="isovalent-demo")
    fault.add_argument("--verb", default="*", help="get, list, watch, create, update, patch, delete or * (default)")
    fault.add_argument("--resource", default="*", help="plural resource name, e.g. daemonsets (default: any)")
    fault.add_argument("--count", type=int, default=1, help="how many requests (-1: until cleared)")
    fault.add_argument("--status", type=int, default=500, help="HTTP status to answer (0 with --delay: only slow down)")
    fault.add_argument("--delay", type=float, default=0.0, help="seconds to wait before answering")
    fault.add_argument("--clear", action="store_true")
    fault.set_defaults(func=cmd_sandbox_fault)
    pods = sbs.add_parser("pods", help="make pods matching a selector crash-loop or stay Pending (or --clear)")
    pods.add_argument("--state-dir", type=Path, default=DEFAULT_STATE)
    pods.add_argument("--cluster", default="isovalent-demo")
    pods.add_argument("--selector", default="", help="labels, e.g. k8s-app=cilium")
    pods.add_argument("--mode", choices=["crashloop", "pending"], default="crashloop")
    pods.add_argument("--message", default="injected fault")
    pods.add_argument("--clear", action="store_true")
    pods.set_defaults(func=cmd_sandbox_pods)

    ins = sub.add_parser("install", help="run the install flow (install_stack)")
    common(ins)
    ins.add_argument("--stack", type=Path, help="a stack file to use instead of CONFIG_DIR/stack.yaml")
    ins.add_argument(
        "--sandbox",
        action="store_true",
        help="run against the local sandbox (uses a running one, or starts one for this run)",
    )
    ins.add_argument("--dry-run", action="store_true", help="discover, preflight and print the plan; change nothing")
    ins.add_argument("--output", choices=["table", "json"], default="table")
    ins.set_defaults(func=cmd_install)

    dr = sub.add_parser("drift", help="run the drift check (check_drift); exit 0 clean, 3 drift found, 1 error")
    common(dr)
    dr.add_argument("--stack", type=Path, help="a stack file to use instead of CONFIG_DIR/stack.yaml")
    dr.add_argument("--sandbox", action="store_true", help="check the running local sandbox")
    dr.add_argument("--repair", action="store_true", help="re-run the affected install steps, then report again")
    dr.add_argument("--output", choices=["table", "json"], default="table")
    dr.set_defaults(func=cmd_drift)
    register_unlock(sub, common)


# ---- sandbox -----------------------------------------------------------------------------------------------
def cmd_sandbox_up(args: argparse.Namespace) -> int:
    from sandbox import control

    return control.up(
        args.state_dir,
        [c.strip() for c in args.clusters.split(",") if c.strip()],
        args.profile,
        args.realistic,
        args.detach,
    )


def cmd_sandbox_status(args: argparse.Namespace) -> int:
    from sandbox import control

    return control.status(args.state_dir)


def cmd_sandbox_down(args: argparse.Namespace) -> int:
    from sandbox import control

    return control.down(args.state_dir)


def _control(state_dir: Path, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    import urllib.error
    import urllib.request

    from sandbox import control

    state = control.running(state_dir)
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


def cmd_sandbox_fault(args: argparse.Namespace) -> int:
    try:
        if args.clear:
            _control(args.state_dir, "DELETE", f"/_sandbox/clusters/{args.cluster}/faults")
            print("sandbox: fault rules cleared")
            return 0
        rule = _control(
            args.state_dir,
            "POST",
            f"/_sandbox/clusters/{args.cluster}/faults",
            {
                "verb": args.verb,
                "resource": args.resource,
                "count": args.count,
                "status": args.status,
                "delay_seconds": args.delay,
            },
        )
    except EksCiliumError as e:
        return _exit_error(e)
    print(f"sandbox: fault {rule['id']}: next {rule['count']} {rule['verb']} {rule['resource']} -> {rule['status']}")
    return 0


def cmd_sandbox_pods(args: argparse.Namespace) -> int:
    try:
        if args.clear:
            _control(args.state_dir, "DELETE", f"/_sandbox/clusters/{args.cluster}/pod-policies")
            print("sandbox: pod policies cleared")
            return 0
        selector = dict(kv.split("=", 1) for kv in args.selector.split(",") if "=" in kv)
        if not selector:
            raise ConfigError("--selector needs at least one label, e.g. k8s-app=cilium")
        policy = _control(
            args.state_dir,
            "POST",
            f"/_sandbox/clusters/{args.cluster}/pod-policies",
            {"selector": selector, "mode": args.mode, "message": args.message},
        )
    except EksCiliumError as e:
        return _exit_error(e)
    print(f"sandbox: pods matching {policy['selector']} now {policy['mode']}")
    return 0


# ---- install ---------------------------------------------------------------------------------------------
def _load_stack(args: argparse.Namespace, patch: dict[str, Any] | None) -> Any:
    from tasks.merge import deep_merge
    from tasks.model import load_stack, load_stack_data, parse_stack, read_yaml

    if args.stack:
        data = read_yaml(args.stack, "stack file")
        if not isinstance(data, dict):
            raise ConfigError(f"{args.stack}: expected a mapping at the top level")
        if patch:
            data = deep_merge(data, patch)
        return parse_stack(data, str(args.stack))
    if patch:
        data = deep_merge(load_stack_data(args.config_dir, args.environment), patch)
        return parse_stack(data, f"{args.config_dir / 'stack.yaml'} + sandbox")
    return load_stack(args.config_dir, args.environment)


@contextlib.contextmanager
def sandbox_session(args: argparse.Namespace, *, start: bool) -> Iterator[dict[str, Any] | None]:
    """With --sandbox: use the running sandbox (or start one for this command when `start`), export what boto3
    and helm read from the environment, and yield the stack patch pointing at its chart repository."""
    if not args.sandbox:
        yield None
        return
    # The sandbox is reached exactly like AWS and EKS: through the environment variables boto3 reads
    # (AWS_ENDPOINT_URL, credentials) and the cluster endpoint DescribeCluster returns.
    from sandbox import control

    state = control.running(DEFAULT_STATE)
    started_here = False
    if state is None:
        if not start:
            raise ConfigError(
                "no sandbox is running", hint="start one with `eks-cilium sandbox up --detach` (and install into it)"
            )
        print("sandbox: starting one for this run", file=sys.stderr)
        state = control.start_detached(DEFAULT_STATE, ["isovalent-demo"])
        started_here = True
    env = control.env_for(state, DEFAULT_STATE)
    os.environ.update({k: v for k, v in env.items() if k != "KUBECONFIG"})
    if args.environment is None:
        args.environment = "sandbox"
    args.sandbox_started_here = started_here
    try:
        yield {"chart_repository": {"url": env["EKS_CILIUM_CHART_REPO_URL"]}}
    finally:
        if started_here:
            control.down(DEFAULT_STATE, out=sys.stderr)


def cmd_install(args: argparse.Namespace) -> int:
    from flows.install_stack import VerificationFailed, run_install
    from tasks.options import RunOptions

    try:
        with sandbox_session(args, start=True) as patch:
            stack = _load_stack(args, patch)
            options = RunOptions(
                config_dir=str(args.config_dir.resolve()), environment=args.environment, dry_run=args.dry_run
            )
            from tasks.adapters.aws import require_credentials

            require_credentials(stack.cluster.region)
            what = f"install of {stack.cluster.name} ({stack.cluster.region})"
            if getattr(args, "sandbox_started_here", False):
                what += ", leaving the sandbox it started running (`eks-cilium sandbox down` stops it)"
            try:
                result = run_interruptibly(lambda: run_install(stack, options), what)
            except VerificationFailed as e:
                print_result(e.result, args.output)
                return 1
            print_result(result, args.output)
            return 0 if result.get("ok") else 1
    except EksCiliumError as e:
        if e.report is not None:  # a step failed after the install started: the report still comes out
            print_result(e.report, args.output)
        return _exit_error(e)


def cmd_drift(args: argparse.Namespace) -> int:
    from flows.check_drift import run_drift
    from tasks.options import DriftMode, RunOptions

    try:
        with sandbox_session(args, start=False) as patch:
            stack = _load_stack(args, patch)
            options = RunOptions(config_dir=str(args.config_dir.resolve()), environment=args.environment)
            from tasks.adapters.aws import require_credentials

            require_credentials(stack.cluster.region)
            mode = DriftMode.repair if args.repair else DriftMode.report
            result = run_interruptibly(
                lambda: run_drift(stack, options, mode),
                f"drift {mode.value} of {stack.cluster.name} ({stack.cluster.region})",
            )
    except EksCiliumError as e:
        if e.report is not None:  # a repair step failed: the after-repair report still comes out
            print_drift(e.report, args.output)
        return _exit_error(e)
    print_drift(result, args.output)
    return 0 if result["summary"]["clean"] else 3


def print_drift(result: dict[str, Any], output: str) -> None:
    if output == "json":
        print(json.dumps(result, indent=2, default=str))
        return
    if result.get("repaired"):
        print("repaired: " + "; ".join(result["repaired"]))
    checks = result["checks"]
    w = max(len(c["check"]) for c in checks)
    print(f"Drift report for {result['cluster']} ({result['region']}):")
    print(f"{'STATUS':<8} {'CHECK':<{w}}  DETAIL")
    for c in checks:
        print(f"{c['status']:<8} {c['check']:<{w}}  {c['detail']}")
        for d in c["diffs"]:
            print(f"{'':<8} {'':<{w}}    {d}")
    s = result["summary"]
    print("no drift" if s["clean"] else f"DRIFT: {s['drifted']} drifted, {s['broken']} broken")


def print_result(result: dict[str, Any], output: str) -> None:
    from tasks.verify import Check, text_table

    if output == "json":
        print(json.dumps(result, indent=2, default=str))
        return
    if result.get("dry_run"):
        print(
            f"Plan for {result['cluster']} ({result['region']}), endpoint {result['endpoint']} - dry "
            "run, nothing changed:"
        )
        for s in result["plan"]:
            print(f"  {s['action']:<10} {s['step']:<28} {s['command']}")
            for c in s["changes"]:
                print(f"             - {c}")
        return
    checks = [Check(**c) for c in result["verification"]["checks"]]
    print(f"Verification of {result['cluster']} ({result['region']}):")
    print(text_table(checks))
    if result.get("error"):
        reached = result.get("not_reached") or []
        print("THE RUN STOPPED EARLY" + (f"; steps never reached: {', '.join(reached)}" if reached else ""))
    else:
        print("all checks passed" if result["ok"] else "SOME CHECKS FAILED")


def _exit_error(e: EksCiliumError) -> int:
    print(f"error: {e}", file=sys.stderr)
    return 1


# ---- unlock: the operators' way out of a cluster lock whose holder is gone for good ----------------------------
def register_unlock(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    un = sub.add_parser(
        "unlock",
        help="remove the cluster's lock (Lease kube-system/eks-cilium-lock) after showing its holder",
        description="Like `terraform force-unlock`: only for a lock whose run is gone for good (a dead "
        "holder also loses the lock 60 s after its last renewal). Needs no Prefect server.",
    )
    common(un)
    un.add_argument("--confirm", required=True, metavar="CLUSTER", help="the stack's cluster name, to confirm")
    un.add_argument("--stack", type=Path, help="a stack file to use instead of CONFIG_DIR/stack.yaml")
    un.add_argument("--sandbox", action="store_true", help="the running local sandbox's cluster")
    un.set_defaults(func=cmd_unlock)


def cmd_unlock(args: argparse.Namespace) -> int:
    from tasks.locking import force_unlock

    try:
        with sandbox_session(args, start=False) as patch:
            lines = force_unlock(_load_stack(args, patch), args.confirm)
    except EksCiliumError as e:
        return _exit_error(e)
    print("\n".join(lines))
    return 0


__all__ = ["register", "print_result", "os"]
