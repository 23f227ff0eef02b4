"""Where ``statusCallback`` POSTs may go: the egress policy of ``[api] callback_allow``.

An App chooses the URL, the server makes the request: without a policy any App could make the
server reach what only the server can reach (a cloud metadata service, link-local devices).

- Without ``callback_allow`` (the default) every destination is allowed except the addresses in
  ``DENIED_NETWORKS``: link-local (169.254.0.0/16, fe80::/10), the cloud metadata addresses
  (169.254.169.254, fd00:ec2::254, 100.100.100.200), multicast (224.0.0.0/4, ff00::/8), the
  unspecified addresses (0.0.0.0/8, ::) and the broadcast address (255.255.255.255). Loopback
  and private addresses stay allowed.
- With ``callback_allow`` only hosts matching an entry are allowed: a host name equal to a
  name entry or under a ``*.NAME`` entry (``*.example.com`` covers ``a.example.com``, not
  ``example.com``), or an address within a CIDR entry (a plain address is a /32 or /128).
  An address of a CIDR entry is allowed even when it is in ``DENIED_NETWORKS``: an explicit
  entry is the operator's decision. An allowed name's addresses are still refused when they
  are in ``DENIED_NETWORKS`` and no CIDR entry covers them.

Create time (``CallbackPolicy.refusal``) checks the URL's host as written and does no DNS: a
slow resolver must not hold up the create, a name may resolve only later, and what a name
resolves to at create time says nothing about delivery time anyway. Delivery time
(``CallbackPolicy.resolve``) checks the host again (the policy may have changed across a
restart), resolves a name (``trio.socket.getaddrinfo``, in a worker thread), refuses it when
any of its addresses is denied, and returns the addresses; ``EgressTransport`` (the statusCallback
HTTP client's transport) calls it for every connection it opens and connects to one of those
very addresses, so a name that answers a harmless address to a first lookup and a denied one
to a second (DNS rebinding) cannot slip between check and connect.

Host forms that resolvers read as IPv4 addresses (``127.1``, ``0x7f.0.0.1``, ``2130706433``)
are checked as the address they name, and an IPv4-mapped IPv6 address (``::ffff:a.b.c.d``) as
its IPv4 address.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx
import trio

from engine.config_model import ApiConfig

logger = logging.getLogger(__name__)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

RESOLVE_TIMEOUT = 10.0  # seconds a delivery waits for DNS before counting it as a failed attempt
# DNS lookups of statusCallback hosts under way at once. A lookup runs in a worker thread that
# cannot be stopped; one that outlives RESOLVE_TIMEOUT keeps its slot (and its thread) until
# it ends, so a slow name server cannot take more than these threads from the engine's own
# work in threads (media counters and recordings at a call's end).
MAX_LOOKUPS = 4

# Refused by default; the first match names the reason (so metadata comes before link-local).
DENIED_NETWORKS: tuple[tuple[Network, str], ...] = tuple(
    (ipaddress.ip_network(cidr), why)
    for cidr, why in (
        ("169.254.169.254/32", "a cloud metadata address"),
        ("fd00:ec2::254/128", "a cloud metadata address"),
        ("100.100.100.200/32", "a cloud metadata address"),
        ("169.254.0.0/16", "a link-local address"),
        ("fe80::/10", "a link-local address"),
        ("224.0.0.0/4", "a multicast address"),
        ("ff00::/8", "a multicast address"),
        ("168.63.129.16/32", "a cloud metadata address"),  # Azure's WireServer
        ("0.0.0.0/8", "an unspecified address"),
        ("::/128", "the unspecified address"),
        ("255.255.255.255/32", "the broadcast address"),
    )
)


class EgressRefused(Exception):
    """A statusCallback destination the policy refuses; the text says why."""


# IPv6 forms that carry an IPv4 address in their low 32 bits (and reach it through a translator
# where one runs): NAT64's well-known prefix 64:ff9b::/96 (RFC 6052) and SIIT's ::ffff:0:0:0/96
# (RFC 7915); IPv4-compatible ::a.b.c.d (deprecated, ::/96 but for :: and ::1); 6to4 below.
_TRANSLATED = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("::ffff:0:0:0/96"))
_COMPATIBLE = ipaddress.IPv6Network("::/96")


def _plain(address: Address) -> Address:
    """The IPv4 address an IPv6 address carries (mapped, NAT64, SIIT, compatible, 6to4), else
    the address itself: a policy on IPv4 addresses must hold whatever their spelling."""
    if not isinstance(address, ipaddress.IPv6Address):
        return address
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:  # 2002:AABB:CCDD::/48
        return address.sixtofour
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if any(address in network for network in _TRANSLATED):
        return low32
    if address in _COMPATIBLE and int(address) > 1:
        return low32
    return address


def literal_address(host: str) -> Address | None:
    """The address a URL host names literally, None for a host name."""
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return _plain(ipaddress.ip_address(text))
    except ValueError:
        pass
    if ":" in text or not text or not text[-1].isalnum():
        return None
    try:  # the legacy IPv4 forms that resolvers (inet_aton) accept: 127.1, 0x7f.1, 2130706433
        return ipaddress.IPv4Address(socket.inet_aton(text))
    except OSError:
        return None


def _name(host: str) -> str:
    return host.lower().rstrip(".")


class CallbackPolicy:
    """The egress policy for ``allow`` (``[api] callback_allow``; None: the default policy)."""

    def __init__(
        self, allow: tuple[str, ...] | None = None, *, resolve_timeout: float = RESOLVE_TIMEOUT
    ) -> None:
        self.restricted = allow is not None
        self.resolve_timeout = resolve_timeout
        self._lookups = trio.Semaphore(MAX_LOOKUPS)  # see MAX_LOOKUPS
        networks: list[Network] = []
        names: set[str] = set()
        suffixes: list[str] = []
        for entry in allow or ():
            text = entry.strip().lower()
            try:
                network = ipaddress.ip_network(text, strict=False)
            except ValueError:
                if text.startswith("*."):
                    suffixes.append("." + _name(text[2:]))
                else:
                    names.add(_name(text))
                continue
            if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96:
                mapped = network.network_address.ipv4_mapped
                if mapped is not None:  # ::ffff:10.0.0.0/104 is 10.0.0.0/8
                    network = ipaddress.ip_network(f"{mapped}/{network.prefixlen - 96}")
            networks.append(network)
        self._networks = tuple(networks)
        self._names = frozenset(names)
        self._suffixes = tuple(suffixes)

    @classmethod
    def of_config(cls, config: ApiConfig) -> CallbackPolicy:
        """The policy of ``[api] callback_allow``."""
        return cls(config.callback_allow)

    def _listed(self, address: Address) -> bool:
        return any(address in network for network in self._networks)

    def denial(self, address: Address) -> str | None:
        """Why ``address`` is denied ("a link-local address"...), or None; an address of a
        CIDR entry of the allow list is never denied."""
        address = _plain(address)
        if self._listed(address):
            return None
        for network, why in DENIED_NETWORKS:
            if address in network:
                return why
        return None

    def refusal(self, host: str) -> str | None:
        """Why a URL with this host is refused, or None; no DNS (create time)."""
        address = literal_address(host)
        if address is not None:
            why = self.denial(address)
            if why is not None:
                return f"{address} is {why}"
            if self.restricted and not self._listed(address):
                return f"address {address} is not in this server's statusCallback allow list"
            return None
        name = _name(host)
        if not self.restricted or name in self._names or name.endswith(self._suffixes):
            return None
        return f"host {name} is not in this server's statusCallback allow list"

    async def resolve(self, host: str, port: int) -> list[str]:
        """The addresses to connect to for ``host`` (delivery time): ``EgressRefused`` when
        the host or any address it resolves to is refused; ``OSError`` when it does not
        resolve (in ``resolve_timeout``)."""
        refusal = self.refusal(host)
        if refusal is not None:
            raise EgressRefused(refusal)
        address = literal_address(host)
        if address is not None:
            return [str(address)]
        name = _name(host)
        with trio.move_on_after(self.resolve_timeout):
            infos = await self._getaddrinfo(name, port)
            addresses: list[Address] = []
            for info in infos:
                resolved = _plain(ipaddress.ip_address(str(info[4][0]).partition("%")[0]))
                if resolved not in addresses:
                    addresses.append(resolved)
            if not addresses:
                raise OSError(f"host {name} has no address")
            for resolved in addresses:
                why = self.denial(resolved)
                if why is not None:
                    raise EgressRefused(f"host {name} resolves to {resolved}, {why}")
            return [str(resolved) for resolved in addresses]
        raise TimeoutError(f"host {name} did not resolve in {self.resolve_timeout:g}s")

    async def _getaddrinfo(self, name: str, port: int) -> list[Any]:
        """``trio.socket.getaddrinfo`` in a task that holds a slot of ``_lookups`` until the
        lookup ends, however long after our caller stopped waiting; no slot: ``OSError``."""
        try:
            self._lookups.acquire_nowait()
        except trio.WouldBlock:
            raise OSError(
                f"host {name} not looked up: {MAX_LOOKUPS} DNS lookups are still under way"
            ) from None
        lookup = _Lookup()
        trio.lowlevel.spawn_system_task(self._lookup, name, port, lookup)
        await lookup.done.wait()
        if lookup.error is not None:
            raise lookup.error
        return lookup.infos

    async def _lookup(self, name: str, port: int, lookup: _Lookup) -> None:
        try:
            lookup.infos = await trio.socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            lookup.error = exc
        except Exception as exc:  # e.g. UnicodeError for a name IDNA refuses: never the run's
            lookup.error = OSError(f"host {name} cannot be looked up: {exc}")
        finally:
            self._lookups.release()
            lookup.done.set()


class _Lookup:
    """One DNS lookup's outcome, handed from the task that makes it to the one that waits."""

    __slots__ = ("done", "error", "infos")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.infos: list[Any] = []
        self.error: OSError | None = None


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's trio backend behind the policy: a connection is made only to an address
    ``CallbackPolicy.resolve`` vetted for the host."""

    def __init__(self, policy: CallbackPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.TrioBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await self._policy.resolve(host, port)
        except OSError as exc:  # no such name, resolver down or slow: a failed attempt
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        for index, address in enumerate(addresses):
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError:
                if index == len(addresses) - 1:
                    raise
        raise AssertionError("resolve returns at least one address")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


# httpcore's exceptions as httpx's (the most specific first), so callers catch httpx.HTTPError
_HTTPX_ERRORS: tuple[tuple[type[Exception], type[httpx.HTTPError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextmanager
def _as_httpx_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        for core_error, httpx_error in _HTTPX_ERRORS:
            if isinstance(exc, core_error):
                raise httpx_error(str(exc)) from exc
        raise


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        close = getattr(self._stream, "aclose", None)
        if close is not None:
            await close()


class EgressTransport(httpx.AsyncBaseTransport):
    """An httpx transport (HTTP/1.1, keep-alive, TLS checked against the URL's host name)
    whose every connection passes ``policy``: ``httpx.AsyncClient(transport=...)``.

    Connections are pooled by the URL's host name, so a kept-alive connection stays on the
    address that was checked when it was opened. ``EgressRefused`` propagates out of the
    request as is; other failures are httpx's exceptions. Proxy variables of the environment
    are not used (a proxy would resolve names where the policy cannot see)."""

    def __init__(self, policy: CallbackPolicy, *, ssl_context: ssl.SSLContext | None = None):
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or httpx.create_ssl_context(),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=_GuardedBackend(policy),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _as_httpx_errors():
            response = await self._pool.handle_async_request(core_request)
        assert isinstance(response.stream, AsyncIterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()
