"""The TTL-after-finished controller: a finished Job with `ttlSecondsAfterFinished` is deleted that long after
its completionTime."""

from __future__ import annotations

import calendar
import time

from sandbox.kube.controllers.base import K_JOB, Context


class TtlAfterFinishedController:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def reconcile(self) -> None:
        now = self.ctx.clock.time()
        for job in self.ctx.store.list(K_JOB):
            ttl = job.get("spec", {}).get("ttlSecondsAfterFinished")
            done = job.get("status", {}).get("completionTime")
            if ttl is None or not done:
                continue
            finished = calendar.timegm(time.strptime(done, "%Y-%m-%dT%H:%M:%SZ"))
            if now - finished >= ttl:
                self.ctx.delete(K_JOB, job)
            else:
                self.ctx.timers["ttl:" + job["metadata"]["uid"]] = self.ctx.clock.monotonic() + (finished + ttl - now)
