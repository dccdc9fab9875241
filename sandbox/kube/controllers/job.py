"""The Job controller: one Pod at a time until `completions` succeeded (Complete) or more than `backoffLimit`
failed (Failed)."""

from __future__ import annotations

import copy
from typing import Any

from sandbox.kube.controllers.base import K_JOB, K_POD, Controller, cond, pod_ready, suffix
from sandbox.kube.objects import Obj, set_status

FINISHED = ("Succeeded", "Failed")


def finished(job: Obj) -> bool:
    conds = {c["type"]: c for c in job.get("status", {}).get("conditions") or []}
    return any(conds.get(t, {}).get("status") == "True" for t in ("Complete", "Failed"))


def _phase_count(pods: list[Obj], phase: str) -> int:
    return sum(1 for p in pods if p.get("status", {}).get("phase") == phase)


class JobController(Controller):
    key = K_JOB

    def sync(self, job: Obj) -> None:
        if finished(job):
            return
        pods = self.ctx.owned(K_POD, job)
        spec = job["spec"]
        if spec.get("suspend"):
            return
        status = copy.deepcopy(job.get("status") or {})
        status.setdefault("startTime", self.ctx.clock.iso())
        succeeded, failed = _phase_count(pods, "Succeeded"), _phase_count(pods, "Failed")
        if succeeded >= int(spec.get("completions", 1)):
            self._complete(job, status, succeeded, failed)
        elif failed > int(spec.get("backoffLimit", 6)):
            self._fail(job, status, failed)
        else:
            self._run(job, status, pods, failed)

    def _terminal(self, types: tuple[str, str], reason: str, message: str) -> list[dict[str, Any]]:
        ts = self.ctx.clock.iso()
        return [cond(t, "True", reason, message, lastProbeTime=ts) for t in types]

    def _complete(self, job: Obj, status: dict[str, Any], succeeded: int, failed: int) -> None:
        conditions = self._terminal(
            ("SuccessCriteriaMet", "Complete"), "CompletionsReached", "Reached expected number of succeeded pods"
        )
        status.update(
            succeeded=succeeded,
            active=0,
            completionTime=conditions[0]["lastProbeTime"],
            ready=0,
            terminating=0,
            conditions=conditions,
        )
        if failed:
            status["failed"] = failed
        else:
            status.pop("failed", None)
        set_status(self.ctx.store, K_JOB, job, status)
        self.ctx.events.record(job, "Job", "Completed", "Job completed")

    def _fail(self, job: Obj, status: dict[str, Any], failed: int) -> None:
        message = "Job has reached the specified backoff limit"
        conditions = self._terminal(("FailureTarget", "Failed"), "BackoffLimitExceeded", message)
        status.update(failed=failed, active=0, conditions=conditions)
        set_status(self.ctx.store, K_JOB, job, status)
        self.ctx.events.record(job, "Job", "BackoffLimitExceeded", message, "Warning")

    def _run(self, job: Obj, status: dict[str, Any], pods: list[Obj], failed: int) -> None:
        active = [p for p in pods if p.get("status", {}).get("phase") not in FINISHED]
        if not active:
            name = f"{job['metadata']['name']}-{suffix()}"
            self.ctx.new_pod(job["spec"]["template"], job, ("batch/v1", "Job"), name)
            active = self.ctx.owned(K_POD, job)
        status.update(active=len(active), ready=sum(1 for p in active if pod_ready(p)), terminating=0)
        if failed:
            status["failed"] = failed
        set_status(self.ctx.store, K_JOB, job, status)
