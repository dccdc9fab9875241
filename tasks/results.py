"""What steps hand each other (pure, frozen): the typed contracts between tasks. Each knows its JSON shape
(`as_dict`), which is what the flows return to the CLI, the Prefect API and the reports."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from tasks.names import DEPLOYED
from tasks.preflight import ReleaseState
from tasks.values import normalise_endpoint
from tasks.verify import Check


class ReleaseAction(StrEnum):
    """What `install_release` did to a release."""

    installed = "installed"
    upgraded = "upgraded"
    unchanged = "unchanged"


class NodegroupAction(StrEnum):
    """What a nodegroup step did (created, found it as desired, or set its scaling back)."""

    created = "created"
    unchanged = "unchanged"
    scaled = "scaled"


class PlanAction(StrEnum):
    """What a dry run says a step would do."""

    install = "install"
    upgrade = "upgrade"
    create = "create"
    unchanged = "unchanged"


def _plain(result: Any) -> dict[str, Any]:
    """A flat result's fields as JSON values (enums by their value)."""
    return {k: v.value if isinstance(v, StrEnum) else v for k, v in asdict(result).items()}


@dataclass(frozen=True)
class ClusterEndpoint:
    """The EKS cluster as DescribeCluster reports it once ACTIVE: where its API answers and its network."""

    endpoint: str
    host: str
    port: int
    ca: str
    subnets: tuple[str, ...] = ()
    vpc: str | None = None
    version: str | None = None

    @classmethod
    def from_described(cls, described: Mapping[str, Any]) -> ClusterEndpoint:
        vpc_config = described.get("resourcesVpcConfig") or {}
        parsed = normalise_endpoint(described["endpoint"])
        return cls(
            endpoint=described["endpoint"],
            host=parsed.host,
            port=parsed.port,
            ca=(described.get("certificateAuthority") or {}).get("data", ""),
            subnets=tuple(vpc_config.get("subnetIds") or ()),
            vpc=vpc_config.get("vpcId"),
            version=described.get("version"),
        )


@dataclass(frozen=True)
class PreflightResult:
    """What the install needs from a passed preflight."""

    nodegroup_request: dict[str, Any] | None  # CreateNodegroup's arguments (AWS's own shape), None = not needed
    nodegroup_exists: bool
    releases: dict[str, ReleaseState] = field(default_factory=dict)  # the stack's releases helm lists now


@dataclass(frozen=True)
class LiveRelease:
    """A deployed helm release: `helm get metadata` plus the user-supplied values (`helm get values`)."""

    status: str | None
    version: str | None
    revision: int | None
    config: dict[str, Any] = field(default_factory=dict)
    apply_method: str | None = None  # helm 4's record: "ssa" (server-side apply) or "csa"; helm 3 has none

    @property
    def deployed(self) -> bool:
        return self.status == DEPLOYED

    @property
    def server_side(self) -> bool:
        return self.apply_method == "ssa"

    def runs(self, version: str) -> bool:
        """Whether the release runs chart `version` (a leading v does not count)."""
        return str(self.version or "").lstrip("v") == version.lstrip("v")


@dataclass(frozen=True)
class ReleaseOutcome:
    release: str
    action: ReleaseAction
    revision: int | None
    version: str

    def as_dict(self) -> dict[str, Any]:
        return _plain(self)


@dataclass(frozen=True)
class NodegroupOutcome:
    nodegroup: str
    action: NodegroupAction
    status: str | None

    def as_dict(self) -> dict[str, Any]:
        return _plain(self)


@dataclass(frozen=True)
class CiliumObjects:
    """The Cilium objects helm applied before its install returns (what the nodegroup waits for)."""

    daemonset: str
    configmap: str
    seen_at: float  # time.time() when both existed


@dataclass(frozen=True)
class WorkloadOutcome:
    release: str
    role: str
    name: str
    summary: str


@dataclass(frozen=True)
class Verification:
    """The runbook's expected output, checked. A run that stopped early says why and which steps it never reached."""

    checks: tuple[Check, ...]
    stopped_by: str | None = None
    not_reached: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.stopped_by is None and all(c.ok for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checks": [asdict(c) for c in self.checks],
            "stopped_by": self.stopped_by,
            "not_reached": list(self.not_reached),
        }


@dataclass(frozen=True)
class PlanStep:
    """One step of a dry run's plan: what the install would do and the command it would run."""

    step: str
    action: PlanAction
    command: str
    changes: tuple[str, ...] = ()
    request: dict[str, Any] | None = None  # the nodegroup's CreateNodegroup arguments

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "step": self.step,
            "action": self.action.value,
            "command": self.command,
            "changes": list(self.changes),
        }
        if self.request is not None:  # only the nodegroup's step has one: release steps keep their old shape
            out["request"] = self.request
        return out
