"""Where the nodegroup goes and which role its nodes take (pure): nodegroup_plan.resolve_nodegroup, by table."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tasks.nodegroup_plan import NodegroupFacts, NodegroupPlan, resolve_nodegroup, role_candidates

PLAN = NodegroupPlan(
    name="ng-1",
    instance_types=("m5.large",),
    min_size=2,
    max_size=2,
    desired_size=2,
    private_networking=False,
    disk_size_gib=80,
    ami_type="AL2023_x86_64_STANDARD",
)
ROLE_ARN = "arn:aws:iam::123456789012:role/demo-node-role"
PUBLIC_TABLE = {
    "Associations": [{"Main": True}],
    "Routes": [{"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": "igw-1"}],
}
PRIVATE_TABLE = {"Associations": [{"SubnetId": "s-priv"}], "Routes": [{"DestinationCidrBlock": "10.0.0.0/16"}]}
SUBNETS = (
    {"SubnetId": "s-pub", "AvailabilityZone": "us-east-1a"},
    {"SubnetId": "s-priv", "AvailabilityZone": "us-east-1b"},
)
FACTS = NodegroupFacts(
    cluster_subnets=("s-pub", "s-priv"),
    described_subnets=SUBNETS,
    route_tables=(PUBLIC_TABLE, PRIVATE_TABLE),
    role_arns={"demo-node-role": ROLE_ARN},
    role_names=("demo-node-role", "other-role"),
)


@pytest.mark.parametrize(
    ("plan", "facts", "subnets", "role", "problem"),
    [
        ("as given", FACTS, ["s-pub", "s-priv"], ROLE_ARN, None),
        ("private", FACTS, ["s-priv"], ROLE_ARN, None),
        ("listed subnets", FACTS, ["s-x"], ROLE_ARN, None),
        ("role arn", FACTS, ["s-pub", "s-priv"], "arn:aws:iam::1:role/r", None),
        ("role by name", FACTS, ["s-pub", "s-priv"], ROLE_ARN, None),
        ("missing role", FACTS, None, None, "IAM role 'nope' does not exist"),
        ("private", replace(FACTS, route_tables=(PUBLIC_TABLE,)), None, None, "none of the cluster's subnets"),
        ("as given", replace(FACTS, role_names=("other-role",), role_arns={}), None, None, "no role name contains"),
        (
            "as given",
            replace(FACTS, role_names=("demo-node-a", "demo-node-b"), role_arns={}),
            None,
            None,
            "candidates: demo-node-a, demo-node-b",
        ),
    ],
)
def test_resolve_nodegroup_chooses_subnets_and_role_or_names_the_problem(plan, facts, subnets, role, problem):
    plans = {
        "as given": PLAN,
        "private": replace(PLAN, private_networking=True),
        "listed subnets": replace(PLAN, subnets=("s-x",)),
        "role arn": replace(PLAN, node_role="arn:aws:iam::1:role/r"),
        "role by name": replace(PLAN, node_role="demo-node-role"),
        "missing role": replace(PLAN, node_role="nope"),
    }
    got = resolve_nodegroup(plans[plan], "demo", facts)
    if problem is None:
        assert got.problems == ()
        assert got.request is not None
        assert got.request["subnets"] == subnets and got.request["nodeRole"] == role
        assert got.request["clusterName"] == "demo" and got.request["nodegroupName"] == "ng-1"
    else:
        assert got.request is None
        assert len(got.problems) == 1 and problem in got.problems[0] and "Fix:" in got.problems[0]


def test_subnet_and_role_problems_are_reported_together():
    facts = replace(FACTS, route_tables=(PUBLIC_TABLE,), role_names=(), role_arns={})
    got = resolve_nodegroup(replace(PLAN, private_networking=True), "demo", facts)
    assert got.request is None and len(got.problems) == 2


@pytest.mark.parametrize(
    ("node_role", "names", "looked_up"),
    [
        (None, ["demo-node-role", "x"], ["demo-node-role"]),
        (None, ["demo-10-node-role"], []),  # whole word: cluster demo-1 is not demo-10
        ("named", [], ["named"]),
        ("arn:aws:iam::1:role/r", [], []),
    ],
)
def test_role_candidates_are_the_roles_whose_arn_is_needed(node_role, names, looked_up):
    cluster = "demo-1" if names == ["demo-10-node-role"] else "demo"
    assert role_candidates(replace(PLAN, node_role=node_role), cluster, names) == looked_up
