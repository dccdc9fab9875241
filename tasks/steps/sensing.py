"""One bounded `wait_until` for every sensor: deadline, interval, progress callbacks, and on timeout the last
observed state plus a diagnosis (which objects, which pods, their reasons, recent events) - never just
"timed out". Transient errors while polling are tolerated until the deadline."""

from __future__ import annotations

import time
from collections.abc import Callable

from tasks.errors import EksCiliumError, PermanentError, SensorTimeout
from tasks.readiness import Verdict

Probe = Callable[[], Verdict]


def wait_until(
    probe: Probe,
    *,
    what: str,
    timeout: float,
    interval: float,
    hint: str,
    diagnose: Callable[[], list[str]] | None = None,
    on_progress: Callable[[Verdict, float], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Verdict:
    """Poll `probe` until it is ready (returned), terminally failed (PermanentError) or the deadline passes
    (SensorTimeout). `on_progress` is called whenever the observed summary changes."""
    start = clock()
    deadline = start + timeout
    last_summary = None
    verdict = Verdict(False, "not observed yet")
    while True:
        try:
            verdict = probe()
        except EksCiliumError as e:
            if not e.transient:
                raise
            verdict = Verdict(False, f"transient error while polling: {e.what}")
        if verdict.summary != last_summary and on_progress is not None:
            on_progress(verdict, clock() - start)
        last_summary = verdict.summary
        if verdict.ready:
            return verdict
        if verdict.failed:
            raise PermanentError(f"{what}: {verdict.summary}", observed=_observed(verdict, diagnose), hint=hint)
        now = clock()
        if now >= deadline:
            raise SensorTimeout(
                f"{what}: not ready after {timeout:.0f} s", observed=_observed(verdict, diagnose), hint=hint
            )
        sleep(max(0.0, min(interval, deadline - now)))


def _observed(verdict: Verdict, diagnose: Callable[[], list[str]] | None) -> str:
    lines = [f"last state: {verdict.summary}", *verdict.details]
    if diagnose is not None:
        try:
            lines += diagnose()
        except Exception as e:  # diagnosis is best effort: never hide the real failure behind it
            lines.append(f"(diagnosis failed: {e})")
    return "\n    " + "\n    ".join(lines)
