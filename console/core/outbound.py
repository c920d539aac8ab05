"""The outbound policy: requests the console makes on a user's behalf (docs/security.md).

Two kinds of request leave the console for a URL a user typed: serving benchmarks (``jobs/benchmarks``)
and notification channels (``console/alerting/notifiers``). Gateway upstreams are not in scope: they are
instances the console started itself. The policy:

- **No redirects.** A 3xx answer is a failure, never followed (a redirect would reach an address the checks
  below never saw).
- **Benchmarks** target the endpoints of the console's own instances. Any other URL is accepted only when every
  address of its host lies in ``CONSOLE_BENCHMARK_ALLOWED_NETWORKS`` (CIDRs an admin lists; empty by default).
- **Notification channels** never target link-local addresses (``169.254.0.0/16``, ``fe80::/10``: the cloud
  metadata service lives there). With ``CONSOLE_NOTIFY_ALLOW_PRIVATE`` false they also refuse loopback, private
  and other non-global ranges. It is true by default, since receivers are often internal services.
- **Bodies of foreign services are never echoed**: failures keep the status code and a generic message.

Each check resolves the host (``getaddrinfo``) and judges every address, so a name cannot hide an address.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from django.conf import settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Never a notification or benchmark target, whatever the settings say (unless an admin lists the network).
ALWAYS_REFUSED = [ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10")]


class OutboundRefused(ValueError):
    """The URL may not be requested on a user's behalf; the message says why (safe to show)."""


def parse_networks(values: Iterable[str]) -> list[Network]:
    """CIDRs (``10.1.0.0/16``, ``192.0.2.7``); raises ValueError naming a bad one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"not a network (CIDR): {value!r}") from None
    return networks


def host_port(url: str) -> tuple[str, int | None]:
    """The host (lower case, no brackets) and the port of an http(s) URL; raises OutboundRefused."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OutboundRefused("Only http:// and https:// URLs with a host are allowed.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise OutboundRefused("The URL's port is not a number between 0 and 65535.") from None
    return parts.hostname.lower(), port


def addresses(host: str) -> list[Address]:
    """Every address the host stands for (itself when it is a literal); raises OutboundRefused."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        raise OutboundRefused(f"The host {host!r} does not resolve.") from None
    found = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        found.append(address)
    return found


def _in(address: Address, networks: Iterable[Network]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def check_notify_url(url: str) -> None:
    """Raise OutboundRefused when a notification channel may not post to ``url``."""
    host, _ = host_port(url)
    allow_private = getattr(settings, "CONSOLE_NOTIFY_ALLOW_PRIVATE", True)
    try:
        found = addresses(host)
    except OutboundRefused:
        return  # a name that does not resolve here reaches nothing (it is checked again at each delivery)
    for address in found:
        if _in(address, ALWAYS_REFUSED) or address.is_link_local:
            raise OutboundRefused(f"{address} is a link-local address: notifications never go there.")
        if not allow_private and not address.is_global:
            raise OutboundRefused(f"{address} is a loopback, private or reserved address, and "
                                  "CONSOLE_NOTIFY_ALLOW_PRIVATE is false.")


def check_benchmark_url(url: str, own_endpoints: Iterable[str]) -> None:
    """Raise OutboundRefused unless ``url`` is one of the console's own instance endpoints (same host and
    port) or every address of its host lies in ``CONSOLE_BENCHMARK_ALLOWED_NETWORKS``."""
    target = host_port(url)
    for endpoint in own_endpoints:
        try:
            if host_port(endpoint) == target:
                return
        except OutboundRefused:
            continue
    allowed = parse_networks(getattr(settings, "CONSOLE_BENCHMARK_ALLOWED_NETWORKS", []))
    found = addresses(target[0])
    if allowed and found and all(_in(address, allowed) for address in found):
        return
    raise OutboundRefused("Benchmarks target the endpoints of this console's jobs; other URLs only in the networks "
                          "an admin allows (CONSOLE_BENCHMARK_ALLOWED_NETWORKS).")


def failure_message(status_code: int | None) -> str:
    """What a failure with a foreign answer says: the status code only, never the body."""
    if status_code is None:
        return "the receiver gave no usable answer"
    if 300 <= status_code < 400:
        return f"the receiver answered HTTP {status_code} (a redirect; redirects are not followed)"
    return f"the receiver answered HTTP {status_code}"


def http_client(timeout: float):
    """The httpx client for requests on a user's behalf: no redirects, a bounded connect time."""
    import httpx

    return httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)), follow_redirects=False)
