"""Who sent a request, and over what, as seen through trusted proxies only.

``X-Forwarded-For`` and ``X-Forwarded-Proto`` are anyone's to write, so they count only
when the peer that connected is a proxy listed in ``FORWARDED_ALLOW_IPS``. The list of
forwarded addresses is read right to left (each proxy appends the peer it saw): the first
address that is not a trusted proxy is the client. This is the rule and the variable of
uvicorn's own proxy-headers middleware, which runs first under uvicorn; applying it here
as well keeps the answer the same under any server, and a malformed entry stops the
function at start-up instead of being silently ignored.

The default trusts the loopback addresses only: in the cloud that is the Lambda Web
Adapter, which passes on the load balancer's headers.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from typing import NamedTuple

from starlette.types import Scope

DEFAULT_TRUSTED = "127.0.0.1,::1"
NOBODY = "none"  # trust no peer: the forwarded headers are always ignored
UNKNOWN_CLIENT = "unknown"  # no peer address (a Unix socket)
_MAX_ADDRESS_CHARS = 64  # an untrusted entry that is no address is kept short

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_trusted(raw: str) -> tuple[Network, ...]:
    """``FORWARDED_ALLOW_IPS``: addresses and CIDR networks, comma separated, or ``none``."""
    if raw.strip().lower() == NOBODY:
        return ()
    networks = []
    for entry in (part.strip() for part in raw.split(",")):
        if entry == "*":
            raise ValueError("'*' would let any client choose its own address: list the "
                             "proxies' addresses or networks (0.0.0.0/0,::/0 for every peer)")
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or CIDR network") from None
    return tuple(networks)


def _split_port(entry: str) -> str:
    """The host of ``1.2.3.4``, ``1.2.3.4:5678``, ``::1`` or ``[::1]:5678``."""
    if entry.startswith("["):
        return entry[1:entry.find("]")] if "]" in entry else entry
    if entry.count(":") == 1:
        return entry.partition(":")[0]
    return entry


class Peer(NamedTuple):  # a tuple: made once or more per request
    address: str  # the client, normalised when it is an IP address
    https: bool  # the client's connection (to the first proxy, if any) is HTTPS


class TrustedProxies:
    def __init__(self, networks: Iterable[Network]) -> None:
        self._networks = tuple(networks)
        # Most requests come from a handful of proxies: remember the verdicts.
        self._cached_trusts = functools.lru_cache(maxsize=1024)(self._trusts)

    def trusts(self, host: str) -> bool:
        return len(host) <= _MAX_ADDRESS_CHARS and self._cached_trusts(host)

    def _trusts(self, host: str) -> bool:
        if not self._networks:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self._networks)

    def resolve(self, scope: Scope) -> bool:
        """Write the client and the scheme the proxies saw into the scope (the edge does it
        once per request, common/edge.py); return whether the client came over HTTPS."""
        peer = self.peer(scope)
        client = scope.get("client")
        if client is None or client[0] != peer.address:
            scope["client"] = (peer.address, 0)
        scope["scheme"] = "https" if peer.https else "http"
        return peer.https

    def peer(self, scope: Scope) -> Peer:
        client = scope.get("client")
        host = client[0] if client else UNKNOWN_CLIENT
        https = scope.get("scheme") == "https"
        if not self.trusts(host):
            return Peer(host, https)  # the server's own rendering of the socket's address
        forwarded_for: list[str] = []
        for name, value in scope["headers"]:
            if name == b"x-forwarded-for":
                forwarded_for.extend(value.decode("latin-1").split(","))
            elif name == b"x-forwarded-proto":
                https = value.decode("latin-1").strip().lower() == "https"
        if not forwarded_for:  # a proxy that forwarded no address, or a local client
            return Peer(host, https)
        # An entry with no host (empty, ":80", "[]") is skipped, never taken as the client.
        entries = [hop for entry in forwarded_for if (hop := _split_port(entry.strip()))]
        for entry in reversed(entries):
            if not self.trusts(entry):
                return Peer(_normalise(entry), https)
        # Every hop is a trusted proxy: the first one is the client.
        return Peer(_normalise(entries[0]) if entries else host, https)


def peer_of(scope: Scope) -> Peer:
    """The client of a request the edge has resolved."""
    client = scope.get("client")
    return Peer(client[0] if client else UNKNOWN_CLIENT, scope.get("scheme") == "https")


def _normalise(host: str) -> str:
    if len(host) > _MAX_ADDRESS_CHARS:
        return host[:_MAX_ADDRESS_CHARS]
    return _normalised(host)


@functools.lru_cache(maxsize=4096)
def _normalised(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host
