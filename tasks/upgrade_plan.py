"""Upgrade plans (pure): from the versions the cluster runs to the stack's, the way Cilium's upgrade guide allows.

- a patch bump is one hop; a minor bump is one hop only to the next minor (1.17 -> 1.18): a skipped minor is refused
  before anything changes, with the hops that would get there ("upgrade to the latest 1.17 patch first");
- a major change is refused; a downgrade is refused unless explicitly allowed, and then only to the chart version of
  the previous deployed revision (what `helm rollback` would restore);
- each release is planned on its own (Tetragon and the DNS proxy have their own version lines) and the hops run in
  the guide's order: the DNS proxy HA first (DNS keeps working while the agents roll), then Cilium, then Tetragon;
- Cilium's pre-flight image pre-pull runs before its hop (skippable for patch bumps);
- `upgradeCompatibility` is the minor version first installed, recorded by the install in the cluster.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from tasks.model import Component, Stack

ORDER = (Component.dnsproxy, Component.cilium, Component.tetragon)
_SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)")


class HopKind(StrEnum):
    unchanged = "unchanged"
    install = "install"  # not installed yet: a plain install
    patch = "patch"
    minor = "minor"
    downgrade = "downgrade"  # allowed only to the previous deployed revision's chart


@dataclass(frozen=True)
class Hop:
    release: str
    component: Component
    from_version: str | None
    to_version: str
    kind: HopKind
    prepull: bool = False  # Cilium's pre-flight DaemonSet pulls the new images before the agents roll

    def __str__(self) -> str:
        if self.kind is HopKind.unchanged:
            return f"{self.release}: {self.to_version} (unchanged)"
        start = self.from_version or "not installed"
        extra = ", pre-pull images first" if self.prepull else ""
        return f"{self.release}: {start} → {self.to_version} ({self.kind.value}{extra})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "release": self.release,
            "component": self.component.value,
            "from": self.from_version,
            "to": self.to_version,
            "kind": self.kind.value,
            "prepull": self.prepull,
        }


@dataclass(frozen=True)
class UpgradePlan:
    hops: tuple[Hop, ...]
    refusals: tuple[str, ...] = ()

    @property
    def changes(self) -> list[Hop]:
        return [h for h in self.hops if h.kind is not HopKind.unchanged]

    @property
    def allowed(self) -> bool:
        return not self.refusals

    def as_dict(self) -> dict[str, Any]:
        return {"hops": [h.as_dict() for h in self.hops], "refusals": list(self.refusals), "allowed": self.allowed}

    def markdown(self, cluster: str) -> str:
        lines = [f"# Upgrade plan for {cluster}", ""]
        if self.refusals:
            lines += ["**Refused** (nothing was changed):", "", *[f"- {r}" for r in self.refusals], ""]
        lines += ["| order | release | from | to | kind | pre-pull |", "|---|---|---|---|---|---|"]
        for i, h in enumerate(self.hops, 1):
            prepull = "yes" if h.prepull else ""
            lines.append(
                f"| {i} | {h.release} | {h.from_version or '-'} | {h.to_version} | {h.kind.value} | {prepull} |"
            )
        return "\n".join(lines)


def semver(version: str) -> tuple[int, int, int] | None:
    m = _SEMVER.match(version.strip())
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def plan_release(
    release: str,
    component: Component,
    live: str | None,
    desired: str,
    *,
    previous: str | None = None,
    allow_downgrade: bool = False,
    prepull_patches: bool = True,
) -> Hop | str:
    """One release's hop, or why it is refused (a sentence that says what to do instead)."""
    if live is None:
        return Hop(release, component, None, desired, HopKind.install)
    have, want = semver(live), semver(desired)
    if have is None or want is None:
        return f"release {release}: cannot compare versions {live!r} and {desired!r} (not semantic versions)"
    cilium = component is Component.cilium
    if have == want:
        return Hop(release, component, live, desired, HopKind.unchanged)
    if want < have:
        if not allow_downgrade:
            return (
                f"release {release}: {live} → {desired} is a downgrade; refused (allow it with allow_downgrade, "
                f"and only back to the previous deployed revision's chart{f' {previous}' if previous else ''})"
            )
        if previous is None or semver(previous) != want:
            return (
                f"release {release}: a downgrade may only return to the previous deployed revision's chart "
                f"({previous or 'there is none'}), not {desired}"
            )
        return Hop(release, component, live, desired, HopKind.downgrade, prepull=cilium)
    if want[0] != have[0]:
        return f"release {release}: {live} → {desired} changes the major version; refused"
    if want[1] == have[1]:
        return Hop(release, component, live, desired, HopKind.patch, prepull=cilium and prepull_patches)
    if want[1] == have[1] + 1:
        return Hop(release, component, live, desired, HopKind.minor, prepull=cilium)
    between = [f"{want[0]}.{m}" for m in range(have[1] + 1, want[1])]
    path = " → ".join([live, *[f"the latest {b} patch" for b in between], desired])
    return (
        f"release {release}: {live} → {desired} skips {', '.join(between)}: one minor version per upgrade; "
        f"upgrade to the latest {between[0]} patch first (hops: {path})"
    )


