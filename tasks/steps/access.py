"""Reaching the cluster: validating the inputs, discovering the EKS endpoint (sensor), the exec kubeconfig, the
rendered values and the chart repository.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import yaml
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks import helm_argv, readiness
from tasks.access import exec_kubeconfig
from tasks.adapters.aws import check_region
from tasks.adapters.eks_token import cached_credential
from tasks.errors import (
    ConfigError,
    ToolError,
    TransientError,
)
from tasks.names import INSTALL_RECORD, KUBE_SYSTEM
from tasks.options import NodegroupMethod
from tasks.readiness import Verdict
from tasks.render import RenderedStack, dump_yaml, load_inputs, render_stack, write_private
from tasks.results import ClusterEndpoint
from tasks.steps.runtime import RunContext, sense, sensor, step
from tasks.upgrade_plan import upgrade_compatibility
from tasks.values import normalise_endpoint


@task(name="validate_stack", cache_policy=NO_CACHE)
def validate_stack(ctx: RunContext) -> RenderedStack:
    """Everything that can be checked without the cluster: region, files, overrides, cross-checks, nodegroup mapping."""
    check_region(ctx.stack.cluster.region)
    rendered = render_stack(
        load_inputs(ctx.config_dir, ctx.stack), None, ctx.options.values_overrides, require_endpoint=False
    )
    logger = get_run_logger()
    for w in rendered.warnings:
        logger.warning("values: %s", w)
    if rendered.errors:
        raise ConfigError(
            "the values do not pass the cross-checks",
            observed="\n    " + "\n    ".join(map(str, rendered.errors)),
            hint="fix the values files or the overrides as each line says",
        )
    if ctx.options.nodegroup_method is NodegroupMethod.eksctl and shutil.which("eksctl") is None:
        raise ToolError(
            "nodegroup_method=eksctl but eksctl is not on PATH", hint="install eksctl or use nodegroup_method=native"
        )
    return rendered


@sensor("discover_endpoint")
def discover_endpoint(ctx: RunContext) -> ClusterEndpoint:
    """Sensor: DescribeCluster until ACTIVE with an endpoint; FAILED/DELETING and unknown clusters fail fast."""
    aws = ctx.aws()
    name = ctx.stack.cluster.name
    seen: dict[str, Any] = {}

    def probe() -> Verdict:
        c = aws.describe_cluster(name)
        seen.update(c)
        return readiness.cluster(c)

    sense(
        ctx,
        f"EKS cluster {name} ACTIVE",
        probe,
        ctx.options.timeouts.endpoint,
        hint=f"check the cluster in the EKS console ({ctx.stack.cluster.region}); raise "
        "timeouts.endpoint if it is still being created",
    )
    return ClusterEndpoint.from_described(seen)


@step("prepare_cluster_access")
def prepare_cluster_access(ctx: RunContext, cluster: ClusterEndpoint) -> str:
    """A 0600 kubeconfig whose user is the EKS exec credential plugin; checks the API answers."""
    cfg = exec_kubeconfig(
        ctx.stack.cluster.name, ctx.stack.cluster.region, cluster.endpoint, cluster.ca, cache_dir=str(ctx.workdir)
    )
    path = write_private(Path(ctx.kubeconfig), yaml.safe_dump(cfg))
    # Mint the first token here, where boto3 is already loaded, into the plugin's cache: the plugin processes that
    # the kubernetes client, helm and kubectl start then find it (~50 ms) instead of importing boto3 (~1.5 s).
    cached_credential(ctx.workdir, ctx.stack.cluster.name, ctx.stack.cluster.region)
    with ctx.kube() as kube:
        v = kube.version()
    get_run_logger().info(
        "connected to %s (Kubernetes %s)", cluster.endpoint, v.get("git_version") or v.get("gitVersion")
    )
    return str(path)


def first_installed(ctx: RunContext, attempts: int = 4) -> dict[str, str]:
    """The chart version each release was first installed with, as the install recorded it in the cluster
    (render_values is not retried as a whole: this read retries its transient errors itself)."""
    for attempt in range(attempts):
        try:
            with ctx.kube() as kube:
                record = kube.get("ConfigMap", KUBE_SYSTEM, INSTALL_RECORD)
            return dict((record or {}).get("data") or {})
        except TransientError:
            if attempt == attempts - 1:
                raise
            time.sleep(1.0 + attempt)
    return {}


def apply_upgrade_compatibility(ctx: RunContext, rendered: RenderedStack, *, write: bool = True) -> str | None:
    """Cilium's upgrade guide: keep the defaults of the version first installed on this cluster (its recorded
    version), unless the values set `upgradeCompatibility` themselves. Rewrites the values file when `write`."""
    name, rel = ctx.stack.cilium
    if name not in rendered.values or "upgradeCompatibility" in rendered.values[name]:
        return None
    first = first_installed(ctx).get(name)
    compat = upgrade_compatibility(first, rel.version)
    if compat is not None:
        rendered.values[name] = {**rendered.values[name], "upgradeCompatibility": compat}
        get_run_logger().info("%s first installed at %s: upgradeCompatibility %s", name, first, compat)
        if write:
            write_private(Path(ctx.values_file(name)), dump_yaml(rendered.values[name]))
    return compat


@task(name="render_values", cache_policy=NO_CACHE)
def render_values(ctx: RunContext, cluster: ClusterEndpoint) -> RenderedStack:
    """Values with the discovered endpoint, written 0600 into the run's private directory."""
    rendered = render_stack(
        load_inputs(ctx.config_dir, ctx.stack), normalise_endpoint(cluster.endpoint), ctx.options.values_overrides
    )
    if rendered.errors:
        raise ConfigError(
            "the rendered values do not pass the cross-checks",
            observed="\n    " + "\n    ".join(map(str, rendered.errors)),
            hint="fix the values as each line says",
        )
    apply_upgrade_compatibility(ctx, rendered, write=False)
    for name, values in rendered.values.items():
        write_private(Path(ctx.values_file(name)), dump_yaml(values))
    get_run_logger().info("rendered values for %s (k8sServiceHost=%s)", ", ".join(rendered.values), cluster.host)
    return rendered


