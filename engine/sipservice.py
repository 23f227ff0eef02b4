"""The engine's SIP face: the legs it sends out, and registrar and inbound calls.

Two pieces, built in dependency order: ``SipLegs`` first (the engine is given it), then
``SipService`` (given the engine).

* ``SipLegs.legs_for`` turns a party into SIP legs: one per registered device of an extension
  (all ring at once), or one towards the gateway of the longest matching route for a public
  number.
* ``SipService.handle`` gets every new server transaction from the endpoint: REGISTER goes to the
  registrar; OPTIONS is answered 200 (Allow, Accept, Supported) for our domain and known users;
  INVITE is an inbound call, accepted from a registered device (Digest, 407 challenge) or a
  trusted peer of the directory only, so nobody else can reach a gateway through us (no open
  relay); the number dialled is the Request-URI's user part, resolved as the API resolves it.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable

from engine.config_model import Config
from engine.dialogs import DialogKeeper
from engine.directory import Directory, Extension
from engine.engine import Engine, LegProvider
from engine.inbound import InboundLeg
from engine.keys import derive_key
from engine.legs import FailedLeg, Leg
from engine.limiter import FailureLimiter
from engine.model import Party, PhoneCall
from engine.numbers import ExtensionTarget, NumberError, PublicTarget, resolve, target_of
from engine.registrar import Registrar
from engine.sipaddr import caller_address, caller_number, gateway_uri, local_address
from engine.sipleg import SipLeg
from engine.store import Store, open_store
from engine.store.nonce_counts import StoreNonceCounts
from engine.trace import CallTraces
from sip import sdp
from sip.auth import DigestServer, MemoryNonceCounts, NonceCounts
from sip.endpoint import DEFAULT_ALLOWED_METHODS, SipEndpoint
from sip.endpoint_incoming import IncomingRequest
from sip.errors import LocalProtocolError, RemoteProtocolError
from sip.peers import peer_for_uri
from sip.transaction_types import Peer
from sip.uas import options_response
from sip.uas_driver import InviteServer
from sip.uri import NameAddr, SipUri, TelUri, parse_name_addr, parse_uri, uri_host

logger = logging.getLogger(__name__)

ALLOWED_METHODS = (*DEFAULT_ALLOWED_METHODS, "REGISTER")


def make_endpoint(config: Config) -> SipEndpoint:
    """The server's endpoint, with the TCP limits of ``config``."""
    sip = config.sip
    return SipEndpoint(
        allowed_methods=ALLOWED_METHODS,
        idle_timeout=sip.tcp_idle_timeout,
        max_connections=sip.max_connections,
        max_connections_per_source=sip.max_connections_per_source,
    )