def plan_upgrade(
    stack: Stack,
    live: dict[str, str | None],
    previous: dict[str, str | None] | None = None,
    *,
    allow_downgrade: bool = False,
    prepull_patches: bool = True,
) -> UpgradePlan:
    """Every enabled release's hop, in the guide's order; refusals for the ones that may not go."""
    hops: list[Hop] = []
    refusals: list[str] = []
    for component in ORDER:
        found = stack.release_for(component)
        if found is None or not found[1].enabled:
            continue
        name, rel = found
        verdict = plan_release(
            name,
            component,
            live.get(name),
            rel.version,
            previous=(previous or {}).get(name),
            allow_downgrade=allow_downgrade,
            prepull_patches=prepull_patches,
        )
        if isinstance(verdict, str):
            refusals.append(verdict)
        else:
            hops.append(verdict)
    return UpgradePlan(tuple(hops), tuple(refusals))


def upgrade_compatibility(first_installed: str | None, desired: str) -> str | None:
    """Cilium's `upgradeCompatibility` value: the minor version first installed, when it is older than the desired
    one (the chart then keeps that version's defaults); None when there is nothing to keep."""
    first, want = semver(first_installed or ""), semver(desired)
    if first is None or want is None or first[:2] >= want[:2]:
        return None
    return f"{first[0]}.{first[1]}"


def chart_version(history_chart: str) -> str | None:
    """The version in `helm history`'s chart column (`cilium-1.18.3` -> `1.18.3`)."""
    m = re.search(r"-(v?\d+\.\d+\.\d+[0-9A-Za-z.+-]*)$", history_chart)
    return m.group(1) if m else None


def first_version(history: list[dict[str, Any]]) -> str | None:
    """The chart version of the oldest revision in `helm history` (helm keeps the last 10 by default)."""
    if not history:
        return None
    oldest = min(history, key=lambda h: int(h["revision"]))
    return chart_version(str(oldest.get("chart") or ""))


def previous_deployed(history: list[dict[str, Any]], current_revision: int | None) -> tuple[int, str] | None:
    """The revision before `current_revision` that was deployed (superseded now) and its chart version."""
    candidates = [
        (int(h["revision"]), chart_version(str(h.get("chart") or "")))
        for h in history
        if h.get("status") in ("superseded", "deployed")
        and current_revision is not None
        and int(h["revision"]) < current_revision
    ]
    found = [(rev, version) for rev, version in candidates if version is not None]
    if not found:
        return None
    rev, version = max(found)
    assert version is not None
    return rev, version


def preflight_values(desired: dict[str, Any]) -> dict[str, Any]:
    """Values of the pre-flight release (the guide's `preflight.enabled=true agent=false operator.enabled=false`):
    the new agent image on every node, nothing else. Envoy is off: its ConfigMap would collide with the release's."""
    preflight: dict[str, Any] = {"enabled": True}
    image = desired.get("image")
    if isinstance(image, dict):
        keys = ("override", "repository", "tag", "digest", "useDigest", "pullPolicy")
        preflight["image"] = {k: image[k] for k in keys if k in image}
    out: dict[str, Any] = {
        "preflight": preflight,
        "agent": False,
        "operator": {"enabled": False},
        "envoy": {"enabled": False},
    }
    for key in ("k8sServiceHost", "k8sServicePort", "imagePullSecrets"):
        if key in desired:
            out[key] = desired[key]
    return out
