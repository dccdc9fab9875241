"""Wire formats: JSON answers; request bodies in JSON, YAML (server-side apply) or Kubernetes protobuf."""

from __future__ import annotations

import json
from typing import Any

import yaml
from aiohttp import web

from sandbox.kube import protobuf

PROTOBUF = "application/vnd.kubernetes.protobuf"
APPLY_PATCH = "application/apply-patch+yaml"


def dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=dumps(body), status=status, content_type="application/json")


def success(code: int = 201) -> web.Response:
    return json_response({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": code}, code)


async def read_body(request: web.Request) -> Any:
    raw = await request.read()
    ctype = request.content_type
    if ctype == PROTOBUF:
        return protobuf.decode(raw)
    if not raw:
        return None
    if ctype == APPLY_PATCH or ctype.endswith("yaml"):
        return yaml.safe_load(raw)
    return json.loads(raw)


def wants_table(request: web.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")
