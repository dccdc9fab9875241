"""cilium-certgen (`quay.io/cilium/certgen`): writes the CA Secret and the certificate Secrets its arguments and
its `CILIUM_CERTGEN_CONFIG` name, with real X.509 certificates of the configured validity.

The real chart's hubble-generate-certs Job/CronJob runs `/usr/bin/cilium-certgen --ca-generate=true
--ca-reuse-secret --ca-secret-namespace=kube-system --ca-secret-name=cilium-ca --ca-common-name="Cilium CA"`
with `CILIUM_CERTGEN_CONFIG` = `certs: [{name, namespace, commonName, hosts, usage, validity}]`.
"""

from __future__ import annotations

import base64
import copy
import datetime
import ipaddress
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

if TYPE_CHECKING:
    from sandbox.kube.controllers.base import Context

K_SECRET = ("", "secrets")
CA_VALIDITY_DEFAULT = "26280h"  # certgen's --ca-validity-duration default: 3 years
DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")
UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def go_duration(text: str) -> datetime.timedelta:
    """A Go duration (`8760h`, `1h30m`, `94608000s`) as a timedelta."""
    parts = DURATION.findall(text.strip())
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise ValueError(f"invalid duration {text!r}")
    return datetime.timedelta(seconds=sum(float(n) * UNITS[u] for n, u in parts))


@dataclass
class CertgenArgs:
    ca_secret_name: str = "cilium-ca"
    ca_secret_namespace: str = "kube-system"
    ca_common_name: str = "Cilium CA"
    ca_validity: datetime.timedelta = field(default_factory=lambda: go_duration(CA_VALIDITY_DEFAULT))
    ca_generate: bool = False
    ca_reuse_secret: bool = False
    certs: list[dict[str, Any]] = field(default_factory=list)


def parse(container: dict[str, Any]) -> CertgenArgs:
    """certgen's flags (`--flag=value`, `--flag value`, booleans bare) and the config from its env."""
    out = CertgenArgs()
    argv = [str(a) for a in (container.get("command") or [])[1:]] + [str(a) for a in container.get("args") or []]
    flags: dict[str, str] = {}
    i = 0
    while i < len(argv):
        name, eq, value = argv[i].lstrip("-").partition("=")
        if not eq and i + 1 < len(argv) and not argv[i + 1].startswith("-"):
            value, i = argv[i + 1], i + 1
        flags[name] = value if (eq or value) else "true"
        i += 1
    out.ca_secret_name = flags.get("ca-secret-name", out.ca_secret_name)
    out.ca_secret_namespace = flags.get("ca-secret-namespace", out.ca_secret_namespace)
    out.ca_common_name = flags.get("ca-common-name", out.ca_common_name)
    if "ca-validity-duration" in flags:
        out.ca_validity = go_duration(flags["ca-validity-duration"])
    out.ca_generate = flags.get("ca-generate", "false").lower() == "true"
    out.ca_reuse_secret = flags.get("ca-reuse-secret", "false").lower() == "true"
    env = {e.get("name"): e.get("value", "") for e in container.get("env") or []}
    config = yaml.safe_load(env.get("CILIUM_CERTGEN_CONFIG") or "") or {}
    out.certs = list(config.get("certs") or [])
    return out


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def make_ca(common_name: str, validity: datetime.timedelta, now: datetime.datetime) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )  # digital signature, cert sign, CRL sign
        .sign(key, hashes.SHA256())
    )
    return _pem(cert), _key_pem(key)


def _san(hosts: list[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for h in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h))
    return x509.SubjectAlternativeName(names)


def make_cert(spec: dict[str, Any], ca_pem: bytes, ca_key_pem: bytes, now: datetime.datetime) -> tuple[bytes, bytes]:
    """A leaf certificate for one `certs:` entry (commonName, hosts, usage, validity), signed by the CA."""
    ca = x509.load_pem_x509_certificate(ca_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey), "the sandbox's certgen CA keys are EC keys"
    key = ec.generate_private_key(ec.SECP256R1())
    usage = set(spec.get("usage") or [])
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, str(spec.get("commonName", "")))]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + go_duration(str(spec.get("validity") or "8760h")))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                "signing" in usage, False, "key encipherment" in usage, False, False, False, False, False, False
            ),
            critical=True,
        )
    )
    eku = [
        o
        for u, o in (("server auth", ExtendedKeyUsageOID.SERVER_AUTH), ("client auth", ExtendedKeyUsageOID.CLIENT_AUTH))
        if u in usage
    ]
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    if spec.get("hosts"):
        builder = builder.add_extension(_san([str(h) for h in spec["hosts"]]), critical=False)
    return _pem(builder.sign(ca_key, hashes.SHA256())), _key_pem(key)


def _ca(ctx: Context, args: CertgenArgs, now: datetime.datetime) -> tuple[bytes, bytes] | None:
    """The CA: the existing Secret's with --ca-reuse-secret, else a new one with --ca-generate (written back)."""
    live = ctx.store.get(K_SECRET, args.ca_secret_namespace, args.ca_secret_name)
    data = (live or {}).get("data") or {}
    if args.ca_reuse_secret and "ca.crt" in data and "ca.key" in data:
        return base64.b64decode(data["ca.crt"]), base64.b64decode(data["ca.key"])
    if not args.ca_generate:
        return None
    ca_pem, ca_key = make_ca(args.ca_common_name, args.ca_validity, now)
    body = {"ca.crt": _b64(ca_pem), "ca.key": _b64(ca_key)}
    secret = {"metadata": {"name": args.ca_secret_name, "namespace": args.ca_secret_namespace}, "data": body}
    _write(ctx, secret, args.ca_secret_namespace, live)
    return ca_pem, ca_key


def _write(ctx: Context, secret: dict[str, Any], namespace: str, live: dict[str, Any] | None) -> None:
    if live is None:
        ctx.objects.create_kind("v1", "Secret", secret, namespace)
    else:
        new = copy.deepcopy(live)
        new.update({k: v for k, v in secret.items() if k != "metadata"})
        ctx.store.update(K_SECRET, new, bump_generation=False)


def run(ctx: Context, pod: dict[str, Any], container: dict[str, Any]) -> None:
    """What one run of certgen does: the CA, then every configured certificate (overwriting older ones)."""
    args = parse(container)
    now = datetime.datetime.fromtimestamp(ctx.clock.time(), tz=datetime.UTC)
    ca = _ca(ctx, args, now)
    if ca is None:
        return  # the real program exits non-zero: no CA to sign with
    for spec in args.certs:
        namespace = str(spec.get("namespace") or pod["metadata"]["namespace"])
        tls_crt, tls_key = make_cert(spec, ca[0], ca[1], now)
        data = {"ca.crt": _b64(ca[0]), "tls.crt": _b64(tls_crt), "tls.key": _b64(tls_key)}
        secret = {
            "metadata": {"name": str(spec["name"]), "namespace": namespace},
            "type": "kubernetes.io/tls",
            "data": data,
        }
        _write(ctx, secret, namespace, ctx.store.get(K_SECRET, namespace, str(spec["name"])))
