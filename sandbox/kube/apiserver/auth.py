"""Authentication: static bearer tokens, or EKS tokens (a presigned STS GetCallerIdentity URL)."""

from __future__ import annotations

import base64
import calendar
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from sandbox.kube.errors import ApiError

UNAUTHENTICATED_PATHS = ("/version", "/version/", "/healthz", "/livez", "/readyz")
EKS_TOKEN_PREFIX = "k8s-aws-v1."
TOKENS_SEEN_CAP = 10_000


@dataclass
class AccessPolicy:
    """What SelfSubjectAccessReviews answer, and which bearer tokens are accepted.

    Tokens: the static ones listed, or EKS tokens (`k8s-aws-v1.` + base64url of a presigned STS
    GetCallerIdentity URL with `x-k8s-aws-id` signed in), accepted for `token_ttl_seconds` after signing,
    as EKS does (about 15 minutes).
    """

    allowed: bool = True
    reject_tokens: bool = False  # every request 401 (API reachable but credentials wrong)
    static_tokens: set[str] = field(default_factory=set)
    token_ttl_seconds: float = 900.0


def _presigned_url(token: str) -> str | None:
    raw = token[len(EKS_TOKEN_PREFIX) :]
    try:
        return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    except ValueError:
        return None


def check_eks_token(token: str, ttl: float, now: float | None = None) -> str | None:
    """None when the token is acceptable, else why not."""
    if not token.startswith(EKS_TOKEN_PREFIX):
        return "not an EKS token"
    url = _presigned_url(token)
    if url is None:
        return "token is not base64url"
    parts = urlsplit(url)
    q = {k.lower(): v[0] for k, v in parse_qs(parts.query).items()}
    if q.get("action") != "GetCallerIdentity" or "sts" not in parts.netloc:
        return "token is not a presigned STS GetCallerIdentity URL"
    if "x-k8s-aws-id" not in q.get("x-amz-signedheaders", "").split(";"):
        return "the x-k8s-aws-id header is not signed into the token"
    try:
        signed = calendar.timegm(time.strptime(q["x-amz-date"], "%Y%m%dT%H%M%SZ"))
    except (KeyError, ValueError):
        return "token has no valid X-Amz-Date"
    age = (now or time.time()) - signed
    if age > ttl:
        return f"token expired (signed {int(age)} s ago, accepted for {int(ttl)} s)"
    return None


def bearer_token(authorization: str) -> str:
    return authorization[7:].strip() if authorization.lower().startswith("bearer ") else ""


class Authenticator:
    """Admits a request or raises 401; remembers (the tails of) the EKS tokens it accepted."""

    def __init__(self, access: AccessPolicy) -> None:
        self.access = access
        self.tokens_seen: set[str] = set()  # distinct EKS tokens accepted (capped), to observe credential refreshes

    def authenticate(self, authorization: str) -> str | None:
        """None when admitted, else why the EKS token was refused (the caller logs it and answers 401).
        A missing token, or any token while `reject_tokens` is set, raises the 401 right away."""
        token = bearer_token(authorization)
        if self.access.reject_tokens or not token:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        if token in self.access.static_tokens:
            return None
        why = check_eks_token(token, self.access.token_ttl_seconds)
        if why is not None:
            return why
        if len(self.tokens_seen) < TOKENS_SEEN_CAP:
            self.tokens_seen.add(token[-16:])
        return None
