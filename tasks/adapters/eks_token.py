"""EKS bearer tokens without the aws CLI, and a kubectl/helm exec credential plugin that prints them.

Token = "k8s-aws-v1." + base64url(no padding) of a presigned STS GetCallerIdentity URL with the header
`x-k8s-aws-id: <cluster>` signed in (60 s presign; EKS accepts it about 15 minutes). Presigning is local:
no request is sent. helm and kubectl call the plugin again whenever the token is about to expire, so long
helm runs never outlive their credentials.

    python -m tasks.adapters.eks_token --cluster NAME --region REGION
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import sys

import boto3
from botocore.signers import RequestSigner

TOKEN_PREFIX = "k8s-aws-v1."
# The token itself is accepted ~15 min; tell clients to refresh well before that.
TOKEN_LIFETIME = datetime.timedelta(minutes=14)


def make_token(cluster: str, region: str) -> str:
    session = boto3.session.Session(region_name=region)
    credentials = session.get_credentials()
    if credentials is None:
        raise RuntimeError("no AWS credentials found for the EKS token (set AWS_PROFILE or the AWS_* variables)")
    # Always the regional STS host, never AWS_ENDPOINT_URL: the API server validates against real STS.
    sts_host = f"sts.{region}.amazonaws.com"
    signer = RequestSigner(session.client("sts").meta.service_model.service_id, region, "sts", "v4", credentials,
                           session.events)
    url = signer.generate_presigned_url(
        {"method": "GET", "url": f"https://{sts_host}/?Action=GetCallerIdentity&Version=2011-06-15", "body": {},
         "headers": {"x-k8s-aws-id": cluster}, "context": {}},
        region_name=region, expires_in=60, operation_name="")
    return TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def exec_credential(cluster: str, region: str) -> dict[str, object]:
    expiry = datetime.datetime.now(datetime.UTC) + TOKEN_LIFETIME
    return {"kind": "ExecCredential", "apiVersion": "client.authentication.k8s.io/v1beta1", "spec": {},
            "status": {"token": make_token(cluster, region),
                       "expirationTimestamp": expiry.strftime("%Y-%m-%dT%H:%M:%SZ")}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tasks.adapters.eks_token", description="EKS exec credential plugin")
    p.add_argument("--cluster", required=True)
    p.add_argument("--region", required=True)
    args = p.parse_args(argv)
    try:
        print(json.dumps(exec_credential(args.cluster, args.region)))
    except Exception as e:  # the plugin's stderr is what kubectl/helm show the user
        print(f"eks-cilium token: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
