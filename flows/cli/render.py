"""The `render` command and how results reach the terminal: install results, plans and drift reports as a
text table or JSON, errors as one `error:` line on stderr."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tasks.render import dump_yaml, load_inputs, render_stack, write_private, write_rendered
from tasks.values import normalise_endpoint


def cmd_render(args: argparse.Namespace) -> int:
    from tasks.model import load_stack
    from tasks.nodegroup_plan import create_nodegroup_request

    stack = load_stack(args.config_dir, args.environment)
    endpoint = normalise_endpoint(args.endpoint) if args.endpoint else None
    rendered = render_stack(load_inputs(args.config_dir, stack), endpoint, require_endpoint=endpoint is not None)
    for f in rendered.warnings:
        print(f"warning: {f}", file=sys.stderr)
    if rendered.errors:
        for f in rendered.errors:
            print(f"error: {f}", file=sys.stderr)
        return 1
    request = create_nodegroup_request(
        rendered.nodegroup,
        stack.cluster.name,
        ["<private subnets of the cluster VPC>"],
        rendered.nodegroup.node_role or "<node role ARN>",
    )
    if args.out:
        paths = write_rendered(rendered, args.out)
        ng = args.out / "nodegroup-request.yaml"
        write_private(ng, dump_yaml(request))
        for p in [*paths.values(), ng]:
            print(p)
        return 0
    for name, values in rendered.values.items():
        rel = stack.releases[name]
        print(f"# --- release {name}: {rel.chart} {rel.version} in {rel.namespace} ({rel.values_file})")
        print(dump_yaml(values))
    print(f"# --- nodegroup {rendered.nodegroup.name}: EKS CreateNodegroup request (from {stack.nodegroup.file})")
    print(dump_yaml(request))
    return 0


def print_error(e: BaseException) -> int:
    """The one line an error prints; the exit code for it."""
    print(f"error: {e}", file=sys.stderr)
    return 1


def _print_json(result: dict[str, Any]) -> None:
    print(json.dumps(result, indent=2, default=str))


def print_drift(result: dict[str, Any], output: str) -> None:
    if output == "json":
        _print_json(result)
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
    if not s["clean"]:
        print(s["sentence"])


def print_upgrade(result: dict[str, Any], output: str) -> None:
    if output == "json":
        _print_json(result)
        return
    suffix = " - dry run, nothing changed" if result.get("dry_run") else ""
    print(f"Upgrade plan for {result['cluster']} ({result['region']}){suffix}:")
    for i, h in enumerate(result["plan"]["hops"], 1):
        prepull = ", pre-pull images first" if h["prepull"] else ""
        print(f"  {i}. {h['release']:<18} {h['from'] or 'not installed':>14} -> {h['to']:<10} {h['kind']}{prepull}")
    for hop in result.get("hops", []):
        for d in hop["done"]:
            print(f"  - {d}")
    if result.get("rolled_back"):
        print(f"ROLLED BACK: {result['rolled_back']['release']} (see the error below)")


def _print_plan(result: dict[str, Any]) -> None:
    print(
        f"Plan for {result['cluster']} ({result['region']}), endpoint {result['endpoint']} - dry run, nothing changed:"
    )
    for s in result["plan"]:
        print(f"  {s['action']:<10} {s['step']:<28} {s['command']}")
        for c in s["changes"]:
            print(f"             - {c}")


def print_result(result: dict[str, Any], output: str) -> None:
    from tasks.verify import Check, text_table

    if output == "json":
        _print_json(result)
        return
    if result.get("dry_run"):
        _print_plan(result)
        return
    checks = [Check(**c) for c in result["verification"]["checks"]]
    print(f"Verification of {result['cluster']} ({result['region']}):")
    print(text_table(checks))
    if result.get("error"):
        reached = result.get("not_reached") or []
        print("THE RUN STOPPED EARLY" + (f"; steps never reached: {', '.join(reached)}" if reached else ""))
    else:
        print("all checks passed" if result["ok"] else "SOME CHECKS FAILED")
