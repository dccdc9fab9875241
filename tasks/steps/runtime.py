"""How steps run: the task and sensor decorators (uncached, transient-only retries), the run context every
step shares, sensors' progress, and the run's private directory from start to cleanup.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from prefect import Task, get_run_logger
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State

from tasks.adapters.aws import Aws
from tasks.adapters.helm import Helm
from tasks.adapters.kube import Kube
from tasks.errors import (
    EksCiliumError,
)
from tasks.model import Stack
from tasks.options import RunOptions
from tasks.readiness import Verdict
from tasks.render import private_dir
from tasks.steps.sensing import wait_until

P = ParamSpec("P")
R = TypeVar("R")

# Called with the step's name after its work is done and before Prefect records it: the crash tests SIGKILL the
# process here, the worst moment (tests/support/crash_hook.py). Empty in every real run.
AFTER_STEP_HOOKS: list[Callable[[str], None]] = []


def retry_transient(task: object, task_run: object, state: State[Any]) -> bool:
    """retry_condition_fn: retry only errors we classified as transient."""
    try:
        state.result()
    except EksCiliumError as e:
        return e.transient
    except Exception:
        return False
    return False


def _with_hooks(name: str, fn: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(fn)
    def run_step(*args: P.args, **kwargs: P.kwargs) -> R:
        result = fn(*args, **kwargs)
        for hook in AFTER_STEP_HOOKS:
            hook(name)
        return result

    return run_step


def step(name: str) -> Callable[[Callable[P, R]], Task[P, R]]:
    """A task that touches AWS or the cluster: uncached, retried on transient errors only."""

    def make(fn: Callable[P, R]) -> Task[P, R]:
        return Task(
            _with_hooks(name, fn),
            name=name,
            retries=3,
            retry_delay_seconds=[1, 3, 10],
            retry_condition_fn=retry_transient,
            cache_policy=NO_CACHE,
        )

    return make


def sensor(name: str) -> Callable[[Callable[P, R]], Task[P, R]]:
    """A polling task: uncached, no retries (it enforces its own deadline and tolerates transient errors)."""

    def make(fn: Callable[P, R]) -> Task[P, R]:
        return Task(_with_hooks(name, fn), name=name, cache_policy=NO_CACHE)

    return make


@dataclass
class RunContext:
    """What the steps share: the validated stack, where files live, how to reach the cluster."""

    stack: Stack
    options: RunOptions
    config_dir: Path
    workdir: Path
    helm_binary: str
    helm_env: dict[str, str] = field(default_factory=dict)
    helm_major: int = 3

    # Files the steps write live at fixed places in the run's private directory, so no task needs to hand
    # state to another through a mutated object (tasks run in threads and may see copies of this context).
    @property
    def kubeconfig(self) -> str:
        return str(self.workdir / "kubeconfig")

    def values_file(self, release: str) -> str:
        return str(self.workdir / f"{release}-values.yaml")

    def timeline(self) -> list[dict[str, Any]]:
        path = self.workdir / "timeline.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def helm(self, redact: tuple[str, ...] = ()) -> Helm:
        return Helm(self.helm_binary, self.helm_env, redact, scope=str(self.workdir))

    def aws(self) -> Aws:
        return Aws(self.stack.cluster.region)

    def kube(self) -> Kube:
        return Kube.shared(self.kubeconfig)

    def mark(self, step: str, event: str) -> None:
        with (self.workdir / "timeline.jsonl").open("a") as fh:
            fh.write(json.dumps({"step": step, "event": event, "t": time.time()}) + "\n")


def _progress(what: str) -> Any:
    """A progress artifact plus a logger callback for wait_until."""
    from prefect.artifacts import create_progress_artifact, update_progress_artifact

    logger = get_run_logger()
    try:
        artifact_id = create_progress_artifact(progress=0.0, description=what)
    except Exception:  # artifacts are a convenience; the sensor works without them
        artifact_id = None

    def on_progress(v: Verdict, elapsed: float) -> None:
        logger.info("%s: %s (%.1f s)", what, v.summary, elapsed)
        if isinstance(artifact_id, uuid.UUID):
            with contextlib.suppress(Exception):
                update_progress_artifact(
                    artifact_id=artifact_id, progress=100.0 if v.ready else min(95.0, 5.0 + elapsed)
                )

    return on_progress


def sense(ctx: RunContext, what: str, probe: Any, timeout: int, hint: str, diagnose: Any = None) -> Verdict:
    ctx.mark(what, "start")
    v = wait_until(
        probe,
        what=what,
        timeout=timeout,
        interval=ctx.options.poll_interval_seconds,
        hint=hint,
        diagnose=diagnose,
        on_progress=_progress(what),
    )
    ctx.mark(what, "done")
    return v


def prepare_context(stack: Stack, options: RunOptions, project_root: Path) -> RunContext:
    from tasks.adapters.helm import find_helm

    config_dir = Path(options.config_dir)
    if not config_dir.is_absolute():
        config_dir = project_root / config_dir
    workdir = private_dir()
    # helm's repository list lives in the run's private directory: repository credentials never land in the
    # user's helm configuration and are removed with the directory; the user's own repositories stay untouched.
    env = {
        **{k: v for k, v in os.environ.items() if k.startswith("HELM_")},
        "HELM_REPOSITORY_CONFIG": str(workdir / "helm-repositories.yaml"),
        "HELM_REPOSITORY_CACHE": str(workdir / "helm-repository-cache"),
    }
    helm = Helm(find_helm(), env)
    major = helm.check_version()[0]
    return RunContext(
        stack=stack,
        options=options,
        config_dir=config_dir,
        workdir=workdir,
        helm_binary=helm.binary,
        helm_env=env,
        helm_major=major,
    )


def artifact_key(prefix: str, cluster: str) -> str:
    import re

    return re.sub(r"[^a-z0-9-]+", "-", f"{prefix}-{cluster}".lower()).strip("-")[:100]


def cleanup_context(ctx: RunContext) -> None:
    """Remove the run's private directory (kubeconfig, rendered values, cached credential) and its client."""
    Kube.forget(ctx.kubeconfig)
    shutil.rmtree(ctx.workdir, ignore_errors=True)