class SipLegs(LegProvider):
    """The engine's ``LegProvider``: the SIP legs that ring a party."""

    def __init__(
        self,
        endpoint: SipEndpoint,
        directory: Directory,
        store: Store,
        config: Config,
        *,
        wall_clock: Callable[[], float] = time.time,
        traces: CallTraces | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.directory = directory
        self.store = store
        self.domain = config.sip.domain
        self._wall_clock = wall_clock
        # answered legs keep their dialog state in the store (engine.dialogs)
        self.keeper = DialogKeeper(store, config.cluster.node)
        self.traces = traces  # told each leg's Call-ID (engine.trace)

    def legs_for(self, call: PhoneCall, party: Party, caller_id: str | None) -> list[Leg]:
        legs = self._legs_for(call, party, caller_id)
        if self.traces is not None:
            for leg in legs:
                if isinstance(leg, SipLeg):
                    self.traces.bind(leg.call_id, call.id, party.number)
        return legs

    def _legs_for(self, call: PhoneCall, party: Party, caller_id: str | None) -> list[Leg]:
        from_addr = self._from(caller_id, call)
        try:
            target = target_of(party, self.directory, call.organization_id)
        except NumberError as exc:
            return [FailedLeg(party.number, 404, str(exc))]
        if isinstance(target, ExtensionTarget):
            return self._device_legs(call, target.extension, party, from_addr)
        if isinstance(target, PublicTarget):
            route = target.route
            uri = gateway_uri(
                target.number, route.gateway_transport, route.gateway_host, route.gateway_port
            )
            peer = Peer(route.gateway_transport, route.gateway_host, route.gateway_port)
            return [
                SipLeg(
                    self.endpoint,
                    label=f"{party.number} via {peer}",
                    peer=peer,
                    request_uri=uri,
                    from_addr=from_addr,
                    to_addr=NameAddr(uri),
                    keeper=self.keeper,
                    phonecall=call.id,
                )
            ]
        return [FailedLeg(party.number, 404, "not a SIP destination")]

    def _device_legs(
        self, call: PhoneCall, extension: Extension, party: Party, from_addr: NameAddr
    ) -> list[Leg]:
        contacts = self.store.contacts(extension.extended, self._wall_clock())
        if not contacts:
            return [FailedLeg(party.number, 480, f"no device registered for {extension.extended}")]
        to_addr = local_address(extension.extended, self.domain)
        legs: list[Leg] = []
        for record in contacts:
            try:
                uri = parse_uri(record.contact_uri)
                peer = _peer_from_received(record.received)
                # RFC 3327: the binding's Path is the pre-loaded route set of requests to it
                # (loose routing: the Request-URI stays the Contact), sent to its first hop
                routes = [("Route", hop) for hop in record.path]
                if record.path:
                    peer = peer_for_uri(parse_name_addr(record.path[0]).uri, peer.transport)
            except (RemoteProtocolError, LocalProtocolError, ValueError) as exc:
                logger.warning("bad binding %s for %s: %s", record.contact_uri, extension, exc)
                continue
            if not isinstance(uri, SipUri):
                continue
            legs.append(
                SipLeg(
                    self.endpoint,
                    label=f"{party.number} at {record.contact_uri}",
                    peer=peer,
                    request_uri=uri,
                    from_addr=from_addr,
                    to_addr=to_addr,
                    headers=routes,
                    keeper=self.keeper,
                    phonecall=call.id,
                )
            )
        return legs or [FailedLeg(party.number, 480, "no usable device binding")]

    def _from(self, caller_id: str | None, call: PhoneCall) -> NameAddr:
        # the caller's own identity (an inbound caller's too: alice, anonymous), else the
        # charged extension of an API call
        return caller_address(caller_id, call.extension, self.domain)


class SipService:
    """The endpoint's request handler: registrar, OPTIONS, and inbound calls for ``engine``."""

    def __init__(
        self,
        endpoint: SipEndpoint,
        directory: Directory,
        store: Store,
        config: Config,
        *,
        engine: Engine,
        wall_clock: Callable[[], float] = time.time,
        traces: CallTraces | None = None,
        sdp_cache: sdp.ParseCache | None = None,
    ) -> None:
        """``sdp_cache``: shared with the calls' media, so an offer checked here is not
        parsed again when it is answered."""
        self.endpoint = endpoint
        self.engine = engine
        self.sdp_cache = sdp_cache if sdp_cache is not None else sdp.ParseCache()
        self.traces = traces  # told each inbound caller's Call-ID (engine.trace)
        self.directory = directory
        self.domain = config.sip.domain
        # answered inbound callers keep their dialog state in the store (engine.dialogs)
        self.keeper = DialogKeeper(store, config.cluster.node)
        # With [cluster] secret, nonces are signed with a key derived from it and their counts
        # (replays refused) are kept in the store: a challenge from one node is answered on
        # any other, and a credential replayed to another node is refused there too. Without
        # it the counts used so far are remembered in this process only, so its nonces are
        # signed with a key of its own: a nonce of another process (this one before a
        # restart) is not ours, and a credential computed for it gets a fresh challenge
        # (stale=true) instead of being trusted without its counts. No clock reading is
        # involved, so a clock stepped back after the start changes nothing.
        counts: NonceCounts
        if config.cluster.secret is not None:
            secret = derive_key(config.cluster.secret.encode("utf-8"), "sip-digest-nonce")
            # each check is a round trip on the SIP path: on a database server it gets a
            # connection of its own, never waiting behind the write-behind queue's batches
            remote = getattr(store, "queued", False)
            counts = StoreNonceCounts(open_store(config.store.url) if remote else store)
        else:
            secret = secrets.token_bytes(32)
            counts = MemoryNonceCounts()
        limiter = FailureLimiter("sip digest")
        # the addresses phones registered from are ones where they got their password right:
        # after a restart a guessing attack on a user must not hold back its own phones
        now = wall_clock()
        for extension in directory.extensions:
            if extension.password is None:
                continue
            for binding in store.contacts(extension.extended, now):
                host = binding.received.split(" ", 1)[0].rsplit(":", 1)[0]
                limiter.trust(extension.extended, host, now)
        # [sip] digest_algorithms, in challenge order: MD5 first by default, because SIPp and
        # many deployed phones answer only the first challenge and know only MD5 (a SHA-256
        # client still finds its challenge in the second header).
        algorithms = config.sip.digest_algorithms
        self.registrar = Registrar(
            directory,
            store,
            DigestServer(
                self.domain,
                secret,
                algorithms=algorithms,
                counts=counts,
                random_bytes=secrets.token_bytes,
            ),
            wall_clock=wall_clock,
            # a TCP device re-registers before its connection could go idle (README, TCP)
            max_tcp_expires=max(1, int(config.sip.tcp_idle_timeout)),
            limiter=limiter,
        )
        self.call_auth = Registrar(
            directory,
            store,
            DigestServer(
                self.domain,
                secret,
                algorithms=algorithms,
                proxy=True,
                counts=counts,
                random_bytes=secrets.token_bytes,
            ),
            wall_clock=wall_clock,
            limiter=limiter,
        )

    # --- incoming requests --------------------------------------------------------------------

    async def handle(self, incoming: IncomingRequest) -> None:
        request = incoming.request
        method = request.method
        if method == "REGISTER":
            to_uri = request.to.uri
            user = to_uri.user if isinstance(to_uri, SipUri) else None
            if user is None or self.directory.extension(user) is None:
                await incoming.respond(request.response(404, f"No such extension {user}"))
                return
            await self.registrar.handle(incoming)
        elif method == "OPTIONS":
            user = request.uri.user if isinstance(request.uri, SipUri) else None
            if user and not self._known_number(user):
                await incoming.respond(request.response(404, f"No such user {user}"))
                return
            await incoming.respond(options_response(request, ALLOWED_METHODS))
        elif method == "INVITE":
            await self._inbound(incoming)
        else:
            await incoming.respond(request.response(481))

    def _known_number(self, user: str) -> bool:
        try:
            resolve(user, self.directory, None, allow_short=False)
        except NumberError:
            return False
        return True

    async def _inbound(self, incoming: IncomingRequest) -> None:
        request = incoming.request
        engine = self.engine
        if engine.draining:
            await incoming.respond(request.response(503, "Shutting down"))
            return
        peer = incoming.peer
        trusted = self.directory.trusted_peer(peer.host, peer.port)
        caller_ext: Extension | None = None
        if trusted is not None:
            organization_id = trusted.organization
        else:
            caller_ext, refusal = self.call_auth.authenticate(
                request, "Proxy-Authorization", peer.host
            )
            if refusal is not None:
                await incoming.respond(refusal)
                return
            assert caller_ext is not None
            organization_id = caller_ext.organization
        uri = request.uri
        dialled = (
            uri.user if isinstance(uri, SipUri) else uri.number if isinstance(uri, TelUri) else None
        )
        if not dialled:
            await incoming.respond(request.response(404, "No number in the Request-URI"))
            return
        try:
            target = resolve(dialled, self.directory, organization_id, allow_short=True)
        except NumberError as exc:
            await incoming.respond(request.response(404, str(exc)))
            return
        if request.body and request.content_type != "application/sdp":
            # RFC 3261 §21.4.13 / RFC 4475 §3.3.6: say what we accept.
            await incoming.respond(request.response(415, headers=[("Accept", "application/sdp")]))
            return
        accept = ",".join(request.headers.get_all("Accept")).lower()
        if accept and "application/sdp" not in accept and "*/*" not in accept:
            # RFC 4475 §3.3.15: our answer would be SDP, which the caller says it cannot take.
            await incoming.respond(request.response(406, headers=[("Accept", "application/sdp")]))
            return
        video = False
        if request.body:
            try:
                offer = self.sdp_cache.parse(request.body)
            except RemoteProtocolError as exc:
                await incoming.respond(request.response(400, f"Bad SDP: {exc.reason}"))
                return
            # Would we accept anything? (RFC 3264 §6: nothing in common -> 488 with a Warning.)
            trial = sdp.make_answer(offer, "127.0.0.1", {"audio": 9, "video": 11}, session_id=0)
            if not trial.has_active_media:
                warning = f'304 {uri_host(self.domain)} "Media type not available"'
                await incoming.respond(
                    request.response(
                        488, "Not Acceptable Here (no common codec)", headers=[("Warning", warning)]
                    )
                )
                return
            video = any(m.media == "video" and m.port for m in offer.media)
        # else: a late offer (RFC 3261 §13.2.1): our 200 OK will carry the offer, the ACK the
        # answer (engine.inbound)
        caller = caller_number(request.from_.uri)
        server = InviteServer(self.endpoint, incoming)
        made: list[InboundLeg] = []

        def make_leg(index: int, label: str) -> InboundLeg:
            leg = InboundLeg(server, index, label, keeper=self.keeper)
            made.append(leg)
            return leg

        try:
            inbound = engine.start_inbound(
                caller_number=caller_ext.extended if caller_ext else caller,
                caller_name=request.from_.display_name,
                caller_extension=caller_ext,
                organization_id=organization_id,
                destination=dialled,
                destination_target=target,
                video=video,
                make_leg=make_leg,
            )
        except Exception as exc:  # draining meanwhile, or the store refused the record
            logger.warning("inbound call from %s refused: %s", caller, exc)
            await server.reject(503, "Service Unavailable")
            return
        for leg in made:  # answered later: its dialog state is kept under the call
            leg.phonecall = inbound.id
        if self.traces is not None:
            self.traces.bind(request.call_id, inbound.id, inbound.parties[0].number)


def _peer_from_received(received: str) -> Peer:
    hostport, _, transport = received.partition(" ")
    host, _, port = hostport.rpartition(":")
    host = host.strip("[]")
    return Peer(transport or "udp", host, int(port))
