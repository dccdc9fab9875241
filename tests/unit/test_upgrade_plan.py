"""Upgrade plans: which hops Cilium's upgrade guide allows, in which order, and what is refused before any change."""

from __future__ import annotations

import pytest

from tasks.model import Component, load_stack
from tasks.upgrade_plan import (
    Hop,
    HopKind,
    chart_version,
    plan_release,
    plan_upgrade,
    previous_deployed,
    upgrade_compatibility,
)
from tests.conftest import CONFIGS

C = Component.cilium


@pytest.mark.parametrize(
    ("live", "desired", "kind", "prepull"),
    [
        (None, "1.18.4", HopKind.install, False),
        ("1.18.4", "1.18.4", HopKind.unchanged, False),
        ("v1.18.4", "1.18.4", HopKind.unchanged, False),
        ("1.18.3", "1.18.4", HopKind.patch, True),
        ("1.17.18", "1.18.4", HopKind.minor, True),
        ("1.17.0", "1.18.0", HopKind.minor, True),
    ],
)
def test_allowed_hops(live, desired, kind, prepull):
    hop = plan_release("cilium", C, live, desired)
    assert isinstance(hop, Hop) and hop.kind is kind and hop.prepull is prepull


def test_the_pre_pull_can_be_skipped_for_patch_bumps_only():
    assert plan_release("cilium", C, "1.18.3", "1.18.4", prepull_patches=False).prepull is False  # type: ignore[union-attr]
    assert plan_release("cilium", C, "1.17.18", "1.18.4", prepull_patches=False).prepull is True  # type: ignore[union-attr]
    assert plan_release("tetragon", Component.tetragon, "1.4.1", "1.5.0").prepull is False  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("live", "desired", "words"),
    [
        (
            "1.16.9",
            "1.18.4",
            "release cilium: 1.16.9 → 1.18.4 skips 1.17: one minor version per upgrade; upgrade to the latest 1.17 "
            "patch first (hops: 1.16.9 → the latest 1.17 patch → 1.18.4)",
        ),
        ("1.15.1", "1.18.4", "skips 1.16, 1.17"),
        ("1.18.4", "2.0.0", "changes the major version; refused"),
        ("1.18.4", "1.18.3", "is a downgrade; refused (allow it with allow_downgrade"),
        ("1.18.x", "1.18.3", "not semantic versions"),
    ],
)
def test_refused_hops_say_what_to_do(live, desired, words):
    verdict = plan_release("cilium", C, live, desired)
    assert isinstance(verdict, str) and words in verdict


def test_a_downgrade_goes_only_back_to_the_previous_deployed_revision_when_allowed():
    back = plan_release("cilium", C, "1.18.4", "1.18.3", previous="1.18.3", allow_downgrade=True)
    assert isinstance(back, Hop) and back.kind is HopKind.downgrade
    further = plan_release("cilium", C, "1.18.4", "1.17.18", previous="1.18.3", allow_downgrade=True)
    assert isinstance(further, str) and "previous deployed revision's chart (1.18.3), not 1.17.18" in further


def test_the_plan_runs_the_dns_proxy_first_then_cilium_then_tetragon_and_collects_every_refusal():
    stack = load_stack(CONFIGS)
    live = {"cilium": "1.17.18", "tetragon": "1.16.0", "cilium-dnsproxy": "1.16.7"}
    plan = plan_upgrade(stack, live)
    assert [h.release for h in plan.hops] == ["cilium-dnsproxy", "cilium"]
    assert [h.kind for h in plan.hops] == [HopKind.unchanged, HopKind.minor]
    assert plan.allowed is False and len(plan.refusals) == 1 and plan.refusals[0].startswith("release tetragon: ")
    assert [str(h) for h in plan.changes] == ["cilium: 1.17.18 → 1.18.4 (minor, pre-pull images first)"]
    text = plan.markdown("demo (us-east-1)")
    assert "**Refused** (nothing was changed):" in text and "| 2 | cilium | 1.17.18 | 1.18.4 | minor | yes |" in text


@pytest.mark.parametrize(
    ("first", "desired", "value"),
    [("1.17.18", "1.18.4", "1.17"), ("1.18.3", "1.18.4", None), (None, "1.18.4", None), ("1.16.1", "1.18.4", "1.16")],
)
def test_upgrade_compatibility_is_the_minor_first_installed_when_older(first, desired, value):
    assert upgrade_compatibility(first, desired) == value


def test_previous_deployed_revision_and_its_chart_from_helm_history():
    history = [
        {"revision": 1, "status": "superseded", "chart": "cilium-1.18.3"},
        {"revision": 2, "status": "failed", "chart": "cilium-1.18.4"},
        {"revision": 3, "status": "deployed", "chart": "cilium-1.18.4"},
    ]
    assert previous_deployed(history, 3) == (1, "1.18.3")
    assert previous_deployed(history[:1], 1) is None
    assert chart_version("cilium-dnsproxy-1.16.7") == "1.16.7"


def test_a_hop_is_judged_by_its_own_release_and_the_cluster_wide_rows_at_the_versions_of_that_point():
    from tasks.results import Verification
    from tasks.steps.upgrade import _failed_rows, stack_with
    from tasks.verify import Check

    stack = load_stack(CONFIGS)
    at = stack_with(stack, {"cilium": "1.18.4", "tetragon": "1.17.0"})
    assert at.releases["tetragon"].version == "1.17.0" and at.releases["cilium"].version == "1.18.4"
    assert stack.releases["tetragon"].version == "1.18.0"  # the stack itself is unchanged
    report = Verification(
        (
            Check("nodes Ready", "2", "1", False),
            Check("cilium: operator (Deployment cilium-operator)", "2", "0", False),
            Check("tetragon: agent pods (DaemonSet tetragon)", "2", "0", False),
            Check("release tetragon", "deployed", "failed", False),
            Check("cilium-dnsproxy: DNS proxy (DaemonSet cilium-dnsproxy)", "2", "2", True),
        )
    )
    assert [r.split(":")[0] for r in _failed_rows(report, at, "cilium")] == ["nodes Ready", "cilium"]
    assert len(_failed_rows(report, at, "tetragon")) == 3
