"""Cluster access (pure): the kubeconfig helm, kubectl and the kubernetes client share.

Its user is an exec credential plugin of this project (tasks.adapters.eks_token), so tokens are minted on
demand and refreshed by the clients themselves; no token is ever written to disk or logged.
"""

from __future__ import annotations

import sys
from typing import Any


def exec_kubeconfig(
    cluster: str, region: str, endpoint: str, ca_data: str, python: str = sys.executable, cache_dir: str | None = None
) -> dict[str, Any]:
    """kubeconfig for an EKS cluster; `ca_data` is the base64 PEM from DescribeCluster; `cache_dir` (the run's
    private directory) lets the plugin reuse a credential until it nearly expires."""
    args = ["-m", "tasks.adapters.eks_token", "--cluster", cluster, "--region", region]
    if cache_dir:
        args += ["--cache", cache_dir]
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": python,
            "args": args,
            "interactiveMode": "Never",
            "provideClusterInfo": False,
        }
    }
    name = f"eks-{region}-{cluster}"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": name,
        "preferences": {},
        "clusters": [
            {"name": name, "cluster": {"server": endpoint.rstrip("/"), "certificate-authority-data": ca_data}}
        ],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
    }
