"""EKS bearer tokens without the aws CLI, and a kubectl/helm exec credential plugin that prints them.

Token = "k8s-aws-v1." + base64url(no padding) of a presigned STS GetCallerIdentity URL with the header
`x-k8s-aws-id: <cluster>` signed in (60 s presign; EKS accepts it about 15 minutes). Presigning is local:
no request is sent. helm and kubectl call the plugin again whenever the token is about to expire, so long
helm runs never outlive their credentials.

    python -m tasks.adapters.eks_token --cluster NAME --region REGION [--cache DIR]

With --cache (the run's private 0700 directory) the credential is kept in a 0600 file until a minute before it
expires: helm, kubectl and the kubernetes client each start the plugin per process, and minting a token means
importing boto3 (about 0.7 s); a cached one costs about 50 ms.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import os
import sys
import time
from pathlib import Path

TOKEN_PREFIX = "k8s-aws-v1."


def token_lifetime() -> datetime.timedelta:
    """The token itself is accepted ~15 min; clients are told to refresh well before that. Tests that prove the
    refresh during a long helm run shorten it (EKS_CILIUM_TOKEN_LIFETIME_SECONDS) together with the sandbox's
    acceptance; it is read at each call, so the flow's process and the plugin processes always agree."""
    return datetime.timedelta(seconds=float(os.environ.get("EKS_CILIUM_TOKEN_LIFETIME_SECONDS", 14 * 60)))


def make_token(cluster: str, region: str) -> str:
    import boto3
    from botocore.signers import RequestSigner

    session = boto3.session.Session(region_name=region)
    credentials = session.get_credentials()
    if credentials is None:
        raise RuntimeError("no AWS credentials found for the EKS token (set AWS_PROFILE or the AWS_* variables)")
    # Always the regional STS host, never AWS_ENDPOINT_URL: the API server validates against real STS.
    sts_host = f"sts.{region}.amazonaws.com"
    signer = RequestSigner(
        session.client("sts").meta.service_model.service_id, region, "sts", "v4", credentials, session.events
    )
    url = signer.generate_presigned_url(
        {
            "method": "GET",
            "url": f"https://{sts_host}/?Action=GetCallerIdentity&Version=2011-06-15",
            "body": {},
            "headers": {"x-k8s-aws-id": cluster},
            "context": {},
        },
        region_name=region,
        expires_in=60,
        operation_name="",
    )
    return TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def exec_credential(cluster: str, region: str) -> dict[str, object]:
    expiry = datetime.datetime.now(datetime.UTC) + token_lifetime()
    return {
        "kind": "ExecCredential",
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "spec": {},
        "status": {"token": make_token(cluster, region), "expirationTimestamp": expiry.strftime("%Y-%m-%dT%H:%M:%SZ")},
    }


def cached_credential(cache_dir: Path, cluster: str, region: str, now: float | None = None) -> dict[str, object]:
    """The cached credential while it has more than a minute left, else a fresh one (written 0600, atomically)."""
    path = cache_dir / f"token-{region}-{cluster}.json"
    now = time.time() if now is None else now
    try:
        cached = json.loads(path.read_text())
        expiry = datetime.datetime.strptime(cached["status"]["expirationTimestamp"], "%Y-%m-%dT%H:%M:%SZ")
        if expiry.replace(tzinfo=datetime.UTC).timestamp() - now > 60:
            return dict(cached)
    except (OSError, ValueError, KeyError, TypeError):
        pass
    cred = exec_credential(cluster, region)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(cred, fh)
    os.replace(tmp, path)
    return cred


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tasks.adapters.eks_token", description="EKS exec credential plugin")
    p.add_argument("--cluster", required=True)
    p.add_argument("--region", required=True)
    p.add_argument("--cache", type=Path, help="private directory to keep the credential in until it nearly expires")
    args = p.parse_args(argv)
    try:
        cred = (
            cached_credential(args.cache, args.cluster, args.region)
            if args.cache
            else exec_credential(args.cluster, args.region)
        )
        print(json.dumps(cred))
    except Exception as e:  # the plugin's stderr is what kubectl/helm show the user
        print(f"eks-cilium token: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
