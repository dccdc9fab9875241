"""Run options of the flows (the part of the Prefect form that is not the stack itself)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class NodegroupMethod(StrEnum):
    native = "native"
    eksctl = "eksctl"


class Timeouts(BaseModel):
    """Deadlines of the sensors, in seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint: int = Field(default=1200, ge=1, le=7200, description="EKS cluster ACTIVE with an endpoint.")
    cilium_objects: int = Field(
        default=300, ge=1, le=7200, description="Cilium DaemonSet and ConfigMap created by helm."
    )
    nodegroup: int = Field(default=1800, ge=1, le=7200, description="Nodegroup ACTIVE (EKS takes 5-10 minutes).")
    nodes: int = Field(default=900, ge=1, le=7200, description="All nodes of the nodegroup Ready.")
    job: int = Field(default=900, ge=1, le=7200, description="Hubble certificate Job complete.")
    rollout: int = Field(default=600, ge=1, le=7200, description="Each DaemonSet / Deployment rolled out.")


class RunOptions(BaseModel):
    """How to run: overlay, overrides, dry run, sensor deadlines."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    config_dir: str = Field(
        default="configs",
        min_length=1,
        pattern=r"^[^\x00\n]+$",
        description="Directory with stack.yaml and the values files (relative to the project).",
    )
    # A plain string (empty = no overlay) rather than `str | None`: an anyOf schema makes the UI and API answer
    # "is not valid under any of the given schemas" instead of naming the pattern the value breaks.
    environment: str = Field(
        default="",
        pattern=r"^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="Overlay configs/environments/NAME.yaml: lower-case letters, digits and '-'; "
        "empty = none (used when no stack is given).",
    )
    values_overrides: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per release name, values deep-merged over the values file (null removes a key).",
    )
    dry_run: bool = Field(default=False, description="Discover, preflight, render and report the plan; change nothing.")
    nodegroup_method: NodegroupMethod = Field(
        default=NodegroupMethod.native,
        description="native = EKS CreateNodegroup API; eksctl = `eksctl create nodegroup -f`.",
    )
    timeouts: Timeouts = Field(default_factory=Timeouts, description="Sensor deadlines.")
    poll_interval_seconds: float = Field(default=0.5, ge=0.05, le=60, description="How often sensors poll.")
    recover_pending: bool = Field(
        default=True,
        description="Recover releases an interrupted or failed run left pending-* (rollback to the last "
        "deployed revision) or failed (upgrade over it), or uninstall them when they never "
        "deployed, instead of stopping at preflight.",
    )
    lock_wait_seconds: float = Field(
        default=600,
        ge=0,
        le=86400,
        description="How long a mutating run waits for another run on the same cluster to finish.",
    )

    @field_validator("environment", mode="before")
    @classmethod
    def _no_environment(cls, value: Any) -> Any:
        # Python callers (the CLI, fleet members built in code) pass None for "no overlay".
        return "" if value is None else value


# The flows' default. A non-optional default (rather than `RunOptions | None`) gives the deployment schema a plain
# $ref, so the Prefect UI and API name the offending field (`options.environment ...`) instead of reporting that
# the whole object "is not valid under any of the given schemas". RunOptions is frozen, so sharing it is safe.
DEFAULT_OPTIONS = RunOptions()


class DriftMode(StrEnum):
    report = "report"
    repair = "repair"
