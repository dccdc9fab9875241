"""The stack model: a strict, frozen description of cluster, chart repository, releases and nodegroup.

It is both what `configs/stack.yaml` is parsed into and the flow parameter the Prefect UI renders as a form,
so every field carries a description. Names that reach helm, kubectl or AWS are validated here, before
anything runs (no leading dashes, Kubernetes name rules, semantic versions).
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tasks.errors import ConfigError
from tasks.merge import deep_merge
from tasks.yaml_files import load_yaml_text, read_yaml

__all__ = ["load_yaml_text", "read_yaml"]  # the stack's loaders use them; callers import them from here

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
SEMVER = r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$"
# Label keys: optional DNS-subdomain prefix and a name of alphanumerics, '-', '_', '.'.
LABEL_KEY = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"  # optional DNS-subdomain prefix
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$"
# The form of a region name; whether the region exists is checked against botocore's data (adapters.aws.check_region).
AWS_REGION = r"^[a-z]{2,4}(-[a-z]+){1,3}-\d{1,2}$"
# Cilium's own rule for cluster.name (its chart's templates/validate.yaml; at most 32 characters).
CILIUM_CLUSTER_NAME = r"^([a-z0-9][-a-z0-9]*)?[a-z0-9]$"
EKS_CLUSTER_NAME = r"^[0-9A-Za-z][A-Za-z0-9\-_]{0,99}$"
# A chart reference: repo/name, oci://registry/path, or a local path / tarball.
CHART_REF = r"^(oci://[A-Za-z0-9.\-:]+(/[A-Za-z0-9._\-]+)+|[a-z0-9][a-z0-9\-]*/[a-z0-9][a-z0-9\-_.]*|\.{0,2}/[A-Za-z0-9._/\-]+)$"
FILE_NAME = r"^[A-Za-z0-9_][A-Za-z0-9._/\-]*$"


class Strict(BaseModel):
    """Frozen, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Component(StrEnum):
    """What a release is, independent of the name it is installed under."""

    cilium = "cilium"
    tetragon = "tetragon"
    dnsproxy = "dnsproxy"


class WorkloadKind(StrEnum):
    DaemonSet = "DaemonSet"
    Deployment = "Deployment"
    Job = "Job"
    StatefulSet = "StatefulSet"


class TaintEffect(StrEnum):
    NO_SCHEDULE = "NO_SCHEDULE"
    NO_EXECUTE = "NO_EXECUTE"
    PREFER_NO_SCHEDULE = "PREFER_NO_SCHEDULE"


LabelMap = dict[Annotated[str, Field(pattern=LABEL_KEY)], Annotated[str, Field(pattern=LABEL_VALUE)]]


class Workload(Strict):
    """A Kubernetes object whose readiness proves a release healthy."""

    role: str = Field(
        pattern=r"^[a-z][a-z0-9-]*$",
        description="What the object is for the checks: agent, envoy, operator, relay, timescape, certs, dnsproxy.",
    )
    kind: WorkloadKind = Field(description="Object kind; readiness follows `kubectl rollout status` for it.")
    name: str = Field(pattern=DNS_SUBDOMAIN, max_length=253, description="Object name.")
    namespace: str | None = Field(
        default=None, pattern=DNS_LABEL, max_length=63, description="Namespace; the release's when empty."
    )
    selector: LabelMap = Field(description="Labels of its pods (used for diagnostics and per-node checks).")
    per_node: bool = Field(default=False, description="One pod per node is expected (DaemonSets).")


GLOB = r"^[A-Za-z0-9.\-_*?\[\]]*$"


class DriftTarget(Strict):
    """Which of the release's objects an ignore rule applies to (globs; empty selects every object)."""

    kind: str = Field(default="", pattern=GLOB, description="Object kind, e.g. Deployment (glob).")
    namespace: str = Field(default="", pattern=GLOB, description="Namespace (glob); empty for any.")
    name: str = Field(default="", pattern=GLOB, description="Object name (glob), e.g. hubble-*.")


class DriftIgnore(Strict):
    """Fields object drift leaves out, Flux's `driftDetection.ignore` shape."""

    paths: list[Annotated[str, Field(pattern=r"^(/[^/]+)+$")]] = Field(
        min_length=1, description="JSON pointers (RFC 6901), e.g. /spec/replicas or /data/ca.crt (~1 for '/')."
    )
    target: DriftTarget = Field(default_factory=DriftTarget, description="The objects the paths apply to.")
    reason: str = Field(default="", max_length=200, description="Why (shown in the drift report's notes).")


