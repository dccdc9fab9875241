"""The commands that run a flow or touch the cluster: `install`, `drift` (report or `--repair`), `upgrade` and
`unlock`.

Each loads the stack (from CONFIG_DIR or `--stack`, pointed at the sandbox with `--sandbox`), runs the flow in
a worker thread that Ctrl-C can stop (flows.cli.interrupt), and prints the result even when a step failed.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from flows.cli.interrupt import run_interruptibly
from flows.cli.render import print_drift, print_result, print_upgrade
from flows.cli.sandbox import StackPatch, sandbox_session
from tasks.errors import ConfigError, EksCiliumError

if TYPE_CHECKING:
    from tasks.model import Stack
    from tasks.options import RunOptions


def load_stack(args: argparse.Namespace, patch: StackPatch | None) -> Stack:
    """The stack of `--stack` or of CONFIG_DIR (with `--env`), with `patch` (the sandbox's) merged in."""
    from tasks.merge import deep_merge
    from tasks.model import load_stack as load_configured
    from tasks.model import load_stack_data, parse_stack, read_yaml

    if args.stack:
        data = read_yaml(args.stack, "stack file")
        if not isinstance(data, dict):
            raise ConfigError(f"{args.stack}: expected a mapping at the top level")
        if patch:
            data = deep_merge(data, patch(data))
        return parse_stack(data, str(args.stack))
    if patch:
        data = load_stack_data(args.config_dir, args.environment)
        return parse_stack(deep_merge(data, patch(data)), f"{args.config_dir / 'stack.yaml'} + sandbox")
    return load_configured(args.config_dir, args.environment)


@contextlib.contextmanager
def _flow_inputs(args: argparse.Namespace, *, start: bool, **options: Any) -> Iterator[tuple[Stack, RunOptions]]:
    """Inside the sandbox session (when `--sandbox`): the stack and run options, once AWS credentials are found."""
    from tasks.adapters.aws import require_credentials
    from tasks.options import RunOptions

    with sandbox_session(args, start=start) as patch:
        stack = load_stack(args, patch)
        run_options = RunOptions(config_dir=str(args.config_dir.resolve()), environment=args.environment, **options)
        require_credentials(stack.cluster.region)
        yield stack, run_options


def cmd_install(args: argparse.Namespace) -> int:
    from flows.install_stack import VerificationFailed, run_install

    try:
        with _flow_inputs(args, start=True, dry_run=args.dry_run) as (stack, options):
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
        raise


def cmd_drift(args: argparse.Namespace) -> int:
    from flows.check_drift import run_drift
    from tasks.options import DriftMode

    mode = DriftMode.repair if args.repair else DriftMode.report
    try:
        with _flow_inputs(args, start=False) as (stack, options):
            result = run_interruptibly(
                lambda: run_drift(stack, options, mode),
                f"drift {mode.value} of {stack.cluster.name} ({stack.cluster.region})",
            )
    except EksCiliumError as e:
        if e.report is not None:  # a repair step failed: the after-repair report still comes out
            print_drift(e.report, args.output)
        raise
    print_drift(result, args.output)
    return 0 if result["summary"]["clean"] else 3


def cmd_upgrade(args: argparse.Namespace) -> int:
    from flows.upgrade_stack import run_upgrade

    try:
        with _flow_inputs(args, start=False, dry_run=args.dry_run) as (stack, options):
            result = run_interruptibly(
                lambda: run_upgrade(
                    stack,
                    options,
                    allow_downgrade=args.allow_downgrade,
                    prepull_patches=not args.no_prepull_for_patches,
                ),
                f"upgrade of {stack.cluster.name} ({stack.cluster.region})",
            )
    except EksCiliumError as e:
        if e.report is not None:  # a hop failed and was rolled back: what was done still comes out
            print_upgrade(e.report, args.output)
        raise
    print_upgrade(result, args.output)
    return 0 if result.get("ok") else 1


def cmd_unlock(args: argparse.Namespace) -> int:
    from tasks.steps.lock import force_unlock

    with sandbox_session(args, start=False) as patch:
        lines = force_unlock(load_stack(args, patch), args.confirm)
    print("\n".join(lines))
    return 0