def _repo_credentials(ctx: RunContext) -> tuple[str | None, str | None]:
    block = ctx.stack.chart_repository.credentials_secret_block
    if not block:
        return None, None
    from prefect.blocks.system import Secret

    try:
        value: Any = Secret.load(block).get()  # type: ignore[union-attr]
    except ValueError as e:
        raise ConfigError(
            f"Prefect Secret block {block!r} could not be loaded",
            observed=str(e),
            hint=f"create it: Secret(value={{'username': ..., 'password': ...}}).save({block!r})",
        ) from None
    if not isinstance(value, dict) or not value.get("username") or not value.get("password"):
        raise ConfigError(
            f"Prefect Secret block {block!r} must hold {{'username': ..., 'password': ...}}",
            observed=f"it holds a {type(value).__name__}"
            + (f" with keys {sorted(value)}" if isinstance(value, dict) else ""),
        )
    return str(value["username"]), str(value["password"])


@step("add_chart_repository")
def add_chart_repository(ctx: RunContext) -> str:
    repo = ctx.stack.chart_repository
    user, password = _repo_credentials(ctx)
    helm = ctx.helm(redact=(password,) if password else ())
    helm.run(
        helm_argv.repo_add(ctx.helm_binary, repo.name, repo.url, username=user),
        what=f"add chart repository {repo.name}",
        stdin=password,
    )
    helm.run(helm_argv.repo_update(ctx.helm_binary, repo.name), what=f"update chart repository {repo.name}")
    get_run_logger().info("chart repository %s -> %s", repo.name, repo.url)
    return repo.url