class Release(Strict):
    """One helm release of the stack."""

    component: Component = Field(description="Which part of the stack this release is.")
    chart: str = Field(
        pattern=CHART_REF,
        description="Chart reference: REPO/NAME (REPO = chart_repository.name), oci://REGISTRY/PATH, or a local path.",
    )
    version: str = Field(pattern=SEMVER, description="Chart version (semantic version), e.g. 1.18.4.")
    namespace: str = Field(pattern=DNS_LABEL, max_length=63, description="Namespace the release is installed in.")
    create_namespace: bool = Field(default=False, description="Pass --create-namespace to helm.")
    values_file: str = Field(pattern=FILE_NAME, description="Values file, relative to the configs directory.")
    values: dict[str, Any] = Field(
        default_factory=dict,
        description="Merged over the values file's values (an environment's changes, e.g. the oss edition's): "
        "mappings merge, a list replaces the file's list, null removes the key.",
    )
    timeout_seconds: int = Field(
        ge=30, le=7200, description="helm --timeout for this release (hooks included), in seconds."
    )
    workloads: list[Workload] = Field(default_factory=list, description="Objects that prove the release healthy.")
    config_map: str | None = Field(
        default=None, pattern=DNS_SUBDOMAIN, description="ConfigMap whose existence shows the chart's objects applied."
    )
    service_monitors: list[Annotated[str, Field(pattern=DNS_SUBDOMAIN)]] = Field(
        default_factory=list, description="ServiceMonitors the release must create."
    )
    enabled: bool = Field(default=True, description="Install this release.")
    drift_ignore: list[DriftIgnore] = Field(
        default_factory=list,
        description="Object drift noise rules on top of the defaults (controller-written fields, restartedAt, "
        "HPA replicas, generated TLS Secrets, hook Jobs removed by their TTL).",
    )

    def workload(self, role: str) -> Workload | None:
        return next((w for w in self.workloads if w.role == role), None)


class ChartRepository(Strict):
    """The helm repository the REPO/NAME chart references point at."""

    name: str = Field(pattern=DNS_LABEL, max_length=63, description="Local repository name (helm repo add NAME).")
    url: str = Field(
        pattern=r"^(https?|oci)://[A-Za-z0-9.\-:\[\]]+(/[A-Za-z0-9._~\-/]*)?$", description="Repository URL."
    )
    credentials_secret_block: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9-]*$",
        description="Prefect Secret block with {'username','password'} for a private repository; loaded at run time.",
    )


class Cluster(Strict):
    """The EKS cluster the stack is installed into, and its identity in Cilium (cluster.name / cluster.id)."""

    name: str = Field(
        pattern=EKS_CLUSTER_NAME, description="EKS cluster name; also Cilium's cluster.name unless cilium_name is set."
    )
    region: str = Field(pattern=AWS_REGION, description="AWS region, e.g. us-east-1.")
    id: int = Field(
        default=0,
        ge=0,
        le=511,
        description="Cilium cluster.id: 0 outside a Cluster Mesh; 1..255 in one (1..511 when the Cilium values "
        "set clustermesh.maxConnectedClusters: 511). Unique per mesh.",
    )
    cilium_name: str | None = Field(
        default=None,
        pattern=CILIUM_CLUSTER_NAME,
        max_length=32,
        description="Cilium's cluster.name when the EKS name is not a valid one (at most 32 lower-case letters, digits "
        "and '-'); null = the EKS cluster name.",
    )

    @model_validator(mode="after")
    def _valid_cilium_identity(self) -> Cluster:
        # Cilium's chart refuses these names (templates/validate.yaml); say so before anything runs.
        if self.cilium_name is None and (len(self.name) > 32 or not re.match(CILIUM_CLUSTER_NAME, self.name)):
            raise ValueError(
                f"the EKS name {self.name!r} cannot be Cilium's cluster.name (at most 32 lower-case letters, "
                "digits and '-', starting and ending with a letter or digit): set cluster.cilium_name to one"
            )
        if self.cilium_cluster_name == "default" and self.id != 0:
            raise ValueError(
                f"Cilium refuses the cluster name 'default' with cluster.id {self.id}: set cluster.cilium_name"
            )
        return self

    @property
    def cilium_cluster_name(self) -> str:
        """The name Cilium knows the cluster by (cilium-config `cluster-name`)."""
        return self.cilium_name or self.name


class Taint(Strict):
    key: str = Field(pattern=LABEL_KEY, description="Taint key.")
    value: str = Field(default="", pattern=LABEL_VALUE, description="Taint value.")
    effect: TaintEffect = Field(description="Taint effect, in the EKS API's spelling.")


class Nodegroup(Strict):
    """How the runbook's eksctl nodegroup file maps onto the EKS CreateNodegroup API."""

    file: str = Field(pattern=FILE_NAME, description="eksctl ClusterConfig file, relative to the configs directory.")
    node_role: str | None = Field(
        default=None,
        pattern=r"^(arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+|[\w+=,.@-]{1,64})$",
        description="Node IAM role ARN or name; null = discover a role whose name contains the cluster and 'node'.",
    )
    disk_size_gib: int = Field(default=80, ge=20, le=16384, description="Root volume size when the file sets none.")
    ami_type: str = Field(
        default="AL2023_x86_64_STANDARD",
        pattern=r"^[A-Za-z0-9_]+$",
        description="EKS AMI type when the file sets none.",
    )
    taints: list[Taint] = Field(default_factory=list, description="Taints added to every node.")
    labels: LabelMap = Field(default_factory=dict, description="Labels added to every node.")


