"""Rendering the whole stack: values files + nodegroup file -> per-release values, nodegroup plan, findings.

`load_inputs` reads the configs directory; `render_stack` is pure; `write_rendered` writes 0600 files into a
private directory (values may carry a license key or registry credentials).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tasks.errors import ConfigError
from tasks.merge import deep_merge
from tasks.model import Component, Stack, read_yaml
from tasks.nodegroup_plan import NodegroupPlan, plan_nodegroup
from tasks.values import (
    Endpoint,
    Finding,
    Severity,
    check_values,
    cluster_identity_findings,
    contains_placeholder,
    render_values,
)

DEFAULT_CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


@dataclass(frozen=True)
class StackInputs:
    """The files a stack refers to, read and parsed."""

    stack: Stack
    base_values: dict[str, dict[str, Any]]
    nodegroup_doc: dict[str, Any]


@dataclass(frozen=True)
class RenderedStack:
    stack: Stack
    values: dict[str, dict[str, Any]]
    nodegroup: NodegroupPlan
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.error]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.warning]


def load_inputs(config_dir: Path, stack: Stack) -> StackInputs:
    base: dict[str, dict[str, Any]] = {}
    for name, rel in stack.releases.items():
        data = read_yaml(config_dir / rel.values_file, f"values file of release {name!r}")
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(
                f"values file {config_dir / rel.values_file} (release {name!r}) must hold a mapping",
                observed=f"got {type(data).__name__}",
            )
        # The stack's own per-release values (an environment overlay's) go over the file's, before anything else.
        base[name] = deep_merge(data, rel.values) if rel.values else data
    ng = read_yaml(config_dir / stack.nodegroup.file, "nodegroup file")
    return StackInputs(stack=stack, base_values=base, nodegroup_doc=ng)


def validate_overrides(stack: Stack, overrides: Any) -> dict[str, dict[str, Any]]:
    """Overrides are {release name: {values...}}; unknown release names are rejected."""
    if overrides is None:
        return {}
    if not isinstance(overrides, dict):
        raise ConfigError(
            "values overrides must map release names to values",
            observed=f"got {type(overrides).__name__}",
            hint=f'e.g. {{"{stack.cilium[0]}": {{"debug": {{"enabled": true}}}}}}',
        )
    unknown = sorted(set(overrides) - set(stack.releases))
    if unknown:
        raise ConfigError(
            f"values overrides name unknown release(s): {', '.join(map(str, unknown))}",
            hint=f"use one of: {', '.join(stack.releases)}",
        )
    for name, ov in overrides.items():
        if ov is not None and not isinstance(ov, dict):
            raise ConfigError(
                f"values overrides for release {name!r} must be a mapping", observed=f"got {type(ov).__name__}"
            )
    return {k: v for k, v in overrides.items() if v}


def render_stack(
    inputs: StackInputs,
    endpoint: Endpoint | None,
    overrides: dict[str, dict[str, Any]] | None = None,
    *,
    require_endpoint: bool = True,
) -> RenderedStack:
    """Pure: values for every enabled release, the nodegroup plan and the cross-check findings."""
    stack = inputs.stack
    overrides = validate_overrides(stack, overrides)
    values = {}
    findings: list[Finding] = []
    for name, rel in stack.releases.items():
        if not rel.enabled:
            continue
        if rel.component is Component.cilium:
            findings += cluster_identity_findings(
                stack, name, rel.values_file, inputs.base_values[name], overrides.get(name)
            )
        values[name] = render_values(
            inputs.base_values[name],
            component=rel.component,
            endpoint=endpoint,
            cluster_name=stack.cluster.cilium_cluster_name,
            cluster_id=stack.cluster.id,
            overrides=overrides.get(name),
        )
    findings += check_values(stack, values)
    if not require_endpoint:
        findings = [f for f in findings if "placeholder" not in f.message]
    else:
        for name, v in values.items():
            if contains_placeholder(v) and not any(
                f.path.startswith(name + ".") and "placeholder" in f.message for f in findings
            ):
                findings.append(
                    Finding(
                        Severity.error,
                        name,
                        "values still hold the endpoint placeholder",
                        "render with the cluster endpoint",
                    )
                )
    plan = plan_nodegroup(inputs.nodegroup_doc, stack, str(stack.nodegroup.file))
    return RenderedStack(stack=stack, values=values, nodegroup=plan, findings=findings)


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True, width=1000)


def private_dir(prefix: str = "eks-cilium-") -> Path:
    """A fresh directory readable only by us (mkdtemp creates it 0700)."""
    return Path(tempfile.mkdtemp(prefix=prefix))


def write_private(path: Path, text: str) -> Path:
    """Write `text` to `path` with mode 0600 from the first byte (no window where others can read it)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)
    return path


def write_rendered(rendered: RenderedStack, out_dir: Path) -> dict[str, Path]:
    """Write each release's values as `<release>-values.yaml` plus `nodegroup-request.yaml`; all 0600."""
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    paths = {name: write_private(out_dir / f"{name}-values.yaml", dump_yaml(v)) for name, v in rendered.values.items()}
    return paths
