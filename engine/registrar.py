"""Registrar and location service (RFC 3261 §10.3) for the directory's extensions.

A device registers as its extension's extended number (``0003*210``) with Digest
authentication (username = extended number, password from the directory). Bindings live in the
store, so they survive a restart; each remembers where the REGISTER came from (``received``),
which is where INVITEs for the extension go (the device may be behind NAT: RFC 3581 spirit).
Expiry: the Contact's ``expires`` parameter, else the Expires header, else 3600 s; at most
``MAX_EXPIRES``; below ``MIN_EXPIRES`` (and not 0) gets 423 with Min-Expires. A binding made
over TCP gets at most ``max_tcp_expires`` (the server passes ``[sip] tcp_idle_timeout``):
INVITEs reach such a device only over the connection it registered on, which the transport
closes when no SIP message passed for that long, so the device's re-REGISTER before expiry is
what keeps it open. ``*`` with Expires 0 removes every binding of the extension. A REGISTER
whose Call-ID made a binding it touches with a CSeq at least its own arrived late (or was
replayed): 500, nothing changes (§10.3 step 7); a device that restarted uses a new Call-ID and
starts afresh.

Path (RFC 3327): the ``Path`` values of a REGISTER (a proxy in front, such as Kamailio, adds
one) are stored with its bindings and copied into the 200, which says ``Supported: path``;
requests to such a device carry the stored Path as a pre-loaded route set (``SipLegs``).

Digest checks (``authenticate``, also used for inbound INVITEs): malformed credentials get 400;
a replayed or expired nonce gets a fresh challenge with ``stale=true``; a wrong password gets
403 and is counted by the ``FailureLimiter``, which, once a user or source has failed too
often, refuses its credentials with 403 and ``Retry-After`` before checking them.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from email.utils import formatdate

from engine.directory import Directory, Extension
from engine.limiter import FailureLimiter
from engine.store import ContactRecord, Store
from sip.auth import AuthStatus, DigestServer
from sip.digest import parse_credentials
from sip.endpoint_ids import new_tag
from sip.endpoint_incoming import IncomingRequest
from sip.errors import RemoteProtocolError
from sip.message import Request, Response
from sip.uri import SipUri, parse_name_addr_list

logger = logging.getLogger(__name__)

DEFAULT_EXPIRES = 3600
MIN_EXPIRES = 60
MAX_EXPIRES = 86400


class Registrar:
    def __init__(
        self,
        directory: Directory,
        store: Store,
        digest: DigestServer,
        *,
        wall_clock: Callable[[], float] = time.time,
        max_tcp_expires: int | None = None,
        limiter: FailureLimiter | None = None,
    ) -> None:
        self.directory = directory
        self.store = store
        self.digest = digest
        self.limiter = limiter or FailureLimiter("sip digest")
        self._now = wall_clock
        self._max_tcp_expires = max_tcp_expires

    def authenticate(
        self, request: Request, header: str, source: str
    ) -> tuple[Extension | None, Response | None]:
        """Digest-check ``request`` from host ``source``; the extension, or the response to
        send instead."""
        now = self._now()
        value = request.headers.get(header)
        if value is None:
            return None, self.challenge(request, stale=False)
        try:
            credentials = parse_credentials(value)
        except RemoteProtocolError as exc:
            return None, request.response(400, f"Bad credentials: {exc.reason}")
        user = credentials.username
        wait = self.limiter.retry_after(user, source, now)
        if wait is not None:
            return None, request.response(
                403,
                "Forbidden (too many failed attempts)",
                headers=[("Retry-After", str(max(1, math.ceil(wait))))],
            )
        result = self.digest.verify(request.method, credentials, self._password, now)
        if result.status is AuthStatus.OK:
            extension = self.directory.extension(user)
            if extension is not None:
                self.limiter.success(user, source, now)
                return extension, None
        if result.status is AuthStatus.STALE:
            logger.debug("digest stale for %r from %s: %s", user, source, result.reason)
            return None, self.challenge(request, stale=True)
        if result.status is AuthStatus.UNKNOWN_NONCE:
            logger.debug("digest for %r from %s: %s", user, source, result.reason)
            return None, self.challenge(request, stale=False)
        if result.status is AuthStatus.MALFORMED:
            return None, request.response(400, f"Bad credentials: {result.reason}")
        logger.debug("digest rejected for %r from %s: %s", user, source, result.reason)
        known = self.directory.extension(user) is not None
        self.limiter.failure(user, source, now, known_user=known)
        return None, request.response(403, "Forbidden (bad credentials)")

    def challenge(self, request: Request, *, stale: bool) -> Response:
        headers = [
            (self.digest.challenge_header, value)
            for value in self.digest.challenge_values(self._now(), stale=stale)
        ]
        return request.response(self.digest.status, headers=headers)

    def _password(self, username: str) -> str | None:
        extension = self.directory.extension(username)
        return None if extension is None else extension.password

    async def handle(self, incoming: IncomingRequest) -> None:
        await incoming.respond(self.process(incoming))

    def process(self, incoming: IncomingRequest) -> Response:
        request = incoming.request
        extension, refusal = self.authenticate(request, "Authorization", incoming.peer.host)
        if refusal is not None:
            return refusal
        assert extension is not None
        aor = request.to.uri
        aor_user = aor.user if isinstance(aor, SipUri) else None
        if aor_user != extension.extended:
            return request.response(403, f"Not allowed to register {aor_user}")
        try:
            return self._update_bindings(incoming, extension)
        except RemoteProtocolError as exc:
            return request.response(400, exc.reason)

    def _update_bindings(self, incoming: IncomingRequest, extension: Extension) -> Response:
        request = incoming.request
        now = self._now()
        header_expires = _int_or_none(request.headers.get("Expires"))
        contact_values = request.headers.get_all("Contact")
        if any(value.strip() == "*" for value in contact_values):
            if len(contact_values) != 1 or header_expires != 0:
                return request.response(400, "Contact * needs Expires: 0 and no other Contact")
            stale = self._out_of_order(request, extension, self._bindings(extension, now), None)
            if stale is not None:
                return stale
            self.store.remove_contacts(extension.extended)
            logger.info("%s: all bindings removed", extension.extended)
            return self._ok(request, extension, now)
        peer = incoming.peer
        received = f"{_host(peer.host)}:{peer.port} {peer.transport}"
        # RFC 3261 §10.3 step 7: check every Contact first, so that all updates happen or none.
        longest = MAX_EXPIRES
        if peer.reliable and self._max_tcp_expires is not None:
            longest = min(longest, self._max_tcp_expires)
        updates: list[tuple[str, int]] = []
        for value in contact_values:
            for contact in parse_name_addr_list(value):
                expires = _int_or_none(contact.param("expires"))
                if expires is None:
                    expires = header_expires if header_expires is not None else DEFAULT_EXPIRES
                if expires < 0:
                    return request.response(400, "Negative expires")
                if 0 < expires < MIN_EXPIRES:
                    return request.response(423, headers=[("Min-Expires", str(MIN_EXPIRES))])
                updates.append((str(contact.uri), min(expires, longest)))
        bindings = self._bindings(extension, now)
        stale = self._out_of_order(request, extension, bindings, {uri for uri, _ in updates})
        if stale is not None:
            return stale
        path = _path_of(request)
        bound = {record.contact_uri for record in bindings}
        for uri, expires in updates:
            if expires == 0:
                self.store.remove_contact(extension.extended, uri)
                logger.info("%s unregistered %s via %s", extension.extended, uri, received)
                continue
            self.store.save_contact(
                extension.extended,
                uri,
                received,
                now + expires,
                request.call_id,
                request.cseq.seq,
                path,
            )
            # a new binding at INFO; a refresh (every phone, every few minutes) at DEBUG
            logger.log(
                logging.DEBUG if uri in bound else logging.INFO,
                "%s %s %s via %s for %d s%s",
                extension.extended,
                "refreshed" if uri in bound else "registered",
                uri,
                received,
                expires,
                f" (Path {', '.join(path)})" if path else "",
            )
        return self._ok(request, extension, now, path)

    def _bindings(self, extension: Extension, now: float) -> list[ContactRecord]:
        return self.store.contacts(extension.extended, now)

    def _out_of_order(
        self,
        request: Request,
        extension: Extension,
        bindings: list[ContactRecord],
        uris: set[str] | None,
    ) -> Response | None:
        """RFC 3261 §10.3 step 7: a binding made by this Call-ID with a CSeq at least this
        request's is newer than the request (which arrived late or was replayed): the whole
        update is aborted. ``uris``: the Contacts it touches (None: all, for ``*``)."""
        seq = request.cseq.seq
        for record in bindings:
            if uris is not None and record.contact_uri not in uris:
                continue
            if record.call_id == request.call_id and record.cseq >= seq:
                logger.debug(  # per message (a replay): the 500 says it
                    "%s: REGISTER CSeq %d after %d on the same Call-ID refused",
                    extension.extended,
                    seq,
                    record.cseq,
                )
                # as for a lower CSeq within a dialog (§12.2.2)
                return request.response(500, "Out of order REGISTER (CSeq not above the binding's)")
        return None

    def _ok(
        self, request: Request, extension: Extension, now: float, path: tuple[str, ...] = ()
    ) -> Response:
        headers = [
            ("Contact", f"<{record.contact_uri}>;expires={max(0, int(record.expires_at - now))}")
            for record in self.store.contacts(extension.extended, now)
        ]
        # RFC 3327 §5.3: the Path values stored, in the 200, in their order
        headers.extend(("Path", value) for value in path)
        headers.append(("Supported", "path"))
        headers.append(("Date", formatdate(now, usegmt=True)))
        return request.response(200, to_tag=new_tag(), headers=headers)


def _path_of(request: Request) -> tuple[str, ...]:
    """The REGISTER's Path values (RFC 3327), one per hop, first hop first: each must be a
    SIP URI (``RemoteProtocolError`` otherwise, answered 400)."""
    values: list[str] = []
    for header in request.headers.get_all("Path"):
        for hop in parse_name_addr_list(header):
            if not isinstance(hop.uri, SipUri):
                raise RemoteProtocolError(f"Path {hop} is not a SIP URI")
            values.append(str(hop))
    return tuple(values)


def _int_or_none(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        raise RemoteProtocolError(f"bad expires value {text!r}") from None


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
