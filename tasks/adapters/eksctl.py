"""eksctl adapter, for `nodegroup_method=eksctl` only: runs `eksctl create nodegroup -f FILE`."""

from __future__ import annotations

import shutil
import subprocess

from tasks.errors import CommandError, ToolError


def create_nodegroup_with_eksctl(config_file: str) -> None:
    eksctl = shutil.which("eksctl")
    if eksctl is None:
        raise ToolError("eksctl is not on PATH", hint="install eksctl or use nodegroup_method=native")
    argv = [eksctl, "create", "nodegroup", "-f", config_file]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise CommandError(
            "eksctl create nodegroup failed",
            argv=argv,
            returncode=proc.returncode,
            stderr=proc.stderr or proc.stdout,
            hint="read eksctl's message; CloudFormation events name the cause",
        )
