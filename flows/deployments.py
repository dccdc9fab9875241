"""Post-deploy step: make the deployments' parameter schemas refuse unknown top-level keys.

The Prefect API validates parameters against a deployment's schema, but the schema generated from a flow's
signature allows extra top-level keys; such a run is accepted and then crashes on the worker without naming the
key (shared/design.md section 4). Setting `additionalProperties: false` makes the API refuse the call at once,
naming the key. Run after `prefect deploy --all` (scripts/deploy does both).
"""

from __future__ import annotations

import sys
from typing import Any

PROJECT_FLOWS = ("install-stack", "check-drift", "fleet", "upgrade-stack", "teardown-stack")


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "additionalProperties": False}


def tighten(flow_names: tuple[str, ...] = PROJECT_FLOWS) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import DeploymentUpdate
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    done = []
    with get_client(sync_client=True) as client:
        for dep in client.read_deployments(flow_filter=FlowFilter(name=FlowFilterName(any_=list(flow_names)))):
            schema = dep.parameter_openapi_schema or {}
            if schema.get("additionalProperties") is False:
                continue
            client.update_deployment(
                dep.id, DeploymentUpdate(parameter_openapi_schema=strict_schema(schema), enforce_parameter_schema=True)
            )
            done.append(dep.name)
    return done


def main() -> int:
    names = tighten()
    print(f"strict parameter schemas: {', '.join(names) if names else 'already strict'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