class Stack(Strict):
    """The whole stack: cluster, chart repository, releases (by release name) and nodegroup."""

    cluster: Cluster
    chart_repository: ChartRepository
    releases: dict[Annotated[str, Field(pattern=DNS_LABEL, max_length=53)], Release] = Field(
        description="Helm releases by release name, installed in the runbook's order."
    )
    nodegroup: Nodegroup

    @field_validator("releases")
    @classmethod
    def _one_release_per_component(cls, releases: dict[str, Release]) -> dict[str, Release]:
        seen: dict[Component, str] = {}
        for name, rel in releases.items():
            if rel.component in seen:
                raise ValueError(
                    f"releases {seen[rel.component]!r} and {name!r} are both component {rel.component.value!r}"
                )
            seen[rel.component] = name
        if Component.cilium not in seen:
            raise ValueError("a release with component 'cilium' is required (the CNI must be installed first)")
        return releases

    @model_validator(mode="after")
    def _charts_use_the_repository(self) -> Stack:
        for name, rel in self.releases.items():
            # A disabled release is never fetched: an edition without it (oss) need not rename its chart.
            if rel.enabled and "/" in rel.chart and not rel.chart.startswith(("oci://", "/", "./", "../")):
                repo = rel.chart.split("/", 1)[0]
                if repo != self.chart_repository.name:
                    raise ValueError(
                        f"releases.{name}.chart {rel.chart!r} names repository {repo!r}, "
                        f"but chart_repository.name is {self.chart_repository.name!r}"
                    )
        return self

    def release_for(self, component: Component) -> tuple[str, Release] | None:
        return next(((n, r) for n, r in self.releases.items() if r.component is component), None)

    @property
    def cilium(self) -> tuple[str, Release]:
        found = self.release_for(Component.cilium)
        assert found is not None  # guaranteed by the validator
        return found


def format_validation_error(err: ValidationError, source: str) -> str:
    """One line per problem: `source: key.path: message (got VALUE)`."""
    lines = []
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check its spelling; see configs/stack.yaml for the keys that exist)"
        elif e["type"] == "string_pattern_mismatch":
            msg = f"does not match the expected form {e.get('ctx', {}).get('pattern', '')}"
        got = e.get("input")
        shown = "" if e["type"] in ("missing", "model_type") else f" (got {got!r})" if not isinstance(got, dict) else ""
        lines.append(f"{source}: {path}: {msg}{shown}")
    return "\n".join(lines)


def parse_stack(data: Any, source: str = "stack") -> Stack:
    """Validate a stack mapping; ConfigError lists every bad key path."""
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: expected a mapping at the top level",
            observed=f"got {type(data).__name__}",
            hint="start the file with keys such as cluster:, chart_repository:, releases:, nodegroup:",
        )
    try:
        return Stack.model_validate(data)
    except ValidationError as e:
        raise ConfigError(
            f"{source} is not a valid stack",
            observed="\n" + format_validation_error(e, source),
            hint="correct the keys listed above",
        ) from None


def load_stack_data(config_dir: Path, environment: str | None = None) -> dict[str, Any]:
    """stack.yaml deep-merged with environments/<environment>.yaml, unvalidated."""
    base = read_yaml(config_dir / "stack.yaml", "stack file")
    if not isinstance(base, dict):
        raise ConfigError(
            f"{config_dir / 'stack.yaml'}: expected a mapping at the top level",
            observed=f"got {type(base).__name__}",
            hint="see the README's Configuration section",
        )
    if environment:
        if not re.match(DNS_LABEL, environment):
            raise ConfigError(
                f"environment name {environment!r} is not valid",
                hint="use lower-case letters, digits and '-', matching configs/environments/<name>.yaml",
            )
        overlay_path = config_dir / "environments" / f"{environment}.yaml"
        if not overlay_path.exists():
            known = sorted(p.stem for p in (config_dir / "environments").glob("*.yaml"))
            raise ConfigError(
                f"environment {environment!r} has no overlay file {overlay_path}",
                observed=f"known environments: {', '.join(known) or 'none'}",
                hint="pick one of the known environments or create the overlay file",
            )
        overlay = read_yaml(overlay_path, "overlay") or {}
        if not isinstance(overlay, dict):
            raise ConfigError(
                f"{overlay_path}: expected a mapping",
                observed=f"got {type(overlay).__name__}",
                hint="an overlay holds the same keys as stack.yaml, only those that differ",
            )
        base = deep_merge(base, overlay)
    merged: dict[str, Any] = base  # a mapping merged over a mapping is one
    return merged


def load_stack(config_dir: Path, environment: str | None = None, patch: dict[str, Any] | None = None) -> Stack:
    """Load, overlay, patch and validate the stack. Every problem is a ConfigError naming the key path."""
    data = load_stack_data(config_dir, environment)
    source = str(config_dir / "stack.yaml") + (f" + environments/{environment}.yaml" if environment else "")
    if patch:
        data = deep_merge(data, patch)
        source += " + parameters"
    return parse_stack(data, source)
