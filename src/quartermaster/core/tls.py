"""TLS trust for clients and DPs: a pinned CA (or self-signed certificate), nothing else.

A client or DP given `--ca-file` at registration trusts only that file for every later call
(site API, content library, DPs), not the system's CA list: a certificate from any other
authority, however public, is refused.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from quartermaster.core.errors import InvalidInput, NotFound


@dataclass(frozen=True)
class ServerTLS:
    """A server's PEM certificate (chain) and private key (`--tls-cert`, `--tls-key`)."""

    cert: Path
    key: Path

    @classmethod
    def from_options(cls, cert: Path | None, key: Path | None) -> ServerTLS | None:
        if cert is None and key is None:
            return None
        if cert is None or key is None:
            raise InvalidInput(
                "TLS needs both a certificate and its key",
                "pass --tls-cert FILE and --tls-key FILE together",
            )
        for what, path in (("certificate", cert), ("key", key)):
            if not path.is_file():
                raise NotFound(
                    f"TLS {what} file {path} does not exist",
                    "give the PEM files of the server certificate and its key",
                )
        tls = cls(cert.resolve(), key.resolve())
        tls.server_context()  # a bad pair fails now, with the file names, not at first request
        return tls

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(self.cert, self.key)
        except (ssl.SSLError, OSError) as exc:
            raise InvalidInput(
                f"cannot load the TLS certificate {self.cert} with key {self.key}: {exc}",
                "give a PEM certificate and the PEM private key that matches it",
            ) from None
        return context


def pinned_context(ca_file: Path) -> ssl.SSLContext:
    """A client context that trusts exactly the certificates in `ca_file`.

    Partial chains are allowed, so pinning the server's own (not self-signed) certificate
    works as well as pinning its CA.
    """
    try:
        context = ssl.create_default_context(cafile=str(ca_file))
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise InvalidInput(
            f"cannot use {ca_file} as a CA file: {exc}",
            "give the PEM file of the CA that issued the server's certificate, "
            "or the server's self-signed certificate",
        ) from None
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context


def read_ca_file(path: Path) -> bytes:
    """The bytes of a PEM CA file, checked to hold at least one usable certificate."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(
            f"cannot read the CA file {path}: {exc.strerror}",
            "give the path of a PEM certificate file",
        ) from None
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise InvalidInput(
            f"{path} holds no PEM certificate",
            "give the PEM file of the CA (or the self-signed certificate)",
        )
    pinned_context(path)
    return data


def certificate_problem(exc: BaseException) -> str:
    """Why TLS verification failed, if that is what `exc` (or its causes) is; else ""."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return current.verify_message or str(current)
        if isinstance(current, ssl.SSLError) and "CERTIFICATE_VERIFY_FAILED" in str(current):
            return str(current)
        current = current.__cause__ or current.__context__
    text = str(exc)
    return text if "CERTIFICATE_VERIFY_FAILED" in text else ""
