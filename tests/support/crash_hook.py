"""The crash tests' fault injection: with EKS_CILIUM_CRASH_AFTER_STEP=<step name> in the environment, the process
is SIGKILLed right after that step's work is done and before Prefect records it - the worst moment.

Product code only offers the hook point (tasks.steps.runtime.AFTER_STEP_HOOKS); the run under test calls install().
"""

from __future__ import annotations

import os
import signal

from prefect import get_run_logger

from tasks.steps.runtime import AFTER_STEP_HOOKS

CRASH_AFTER_STEP = "EKS_CILIUM_CRASH_AFTER_STEP"


def crash_after(name: str) -> None:
    if os.environ.get(CRASH_AFTER_STEP) == name:
        get_run_logger().warning("fault injection (%s): killing this process after step %s", CRASH_AFTER_STEP, name)
        os.kill(os.getpid(), signal.SIGKILL)


def install() -> None:
    if crash_after not in AFTER_STEP_HOOKS:
        AFTER_STEP_HOOKS.append(crash_after)
