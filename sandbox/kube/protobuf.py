"""Decoding `application/vnd.kubernetes.protobuf` request bodies into JSON-shaped dicts.

client-go (helm's release storage, typed kubectl creates) sends core objects in Kubernetes' protobuf envelope:
magic `k8s\\x00` + runtime.Unknown{typeMeta, raw}. We decode the kinds those clients send; the field numbers
are those of k8s.io/api/core/v1/generated.proto and k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto.
"""

from __future__ import annotations

import base64
from typing import Any

MAGIC = b"k8s\x00"


class ProtobufError(ValueError):
    pass


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if i >= len(buf):
            raise ProtobufError("truncated varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def fields(buf: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value) in order; length-delimited values stay bytes."""
    out = []
    i = 0
    while i < len(buf):
        tag, i = _varint(buf, i)
        num, wt = tag >> 3, tag & 7
        val: Any
        if wt == 0:
            val, i = _varint(buf, i)
        elif wt == 2:
            ln, i = _varint(buf, i)
            val, i = buf[i : i + ln], i + ln
        elif wt == 1:
            val, i = buf[i : i + 8], i + 8
        elif wt == 5:
            val, i = buf[i : i + 4], i + 4
        else:
            raise ProtobufError(f"unsupported wire type {wt}")
        out.append((num, wt, val))
    return out


# A schema maps field number -> (json name, kind); kinds: str, int, bool, bytes(b64), msg:<schema>, map_str,
# map_bytes, rep_str, rep_msg:<schema>, time.
Schema = dict[int, tuple[str, str]]

OWNER_REF: Schema = {
    1: ("kind", "str"),
    3: ("name", "str"),
    4: ("uid", "str"),
    5: ("apiVersion", "str"),
    6: ("controller", "bool"),
    7: ("blockOwnerDeletion", "bool"),
}
OBJECT_META: Schema = {
    1: ("name", "str"),
    2: ("generateName", "str"),
    3: ("namespace", "str"),
    5: ("uid", "str"),
    6: ("resourceVersion", "str"),
    7: ("generation", "int"),
    8: ("creationTimestamp", "time"),
    11: ("labels", "map_str"),
    12: ("annotations", "map_str"),
    13: ("ownerReferences", "rep_msg:owner"),
    14: ("finalizers", "rep_str"),
}
LOCAL_REF: Schema = {1: ("name", "str")}
OBJECT_REF: Schema = {
    1: ("kind", "str"),
    2: ("namespace", "str"),
    3: ("name", "str"),
    4: ("uid", "str"),
    5: ("apiVersion", "str"),
    6: ("resourceVersion", "str"),
    7: ("fieldPath", "str"),
}
PRECONDITIONS: Schema = {1: ("uid", "str"), 2: ("resourceVersion", "str")}
SCHEMAS: dict[str, Schema] = {
    "owner": OWNER_REF,
    "meta": OBJECT_META,
    "localref": LOCAL_REF,
    "objref": OBJECT_REF,
    "pre": PRECONDITIONS,
    "Secret": {
        1: ("metadata", "msg:meta"),
        2: ("data", "map_bytes"),
        3: ("type", "str"),
        4: ("stringData", "map_str"),
        5: ("immutable", "bool"),
    },
    "ConfigMap": {
        1: ("metadata", "msg:meta"),
        2: ("data", "map_str"),
        3: ("binaryData", "map_bytes"),
        4: ("immutable", "bool"),
    },
    "Namespace": {1: ("metadata", "msg:meta"), 2: ("spec", "msg:nsspec")},
    "nsspec": {1: ("finalizers", "rep_str")},
    "ServiceAccount": {
        1: ("metadata", "msg:meta"),
        2: ("secrets", "rep_msg:objref"),
        3: ("imagePullSecrets", "rep_msg:localref"),
        4: ("automountServiceAccountToken", "bool"),
    },
    "DeleteOptions": {
        1: ("gracePeriodSeconds", "int"),
        2: ("preconditions", "msg:pre"),
        3: ("orphanDependents", "bool"),
        4: ("propagationPolicy", "str"),
        5: ("dryRun", "rep_str"),
    },
}


def _decode_time(buf: bytes) -> str:
    import time as _t

    secs = next((v for n, _, v in fields(buf) if n == 1), 0)
    return _t.strftime("%Y-%m-%dT%H:%M:%SZ", _t.gmtime(secs))


def decode_message(buf: bytes, schema: Schema) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for num, _wt, val in fields(buf):
        if num not in schema:
            continue
        name, kind = schema[num]
        if kind == "str":
            out[name] = val.decode()
        elif kind == "int":
            out[name] = val
        elif kind == "bool":
            out[name] = bool(val)
        elif kind == "time":
            out[name] = _decode_time(val)
        elif kind.startswith("msg:"):
            out[name] = decode_message(val, SCHEMAS[kind[4:]])
        elif kind.startswith("rep_msg:"):
            out.setdefault(name, []).append(decode_message(val, SCHEMAS[kind[8:]]))
        elif kind == "rep_str":
            out.setdefault(name, []).append(val.decode())
        elif kind in ("map_str", "map_bytes"):
            entry = {n: v for n, _, v in fields(val)}
            key = entry.get(1, b"").decode()
            raw = entry.get(2, b"")
            out.setdefault(name, {})[key] = raw.decode() if kind == "map_str" else base64.b64encode(raw).decode()
    return out


def decode(body: bytes) -> dict[str, Any]:
    """A protobuf-encoded Kubernetes object -> its JSON form (apiVersion and kind included)."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf magic prefix")
    envelope = {n: v for n, _, v in fields(body[len(MAGIC) :])}
    type_meta = {n: v.decode() for n, _, v in fields(envelope.get(1, b""))}
    api_version, kind = type_meta.get(1, ""), type_meta.get(2, "")
    schema = SCHEMAS.get(kind)
    if schema is None:
        raise ProtobufError(f"protobuf bodies of kind {kind!r} are not supported by the emulator; send JSON")
    obj = decode_message(envelope.get(2, b""), schema)
    # proto2 encodes unset optional scalars as empty values; JSON clients omit them.
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        for k in [k for k, v in meta.items() if v in ("", 0) and k != "name"]:
            del meta[k]
    return {"apiVersion": api_version, "kind": kind, **obj}


def _len_field(num: int, payload: bytes) -> bytes:
    """One length-delimited field (wire type 2); lengths here stay below 128, one varint byte."""
    assert len(payload) < 128
    return bytes([num << 3 | 2, len(payload)]) + payload


def openapi_v2_document(version: str) -> bytes:
    """The `/openapi/v2` document (gnostic openapi_v2.Document, protobuf) with no definitions and no paths.

    client-go's schema validation falls back to it for a group-version the `/openapi/v3` index lacks (a kind
    whose CRD is not installed): with no schema to check against, validation passes and the RESTMapper then
    answers `no matches for kind ...`, as on a real cluster. Fields: swagger = 1, info = 2 {title = 1,
    version = 2}, paths = 8.
    """
    info = _len_field(1, b"Kubernetes") + _len_field(2, version.encode())
    return _len_field(1, b"2.0") + _len_field(2, info) + _len_field(8, b"")
