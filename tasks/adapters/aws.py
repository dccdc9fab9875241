"""AWS adapter (boto3): EKS clusters, add-ons and nodegroups, the VPC's subnets and route tables, IAM roles.

The endpoint comes from the environment like any boto3 program (`AWS_ENDPOINT_URL`, which the sandbox sets
to its moto server); nothing here knows about the sandbox. Errors become TransientError (throttling, 5xx,
connection problems) or PermanentError (not found, access denied, invalid requests) with a hint; throttling,
access denied and not found as their own kinds (Throttled, AccessDenied, ResourceNotFound), so callers catch types.
"""

from __future__ import annotations

import difflib
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import boto3
import botocore.exceptions
from botocore.config import Config
from botocore.loaders import create_loader
from botocore.regions import EndpointResolver

from tasks.errors import (
    AccessDenied,
    ConfigError,
    EksCiliumError,
    PermanentError,
    ResourceNotFound,
    Throttled,
    TransientError,
)

T = TypeVar("T")
THROTTLING = {
    "Throttling",
    "ThrottlingException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
}
SERVER_SIDE = {
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalFailure",
    "InternalError",
    "ServerException",
    "InternalServerError",
}
DENIED = {
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
    "SignatureDoesNotMatch",
}


NOT_FOUND = {"ResourceNotFoundException", "NoSuchEntity", "NotFoundException"}
# AWS error codes (or, failing those, HTTP statuses) -> the project's error type, its words and what to do.
CLIENT_ERRORS: tuple[tuple[set[str], Callable[[int], bool], type[EksCiliumError], str, str | None], ...] = (
    (
        THROTTLING,
        lambda status: status == 429,
        Throttled,
        "AWS throttled the request",
        "retried automatically; if it persists, lower the fleet concurrency",
    ),
    (
        SERVER_SIDE,
        lambda status: status >= 500,
        TransientError,
        "AWS answered with a server error",
        "retried automatically; check the AWS Health Dashboard if it persists",
    ),
    (
        DENIED,
        lambda status: status == 403,
        AccessDenied,
        "access denied",
        "grant the IAM principal the actions in configs/iam-policy.json (see README, 'Permissions')",
    ),
    (NOT_FOUND, lambda status: status == 404, ResourceNotFound, "not found", None),
)


def client_error(what: str, code: str, status: int, observed: str, not_found_hint: str | None) -> EksCiliumError | None:
    """The project's error for an AWS error code / HTTP status; None = a plain rejection of the request."""
    for codes, by_status, error, words, hint in CLIENT_ERRORS:
        if code in codes or by_status(status):
            return error(f"{what}: {words}", observed=observed, hint=hint or not_found_hint)
    return None


def call(what: str, fn: Callable[[], T], *, not_found_hint: str | None = None) -> T:
    """Run one AWS call and translate its failure into the project's errors."""
    try:
        return fn()
    except botocore.exceptions.ClientError as e:
        err = e.response.get("Error", {})
        code, msg = err.get("Code", ""), err.get("Message", str(e))
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        observed = f"{code or status}: {msg}"
        mapped = client_error(what, code, status, observed, not_found_hint)
        if mapped is not None:
            raise mapped from None
        raise PermanentError(
            f"{what}: AWS rejected the request", observed=observed, hint="check the parameters named in the message"
        ) from None
    except (
        botocore.exceptions.EndpointConnectionError,
        botocore.exceptions.ConnectTimeoutError,
        botocore.exceptions.ReadTimeoutError,
        botocore.exceptions.ConnectionClosedError,
    ) as e:
        raise TransientError(
            f"{what}: could not reach AWS",
            observed=str(e),
            hint="retried automatically; check network access to the AWS endpoint",
        ) from None
    except botocore.exceptions.NoCredentialsError:
        raise PermanentError(
            f"{what}: no AWS credentials found",
            observed="boto3 found no credentials",
            hint="configure credentials (AWS_PROFILE, environment variables, or an instance role)",
        ) from None
    except botocore.exceptions.NoRegionError:
        raise PermanentError(f"{what}: no AWS region", hint="set cluster.region in the stack") from None


# Every AWS operation this process called, as IAM action names ("eks:DescribeCluster"): logged by the flows
# and checked against configs/iam-policy.json by the tests (least privilege).
USED_ACTIONS: set[str] = set()
_IAM_PREFIX = {"eks": "eks", "ec2": "ec2", "iam": "iam", "sts": "sts"}


def _record(model: Any, **_: Any) -> None:
    USED_ACTIONS.add(
        f"{_IAM_PREFIX.get(model.service_model.endpoint_prefix, model.service_model.endpoint_prefix)}:{model.name}"
    )


@functools.lru_cache(maxsize=64)
def _client(region: str, service: str, endpoint: str | None) -> Any:
    # botocore's own retries stay small: our tasks retry transient errors with their own policy and log it.
    # `endpoint` is only part of the cache key: boto3 reads AWS_ENDPOINT_URL itself.
    client = boto3.session.Session(region_name=region).client(
        service, config=Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=30)
    )
    client.meta.events.register("before-call.*.*", _record)
    return client


