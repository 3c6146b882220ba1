"""Certificates a test makes for itself (trustme): a CA, a certificate for 127.0.0.1
signed by it, one for another name signed by it too, and a CA that signed nothing, as PEM
files for the servers and clients that read files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trustme

from local.servers import Tls


@dataclass(frozen=True)
class Certificates:
    server: Tls  # the server's certificate and key, and the CA that signed them
    other_ca: Path  # a CA that did not: a client trusting it must refuse the server
    other_name: Tls  # signed by the same CA for another name: a client must refuse it too


def make_certificates(folder: Path) -> Certificates:
    folder.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    other_ca = folder / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    return Certificates(_issue(ca, folder, "server", "127.0.0.1", "localhost"), other_ca,
                        _issue(ca, folder, "elsewhere", "elsewhere.example"))


def _issue(ca: trustme.CA, folder: Path, name: str, *identities: str) -> Tls:
    issued = ca.issue_cert(*identities)
    tls = Tls(folder / f"{name}.pem", folder / f"{name}.key", folder / "ca.pem")
    for blob in issued.cert_chain_pems:
        blob.write_to_path(str(tls.cert), append=True)
    issued.private_key_pem.write_to_path(str(tls.key))
    return tls
