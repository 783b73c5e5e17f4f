"""The client's address behind reverse proxies the operator trusts (`trusted_proxies`).

Behind a proxy every request comes from the proxy's address, so the per-address rate limits,
the sign-in throttle, `metrics_allow` and the audit would see one client. A request whose
peer lies in `trusted_proxies` is judged by the address its X-Forwarded-For names instead:
read from the right, each hop added by a trusted proxy is believed, and the first address
that is not a trusted proxy is the client (nginx's `real_ip_recursive`). A client that
connects directly, or sends its own X-Forwarded-For through the proxy, cannot choose the
address it is judged by: only the hops that trusted proxies appended are read. Werkzeug's
ProxyFix trusts a fixed number of hops from whoever connects, which a direct client could
forge, hence this check of the peer first.

X-Forwarded-Proto is not read: nothing here builds absolute URLs, and `tls_in_front` says
whether TLS terminates in front.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

#: The peer that connected, kept in the WSGI environ when a trusted proxy's header replaced it.
PEER_KEY = "appliance.proxy_peer"


def address_in(address: str | None, networks: Iterable[str]) -> bool:
    """Whether `address` lies in one of `networks` (CIDR); False for no or a bad address."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # an IPv4 client of a dual-stack listener
    return any(ip in ipaddress.ip_network(network, strict=False) for network in networks)


def forwarded_client(peer: str, forwarded_for: str, trusted: tuple[str, ...]) -> str:
    """The client of a request from `peer` carrying `forwarded_for`: `peer` itself unless it
    is a trusted proxy; otherwise the rightmost hop that is not one (the leftmost hop when
    every hop is a proxy), stopping at a hop that is not an address."""
    client = peer
    if not address_in(peer, trusted):
        return client
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            break  # garbage before this point was not written by a proxy we trust
        client = hop
        if not address_in(hop, trusted):
            break
    return client


class TrustedProxies:
    """WSGI middleware: REMOTE_ADDR as forwarded by trusted proxies."""

    def __init__(self, app: Any, trusted: tuple[str, ...]) -> None:
        self.app, self.trusted = app, trusted

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        peer = environ.get("REMOTE_ADDR", "")
        if address_in(peer, self.trusted):
            environ[PEER_KEY] = peer
            environ["REMOTE_ADDR"] = forwarded_client(
                peer, environ.get("HTTP_X_FORWARDED_FOR", ""), self.trusted)
        return self.app(environ, start_response)
