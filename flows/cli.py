"""The `eks-cilium` command line: render, install, drift and the local sandbox.

Thin: argument parsing and printing. Every decision lives in tasks/, every run in flows/.
Exit codes: 0 success, 1 error, 2 usage error, 3 drift found.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from tasks.errors import EksCiliumError
from tasks.render import DEFAULT_CONFIG_DIR, dump_yaml, load_inputs, render_stack, write_rendered
from tasks.values import normalise_endpoint


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
        from tasks.render import write_private

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eks-cilium", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("render", help="print or write the values files and the nodegroup request")
    _common(p)
    p.add_argument("--endpoint", help="cluster API endpoint (https://HOST); without it the placeholder stays")
    p.add_argument("--out", type=Path, help="write files (mode 0600) into this directory instead of printing")
    p.set_defaults(func=cmd_render)

    from flows import cli_more

    cli_more.register(sub, _common)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Prefect's temporary server would try to send telemetry; keep it quiet unless the user decided otherwise.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The temporary server gets 20 s to start by default; the first start after a fresh setup, or on a busy 2-core
    # machine, was measured to take longer (the README's demo command then failed). Give it 90 s.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    # The temporary server shares our stderr; its shutdown errors (a Ctrl-C reaches it too) are not the user's
    # business and would bury the one line an interrupt prints. The run's own logs are unaffected.
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except EksCiliumError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. `eks-cilium render | head`
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def to_json(obj: object) -> str:
    return json.dumps(asdict(obj) if hasattr(obj, "__dataclass_fields__") else obj, indent=2, default=str)  # type: ignore[call-overload]


if __name__ == "__main__":
    sys.exit(main())