@functools.lru_cache(maxsize=4)
def known_regions(service: str = "eks") -> tuple[str, ...]:
    """Regions where `service` has an endpoint, in every partition, from botocore's bundled endpoint data (offline;
    no profile or credentials read)."""
    resolver = EndpointResolver(create_loader().load_data("endpoints"))
    return tuple(
        sorted(
            {
                r
                for p in resolver.get_available_partitions()
                for r in resolver.get_available_endpoints(service, partition_name=p)
            }
        )
    )


def check_region(region: str, service: str = "eks") -> None:
    """ConfigError unless `region` is one where `service` exists (a misspelt region otherwise fails only later, as
    endpoint errors that are retried until the sensor's deadline)."""
    regions = known_regions(service)
    if region in regions:
        return
    close = difflib.get_close_matches(region, regions, n=1, cutoff=0.6)
    raise ConfigError(
        f"cluster.region {region!r} is not an AWS region with {service.upper()}",
        observed=f"botocore {botocore.__version__} knows {len(regions)} such regions"
        + (f"; the closest is {close[0]!r}" if close else f": {', '.join(regions)}"),
        hint=(
            f"set cluster.region to {close[0]!r} if that is the one you meant"
            if close
            else "set cluster.region to one of those"
        )
        + "; a region opened after this botocore was released needs a newer boto3/botocore",
    )


@dataclass(frozen=True)
class Aws:
    region: str

    def client(self, service: str) -> Any:
        return _client(self.region, service, os.environ.get("AWS_ENDPOINT_URL"))

    # ---- EKS ------------------------------------------------------------------------------------------
    def describe_cluster(self, name: str) -> dict[str, Any]:
        eks = self.client("eks")
        return call(
            f"describe EKS cluster {name!r} in {self.region}",
            lambda: eks.describe_cluster(name=name)["cluster"],
            not_found_hint="check cluster.name and cluster.region; `aws eks list-clusters --region "
            f"{self.region}` lists what exists",
        )

    def list_clusters(self) -> list[str]:
        eks = self.client("eks")
        return call("list EKS clusters", lambda: eks.list_clusters()["clusters"])

    def list_addons(self, cluster: str) -> list[str]:
        eks = self.client("eks")
        return call(f"list add-ons of {cluster!r}", lambda: eks.list_addons(clusterName=cluster)["addons"])

    def list_nodegroups(self, cluster: str) -> list[str]:
        eks = self.client("eks")
        return call(f"list nodegroups of {cluster!r}", lambda: eks.list_nodegroups(clusterName=cluster)["nodegroups"])

    def describe_nodegroup(self, cluster: str, name: str) -> dict[str, Any] | None:
        eks = self.client("eks")
        try:
            nodegroup: dict[str, Any] = call(
                f"describe nodegroup {name!r}",
                lambda: eks.describe_nodegroup(clusterName=cluster, nodegroupName=name)["nodegroup"],
            )
        except ResourceNotFound:
            return None
        return nodegroup

    def create_nodegroup(self, request: dict[str, Any]) -> dict[str, Any]:
        eks = self.client("eks")
        return call(
            f"create nodegroup {request['nodegroupName']!r}", lambda: eks.create_nodegroup(**request)["nodegroup"]
        )

    def update_nodegroup_scaling(self, cluster: str, name: str, scaling: dict[str, int]) -> None:
        eks = self.client("eks")
        call(
            f"scale nodegroup {name!r}",
            lambda: eks.update_nodegroup_config(clusterName=cluster, nodegroupName=name, scalingConfig=scaling),
        )

    def delete_nodegroup(self, cluster: str, name: str) -> None:
        eks = self.client("eks")
        call(f"delete nodegroup {name!r}", lambda: eks.delete_nodegroup(clusterName=cluster, nodegroupName=name))

    # ---- EC2 / IAM / STS --------------------------------------------------------------------------------
    def describe_subnets(self, subnet_ids: list[str]) -> list[dict[str, Any]]:
        ec2 = self.client("ec2")
        return call("describe the cluster's subnets", lambda: ec2.describe_subnets(SubnetIds=subnet_ids)["Subnets"])

    def describe_route_tables(self, vpc_id: str) -> list[dict[str, Any]]:
        ec2 = self.client("ec2")
        return call(
            f"describe route tables of {vpc_id}",
            lambda: ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["RouteTables"],
        )

    def get_role_arn(self, name: str) -> str | None:
        iam = self.client("iam")
        try:
            arn: str = call(f"get IAM role {name!r}", lambda: iam.get_role(RoleName=name)["Role"]["Arn"])
        except ResourceNotFound:
            return None
        return arn

    def list_role_names(self) -> list[str]:
        iam = self.client("iam")

        def run() -> list[str]:
            names: list[str] = []
            for page in iam.get_paginator("list_roles").paginate():
                names.extend(r["RoleName"] for r in page["Roles"])
            return names

        return call("list IAM roles", run)

    def caller_arn(self) -> str:
        sts = self.client("sts")
        arn: str = call("identify the AWS caller", lambda: sts.get_caller_identity()["Arn"])
        return arn


def require_credentials(region: str) -> None:
    """ConfigError when boto3 finds no credentials at all: the command line checks this before it starts a run,
    so the user reads three lines instead of a flow's tracebacks."""
    if boto3.session.Session(region_name=region).get_credentials() is None:
        raise ConfigError(
            "no AWS credentials found",
            observed="boto3 found no credentials (profile, environment, instance role)",
            hint="configure credentials (AWS_PROFILE, environment variables, or an "
            "instance role), or try the local sandbox with --sandbox",
        )
