"""Flow `fleet`: run check-drift (or repair, or install) for many clusters as separate deployment runs, so that
every worker of the pool shares the load, with a cap on how many run at once; then one summary table."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, cast

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.runtime import flow_run
from pydantic import BaseModel, ConfigDict, Field

from tasks.model import Stack
from tasks.names import DRIFTED_STATE
from tasks.options import RunOptions
from tasks.steps.threads import map_in_threads


class FleetAction(StrEnum):
    check_drift = "check-drift"
    repair = "repair"
    install = "install"


DEPLOYMENTS = {
    FleetAction.check_drift: "check-drift/check-drift",
    FleetAction.repair: "check-drift/repair-drift",
    FleetAction.install: "install-stack/install-stack",
}


class FleetMember(BaseModel):
    """One cluster of the fleet: its stack (or configs + environment through options)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stack: Stack | None = Field(
        default=None, description="The cluster's stack; null = configs/stack.yaml with options.environment."
    )
    options: RunOptions = Field(default_factory=RunOptions, description="Run options for this cluster.")


def member_parameters(member: FleetMember, action: FleetAction) -> dict[str, Any]:
    params: dict[str, Any] = {"options": member.options.model_dump(mode="json")}
    if member.stack is not None:
        params["stack"] = member.stack.model_dump(mode="json")
    if action is FleetAction.check_drift:
        params["fail_on_drift"] = True  # a drifted cluster shows as a failed child run with the drift summary
    return params


def member_name(member: FleetMember) -> str:
    if member.stack is not None:
        return f"{member.stack.cluster.region}/{member.stack.cluster.name}"
    return f"configs ({member.options.environment or 'base'})"


def classify(state_type: str, state_name: str) -> str:
    """ok / drifted / error from a child run's final state: check-drift names its state `Drifted` when the report
    is not clean (failed with fail_on_drift, completed otherwise)."""
    if state_name == DRIFTED_STATE:
        return "drifted"
    return "ok" if state_type == "COMPLETED" else "error"


API_ATTEMPTS = 4
API_RETRY_SECONDS = (2, 5, 15)
SUBMISSIONS = 3  # runs per member when the worker could not start the previous one


# What Prefect's workers write on a run they crash before its process runs: the worker's own submission failed
# (e.g. a 503 while it labels the run) or the process could not be spawned.
NEVER_STARTED = ("Failed to submit flow run to infrastructure", "Flow run could not start")


def never_started(state_type: str, message: str) -> bool:
    """A run the worker crashed before its process started: none of the flow's code ran."""
    return state_type == "CRASHED" and message.startswith(NEVER_STARTED)


def transient_api_error(e: BaseException) -> bool:
    """A Prefect API error worth retrying: the server is busy or briefly unreachable."""
    import httpx
    from prefect.exceptions import PrefectHTTPStatusError

    if isinstance(e, PrefectHTTPStatusError):
        return e.response.status_code in (408, 429, 500, 502, 503, 504)
    return isinstance(e, httpx.TransportError)


@dataclass(frozen=True)
class FleetRun:
    """What every member's submission shares: the deployment, its parameters' action and this run's id."""

    deployment: str
    action: FleetAction
    timeout_seconds: int
    run_id: str

    def submit(self, member: FleetMember, key: str) -> FlowRun:
        """The member's finished deployment run; raises once the Prefect API stayed unusable."""
        # One member's trouble with the Prefect API (a busy server answering 503) must not sink the others: retry
        # with an idempotency key (a retry finds the run the failed call may have created, never a second one).
        for attempt in range(API_ATTEMPTS):
            try:
                run = run_deployment(
                    self.deployment,
                    parameters=member_parameters(member, self.action),
                    timeout=self.timeout_seconds,
                    as_subflow=True,
                    idempotency_key=key,
                )
                return cast(FlowRun, run)  # run_deployment is sync-compatible: called from sync code it returns the run
            except Exception as e:
                if attempt + 1 == API_ATTEMPTS or not transient_api_error(e):
                    raise
                get_run_logger().warning(
                    "%s: Prefect API error (%s); retrying in %d s", member_name(member), e, API_RETRY_SECONDS[attempt]
                )
                time.sleep(API_RETRY_SECONDS[attempt])
        raise AssertionError("unreachable: the last attempt returns or raises")

    def run_member(self, index: int, member: FleetMember) -> dict[str, Any]:
        """One summary row: the member's run to its end, resubmitted when the worker never started it."""
        t0 = time.monotonic()
        notes = ""
        cluster = member_name(member)
        for submission in range(SUBMISSIONS):
            key = f"fleet:{self.run_id}:{index}:{cluster}" + (f":resubmit-{submission}" if submission else "")
            try:
                run = self.submit(member, key)
            except Exception as e:
                message = f"could not run {self.deployment}: {e}"[:300]
                return _row(cluster, "-", "NOT_STARTED", "error", t0, message)
            state = run.state
            state_type = state.type.value if state else "UNKNOWN"
            message = (state.message or "") if state else ""
            if not never_started(state_type, message) or submission + 1 == SUBMISSIONS:
                break
            # The worker could not start the run's process (e.g. the API answered 503 while it labelled the run):
            # none of the flow's code ran, so a fresh run is safe whatever the action.
            get_run_logger().warning(
                "%s: run %s never started (%s); submitting a new run", cluster, run.name, message[:200]
            )
            notes += f"resubmitted after {run.name} never started; "
        result = classify(state_type, (state.name or "") if state else "")
        return _row(cluster, run.name, state_type, result, t0, notes + message)


def _row(cluster: str, run: str, state: str, result: str, t0: float, message: str) -> dict[str, Any]:
    return {
        "cluster": cluster,
        "run": run,
        "state": state,
        "result": result,
        "seconds": round(time.monotonic() - t0, 1),
        "message": message[:300],
    }


@flow(name="fleet", log_prints=False, validate_parameters=True)
def fleet(
    members: list[FleetMember],
    action: FleetAction = FleetAction.check_drift,
    max_concurrent: int = 10,
    timeout_seconds: int = 7200,
    deployment: str | None = None,
) -> dict[str, Any]:
    """Run `action` for every member as its own deployment run, at most `max_concurrent` at a time."""
    logger = get_run_logger()
    if max_concurrent < 1:
        raise ValueError("max_concurrent must be at least 1")
    start = time.monotonic()
    run = FleetRun(deployment or DEPLOYMENTS[action], action, timeout_seconds, flow_run.get_id() or uuid.uuid4().hex)
    # Threads keep this run's context: the children are created as its subflows.
    rows = map_in_threads(
        lambda item: run.run_member(*item), list(enumerate(members)), max_workers=max_concurrent, name="fleet"
    )
    counts = {k: sum(1 for r in rows if r["result"] == k) for k in ("ok", "drifted", "error")}
    create_table_artifact(
        table=rows, key="fleet-summary", description=f"{action.value} for {len(rows)} cluster(s): {counts}"
    )
    for r in rows:
        (logger.info if r["result"] == "ok" else logger.warning)(
            "%s: %s (%s, %.1f s) %s", r["cluster"], r["result"], r["run"], r["seconds"], r["message"]
        )
    return {
        "action": action.value,
        "deployment": run.deployment,
        "rows": rows,
        "counts": counts,
        "seconds": round(time.monotonic() - start, 1),
    }
