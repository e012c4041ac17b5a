"""Key material for the local control plane.

Everything is generated in-process with ``cryptography`` so the harness needs no openssl CLI and
every run gets fresh, throw-away keys. TLS and client keys are ECDSA P-256 (fast to generate,
accepted by every Kubernetes component); the ServiceAccount signing key is RSA because the
apiserver signs tokens with RS256.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: Names the apiserver must answer to: loopback for local clients, the first service IP and the
#: in-cluster DNS names for anything that talks to ``kubernetes.default``.
APISERVER_DNS_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
APISERVER_IPS = ("127.0.0.1", "10.0.0.1")

#: Client identities (file stem -> (CN, O)). RBAC binds the built-in roles to these exact names.
CLIENT_IDENTITIES: dict[str, tuple[str, str | None]] = {
    "admin": ("admin", "system:masters"),
    "kube-controller-manager": ("system:kube-controller-manager", None),
    "kube-scheduler": ("system:kube-scheduler", None),
}

_VALIDITY = dt.timedelta(days=365)
# Backdated so a freshly minted cert is valid even if a component's clock is a little behind.
_BACKDATE = dt.timedelta(hours=1)


@dataclass(frozen=True)
class KeyPair:
    """Paths of a PEM certificate and its PEM private key."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class PKI:
    """All files the control plane needs, as written by :func:`generate_pki`."""

    ca: KeyPair
    apiserver: KeyPair
    clients: dict[str, KeyPair]
    sa_private_key: Path
    sa_public_key: Path


def _new_ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = []
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _VALIDITY)
    )


def _signing_usage(issues_certificates: bool) -> x509.KeyUsage:
    """Digital signatures only (EC keys), plus signing certificates and CRLs for a CA."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=issues_certificates,
        crl_sign=issues_certificates,
        encipher_only=False,
        decipher_only=False,
    )


def _leaf(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    sans: x509.SubjectAlternativeName | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _new_ec_key()
    builder = (
        _builder(subject, ca_cert.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            _signing_usage(issues_certificates=False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if sans is not None:
        builder = builder.add_extension(sans, critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def generate_pki(directory: Path) -> PKI:
    """Write a fresh CA, apiserver serving cert, client certs and SA key pair to ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)

    ca_key = _new_ec_key()
    ca_subject = _name("runbook-devcluster-ca")
    ca_cert = (
        _builder(ca_subject, ca_subject, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            _signing_usage(issues_certificates=True),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca = KeyPair(directory / "ca.crt", directory / "ca.key")
    _write_cert(ca.cert, ca_cert)
    _write_key(ca.key, ca_key)

    sans = x509.SubjectAlternativeName(
        [x509.DNSName(n) for n in APISERVER_DNS_NAMES]
        + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in APISERVER_IPS]
    )
    serving_cert, serving_key = _leaf(
        ca_cert, ca_key, _name("kube-apiserver"), ExtendedKeyUsageOID.SERVER_AUTH, sans
    )
    apiserver = KeyPair(directory / "apiserver.crt", directory / "apiserver.key")
    _write_cert(apiserver.cert, serving_cert)
    _write_key(apiserver.key, serving_key)

    clients: dict[str, KeyPair] = {}
    for stem, (cn, org) in CLIENT_IDENTITIES.items():
        cert, key = _leaf(ca_cert, ca_key, _name(cn, org), ExtendedKeyUsageOID.CLIENT_AUTH)
        pair = KeyPair(directory / f"{stem}.crt", directory / f"{stem}.key")
        _write_cert(pair.cert, cert)
        _write_key(pair.key, key)
        clients[stem] = pair

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sa_private = directory / "sa.key"
    sa_public = directory / "sa.pub"
    _write_key(sa_private, sa_key)
    sa_public.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )

    return PKI(
        ca=ca,
        apiserver=apiserver,
        clients=clients,
        sa_private_key=sa_private,
        sa_public_key=sa_public,
    )
