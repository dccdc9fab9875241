"""The `eks-cilium` command line: render, install, drift and the local sandbox.

Thin: argument parsing (parser) and printing (render). Every decision lives in tasks/, every run in flows/.
Modules: parser (every sub-command and option), render (`render`, text/JSON output), runs (`install`, `drift`,
`unlock`), sandbox (`sandbox ...`, `--sandbox`; the only importer of the sandbox), interrupt (Ctrl-C, SIGTERM).
Exit codes: 0 success, 1 error, 2 usage error, 3 drift found.
"""

from __future__ import annotations

import os

from flows.cli.parser import build_parser
from flows.cli.render import print_error
from tasks.errors import EksCiliumError

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    # Prefect's temporary server would try to send telemetry; keep it quiet unless the user decided otherwise.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The temporary server gets 20 s to start by default; the first start after a fresh setup, or on a busy 2-core
    # machine, was measured to take longer (the README's demo command then failed). Give it 90 s.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    # The temporary server shares our stderr; its shutdown errors (a Ctrl-C reaches it too) are not the user's
    # business and would bury the one line an interrupt prints. The run's own logs are unaffected.
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except EksCiliumError as e:
        return print_error(e)
    except BrokenPipeError:  # e.g. `eks-cilium render | head`
        return 0
    except KeyboardInterrupt:
        import sys

        print("interrupted", file=sys.stderr)
        return 130
