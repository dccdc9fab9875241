"""A dry run's plan (pure): install_plan.plan_steps from the live releases and the preflight, by table; and the
repair a drifted release asks for (drift.release_drift's typed RepairAction)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks import drift, install_plan
from tasks.model import load_stack
from tasks.nodegroup_plan import NodegroupPlan
from tasks.results import LiveRelease, PlanAction, PreflightResult

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
STACK = load_stack(CONFIGS)
CILIUM = STACK.cilium[0]
NODEGROUP = NodegroupPlan("ng-1", ("m5.large",), 2, 2, 2, False, 80, "AL2023_x86_64_STANDARD")
VALUES = {name: {"a": 1} for name in STACK.releases}


def live(version: str | None = None, status: str = "deployed", config: dict | None = None) -> LiveRelease:
    return LiveRelease(status, version or STACK.releases[CILIUM].version, 3, {"a": 1} if config is None else config)


@pytest.mark.parametrize(
    ("live_cilium", "action", "changes"),
    [
        (None, PlanAction.install, []),
        (live(), PlanAction.unchanged, []),
        (live(config={"a": 2}), PlanAction.upgrade, ["a: live 2 -> desired 1"]),
        (live(version="0.9.0"), PlanAction.upgrade, [f"chart version: live 0.9.0 -> desired {live().version}"]),
        (live(status="failed"), PlanAction.upgrade, []),
    ],
)
def test_release_step_says_install_upgrade_or_unchanged_with_the_changes(live_cilium, action, changes):
    step = install_plan.release_step(CILIUM, STACK.releases[CILIUM], VALUES[CILIUM], live_cilium)
    assert step.step == f"release {CILIUM}" and step.action is action and list(step.changes) == changes
    assert step.command.startswith(f"helm upgrade --install {CILIUM} ")


@pytest.mark.parametrize(("exists", "action"), [(False, PlanAction.create), (True, PlanAction.unchanged)])
def test_plan_puts_the_nodegroup_after_cilium_and_carries_its_request(exists, action):
    request = {"nodegroupName": "ng-1"}
    steps = install_plan.plan_steps(STACK, VALUES, NODEGROUP, {}, PreflightResult(request, exists))
    enabled = [n for n, r in STACK.releases.items() if r.enabled]
    assert [s.step for s in steps] == [
        f"release {enabled[0]}",
        "nodegroup ng-1",
        *[f"release {n}" for n in enabled[1:]],
    ]
    assert steps[1].action is action and steps[1].as_dict()["request"] == request
    assert "x2" in steps[1].command


def test_plan_markdown_lists_every_step_and_the_changes():
    steps = install_plan.plan_steps(
        STACK, VALUES, NODEGROUP, {CILIUM: live(config={"a": 2})}, PreflightResult(None, True)
    )
    text = install_plan.plan_markdown("demo", steps)
    assert "# Plan for demo (dry run: nothing was changed)" in text
    assert f"| release {CILIUM} | upgrade |" in text and f"## release {CILIUM}: changes" in text


@pytest.mark.parametrize(
    ("live_release", "repair"),
    [
        (None, drift.ReinstallRelease("r")),
        (LiveRelease("deployed", "1.0.0", 2, {"a": 2}), drift.ReinstallRelease("r")),
        (LiveRelease("deployed", "0.9.0", 2, {"a": 2}), drift.UpgradeRelease("r")),  # the upgrade path decides
        (LiveRelease("failed", "1.0.0", 2, {"a": 1}), drift.ReinstallRelease("r")),
        (LiveRelease("deployed", "1.0.0", 2, {"a": 1}), None),
    ],
)
def test_a_drifted_or_broken_release_asks_for_a_reinstall_and_another_chart_version_for_an_upgrade(
    live_release, repair
):
    item = drift.release_drift("r", "1.0.0", live_release, {"a": 1})
    assert item.repair == repair
    assert item.as_dict()["repair"] == (None if repair is None else str(repair))


CONFIG = {"enable-hubble": "true"}
TEMPLATE = {"spec": {"containers": [{"name": "cilium-agent", "image": "a"}]}}


@pytest.mark.parametrize(
    ("config_after", "template_after", "restart"),
    [
        ({"enable-hubble": "true"}, TEMPLATE, False),  # a relay or operator change: neither moved
        ({"enable-hubble": "false"}, TEMPLATE, True),  # cilium-config changed, nothing rolls the agents
        ({"enable-hubble": "false"}, {"spec": {"containers": [{"name": "cilium-agent", "image": "b"}]}}, False),
        (CONFIG, {"spec": {"containers": [{"name": "cilium-agent", "image": "b"}]}}, False),  # the DaemonSet rolls
        (None, TEMPLATE, True),  # the ConfigMap went away (or came back)
    ],
)
def test_agents_are_restarted_only_when_their_configuration_changed_and_nothing_else_rolls_them(
    config_after, template_after, restart
):
    assert drift.agents_need_restart(CONFIG, config_after, TEMPLATE, template_after) is restart


def test_repair_actions_keep_their_names_in_the_json_report():
    assert [str(a) for a in (drift.ScaleNodegroup(), drift.RemoveConflictingDaemonSets())] == [
        "nodegroup:scale",
        "cni:daemonsets",
    ]
    item = drift.cni_drift([], ["aws-node"])
    assert item.repair == drift.RemoveConflictingDaemonSets() and item.as_dict()["repair"] == "cni:daemonsets"
