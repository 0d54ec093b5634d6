"""Which proxy a request goes through, from HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and NO_PROXY.

Read once per connection owner and used by both planes, so a client behind a proxy reaches
its DPs the same way it reaches the site: `core.site_transport` hands the answer to httpx,
`core.blob_transfer` opens the tunnel (https) or sends the absolute-form request (http)
itself. The variables are read as httpx and urllib read them (lower case wins over upper
case; `HTTP_PROXY` is ignored when `REQUEST_METHOD` says we run as a CGI script), and
NO_PROXY takes what httpx takes (`*`, host names, `.domain`, `domain`, `localhost`, IP
addresses, `host:port`, `scheme://host`) and CIDR ranges too. Only plain-HTTP proxies are
spoken to; an https site or DP is then reached through a CONNECT tunnel, so TLS still runs
end to end with the pinned CA.
"""

from __future__ import annotations

import base64
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from quartermaster.core.errors import InvalidInput

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Proxy:
    """One proxy: where it listens, the credentials it wants, and the variable that named it."""

    host: str
    port: int
    variable: str  # e.g. HTTPS_PROXY: messages say where the setting came from
    username: str = ""
    password: str = ""

    @property
    def url(self) -> str:
        """The proxy's URL without credentials: safe for logs and status messages."""
        return f"http://{_netloc(self.host, self.port)}"

    @property
    def url_with_credentials(self) -> str:
        if not self.username:
            return self.url
        return f"http://{self.username}:{self.password}@{_netloc(self.host, self.port)}"

    @property
    def authorization(self) -> str:
        """The Proxy-Authorization header value, or "" without credentials."""
        if not self.username:
            return ""
        pair = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")

    def __str__(self) -> str:
        return f"the proxy {self.url} (from {self.variable})"


@dataclass(frozen=True)
class _Bypass:
    """One NO_PROXY entry."""

    scheme: str = ""  # "" matches http and https
    host: str = ""
    port: int | None = None
    network: IPNetwork | None = None
    subdomains_only: bool = False
    exact: bool = False

    def matches(self, scheme: str, host: str, port: int) -> bool:
        if self.scheme and self.scheme != scheme:
            return False
        if self.port is not None and self.port != port:
            return False
        if self.network is not None:
            return _in_network(host, self.network)
        if self.exact:
            return host == self.host
        if host.endswith("." + self.host):
            return True
        return not self.subdomains_only and host == self.host


@dataclass(frozen=True)
class ProxySettings:
    """The proxy for each scheme and the NO_PROXY exceptions; `proxy_for` decides per URL."""

    by_scheme: Mapping[str, Proxy]
    bypass: tuple[_Bypass, ...] = ()
    bypass_all: bool = False

    @classmethod
    def none(cls) -> ProxySettings:
        return cls({})

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> ProxySettings:
        """The settings the environment gives (`os.environ` unless another mapping is given)."""
        env = os.environ if environ is None else environ
        everything = _variable(env, "all_proxy")
        by_scheme: dict[str, Proxy] = {}
        for scheme in ("http", "https"):
            found = _variable(env, f"{scheme}_proxy")
            if scheme == "http" and found and found[0] == "HTTP_PROXY" and "REQUEST_METHOD" in env:
                found = None  # a CGI request can set HTTP_PROXY through a header ("httpoxy")
            found = found or everything
            if found:
                by_scheme[scheme] = _parse_proxy(*found)
        no_proxy = _variable(env, "no_proxy")
        entries = [e.strip().lower() for e in (no_proxy[1] if no_proxy else "").split(",")]
        if "*" in entries:
            return cls(by_scheme, (), True)
        return cls(by_scheme, tuple(_parse_bypass(e) for e in entries if e))

    def proxy_for(self, url: str) -> Proxy | None:
        """The proxy a request to `url` goes through; None to connect directly."""
        parts = urlsplit(url)
        scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
        proxy = self.by_scheme.get(scheme)
        if proxy is None or self.bypass_all or not host:
            return None
        try:
            port = parts.port or DEFAULT_PORTS.get(scheme, 0)
        except ValueError:  # not a URL one can connect to: its user is told so, not here
            return None
        if any(entry.matches(scheme, host, port) for entry in self.bypass):
            return None
        return proxy


def _variable(env: Mapping[str, str], name: str) -> tuple[str, str] | None:
    """(name as set, value) of a variable, the lower-case spelling first; None if unset.

    A lower-case variable set to "" hides the upper-case one, as in urllib.
    """
    lower, upper = name.lower(), name.upper()
    if lower in env:
        return (lower, env[lower].strip()) if env[lower].strip() else None
    value = env.get(upper, "").strip()
    return (upper, value) if value else None


def _parse_proxy(variable: str, value: str) -> Proxy:
    text = value if "://" in value else f"http://{value}"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        parts, port = None, None
    if parts is None or parts.scheme.lower() != "http" or not parts.hostname:
        shown = f"{parts.scheme}://{parts.hostname or ''}" if parts is not None else "it"
        raise InvalidInput(
            f"{variable} names a proxy Quartermaster cannot use ({shown})",
            f"set {variable} to a plain-HTTP proxy such as http://proxy.example:3128 "
            "(https sites and DPs are reached through it with CONNECT), or unset it",
        )
    return Proxy(
        parts.hostname.lower(),
        port or 80,
        variable,
        unquote(parts.username or ""),
        unquote(parts.password or ""),
    )


def _parse_bypass(entry: str) -> _Bypass:
    scheme = ""
    if "://" in entry:
        scheme, entry = entry.split("://", 1)
        scheme = "" if scheme == "all" else scheme
        entry = entry.split("/", 1)[0]
    network = _network(entry)
    if network is not None:
        return _Bypass(scheme, network=network)
    host, port = _split_port(entry)
    network = _network(host)
    if network is not None:
        return _Bypass(scheme, port=port, network=network)
    if host.startswith("*"):
        host = host[1:]
    if host.startswith("."):
        return _Bypass(scheme, host[1:], port, subdomains_only=True)
    return _Bypass(scheme, host, port, exact=host == "localhost")


def _split_port(entry: str) -> tuple[str, int | None]:
    """`host:port`, `[v6]:port` or a bare host; a port that is not a number stays in host."""
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        return host, int(port) if port.isdigit() else None
    host, colon, port = entry.rpartition(":")
    if colon and port.isdigit() and ":" not in host:
        return host, int(port)
    return entry, None


def _network(text: str) -> IPNetwork | None:
    """An IP address (a /32 or /128) or a CIDR range; None for a host name."""
    try:
        return ipaddress.ip_network(text.strip("[]"), strict=False)
    except ValueError:
        return None


def _in_network(host: str, network: IPNetwork) -> bool:
    try:
        return ipaddress.ip_address(host) in network
    except ValueError:  # a host name: NO_PROXY addresses are not looked up, as in httpx
        return False


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
