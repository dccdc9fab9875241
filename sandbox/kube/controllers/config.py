"""What the simulation is told: delays, pod faults, the nodegroups."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class PodFaultMode(StrEnum):
    CRASHLOOP = "crashloop"  # scheduled and started, then CrashLoopBackOff with growing restart counts
    PENDING = "pending"  # never scheduled: Unschedulable with the policy's message


@dataclass
class PodPolicy:
    """Fault injection for pods: those matching `selector` (and `namespace`) crash-loop or stay Pending."""

    selector: dict[str, str]
    mode: PodFaultMode
    namespace: str | None = None
    message: str = "injected fault"
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def __post_init__(self) -> None:
        self.mode = PodFaultMode(self.mode)  # "crashloop" and "pending" are accepted; anything else is a ValueError

    def matches(self, pod: dict[str, Any]) -> bool:
        labels = pod["metadata"].get("labels") or {}
        return self.namespace in (None, pod["metadata"].get("namespace")) and all(
            labels.get(k) == v for k, v in self.selector.items()
        )


@dataclass
class SimConfig:
    """Delays (seconds) that make the simulation realistic when asked; instant by default."""

    pod_start_seconds: tuple[float, float] = (0.0, 0.0)  # image pull + start, uniform in [min, max]
    # With a seed, a pod's pull time is a function of (seed, image, node) instead of a fresh draw: two runs of
    # different orchestrations see the same delays (the benchmarks compare them), as a real node would.
    pull_seed: int | None = None
    job_run_seconds: float = 0.0
    node_join_seconds: float = 0.0  # nodegroup created -> node objects registered
    node_ready_seconds: float = 0.0  # agent running -> node Ready
    pod_policies: list[PodPolicy] = field(default_factory=list)

    def policy_for(self, pod: dict[str, Any]) -> PodPolicy | None:
        return next((p for p in self.pod_policies if p.matches(pod)), None)


@dataclass
class NodegroupView:
    """What the emulator needs to know about one nodegroup of the cluster (from the AWS side)."""

    name: str
    desired: int
    instance_type: str
    labels: dict[str, str]
    taints: list[dict[str, str]]
    created_at: float
    zones: list[str] = field(default_factory=lambda: ["us-east-1a", "us-east-1b"])


NodegroupSource = Callable[[], list[NodegroupView]]
