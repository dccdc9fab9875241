"""What the programs in the containers do, simulated per container image: the kubelet runs the behaviour of
each container's image repository (read from the container's args and env, never from sandbox annotations),
so any chart that uses these images works the way it would on a real cluster.

- `quay.io/cilium/certgen`: writes the CA and certificate Secrets its arguments and config name (`certgen`).
- `quay.io/cilium/operator*`: registers the cilium.io CRDs and creates a CiliumNode per node (`operator`).
- `quay.io/cilium/cilium`: the agent lifts its node's `node.cilium.io/agent-not-ready` taint (`agent`); a node
  is Ready while a Ready agent Pod runs on it (`runs_agent`, read by the node lifecycle).
- `quay.io/cilium/tetragon-operator`: registers the TracingPolicy CRDs (`operator`).
- `KNOWN_IDLE` images just run; any other image runs too and is logged once (`Images.unknown`).

Isovalent's enterprise images (`quay.io/isovalent/<same name>`) behave as their open-source namesakes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sandbox.kube.images import agent, certgen, operator

if TYPE_CHECKING:
    from sandbox.kube.controllers.base import Context

Behaviour = Callable[["Context", dict[str, Any], dict[str, Any]], None]  # (ctx, pod, container)
LOG = logging.getLogger("sandbox.kube.images")

REGISTRIES = ("quay.io/cilium/", "quay.io/isovalent/")  # open source, enterprise: same names, same behaviour


def _both(table: dict[str, Behaviour]) -> dict[str, Behaviour]:
    return {registry + name: b for name, b in table.items() for registry in REGISTRIES}


# Run while the container runs (idempotent: every kubelet pass), and at a Job container's completion.
RUNNING: dict[str, Behaviour] = _both(
    {
        "cilium": agent.run,
        "operator": operator.cilium,
        "operator-generic": operator.cilium,
        "operator-aws": operator.cilium,
        "tetragon-operator": operator.tetragon,
    }
)
COMPLETED: dict[str, Behaviour] = _both({"certgen": certgen.run})
AGENT_IMAGES = frozenset(registry + "cilium" for registry in REGISTRIES)
# Images of the charts that need nothing simulated: they just run.
KNOWN_IDLE = frozenset(
    registry + name
    for registry in REGISTRIES
    for name in (
        "hubble-relay",
        "hubble-ui",
        "hubble-ui-backend",
        "cilium-envoy",
        "clustermesh-apiserver",
        "startup-script",
        "tetragon",
        "hubble-export-stdout",
        "hubble-timescape",
        "cilium-dnsproxy",
    )
)


def runs_agent(pod: dict[str, Any]) -> bool:
    """Whether one of the Pod's containers is the Cilium agent (by image, whatever the Pod's labels)."""
    return any(repository(c.get("image", "")) in AGENT_IMAGES for c in pod.get("spec", {}).get("containers") or [])


def repository(image: str) -> str:
    """`quay.io/cilium/cilium:v1.18.4@sha256:...` -> `quay.io/cilium/cilium` (no tag, no digest)."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


class Images:
    """One cluster's image behaviours; remembers which unknown images it has logged."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.logged: set[str] = set()

    def running(self, pod: dict[str, Any]) -> None:
        self._each(pod, RUNNING)

    def completed(self, pod: dict[str, Any]) -> None:
        self._each(pod, COMPLETED)

    def _each(self, pod: dict[str, Any], table: dict[str, Behaviour]) -> None:
        for container in pod["spec"].get("containers") or []:
            repo = repository(container.get("image", ""))
            behaviour = table.get(repo)
            if behaviour is not None:
                behaviour(self.ctx, pod, container)
            elif repo not in RUNNING and repo not in COMPLETED and repo not in KNOWN_IDLE:
                self.unknown(repo)

    def unknown(self, repo: str) -> None:
        if repo not in self.logged:
            self.logged.add(repo)
            LOG.info("image %s has no simulated behaviour: its containers just run", repo)
