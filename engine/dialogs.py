"""The dialog state of answered legs, kept in the store so that any node can end them.

A node that dies (kill -9, power off) leaves its answered legs up at the phones and gateways:
nothing in SIP will end them. So when a leg is answered, its dialog state goes to the store
(``DialogKeeper.answered``): Call-ID, local and remote tag and URI, remote target, route set,
local CSeq and where in-dialog requests go (transport, host, port); a re-INVITE (hold) updates
the CSeq; when the leg ends the row goes. Whoever finalises the call after the crash (another
node after ``[cluster] failover`` s, or the node itself when it restarts) sends each stored
leg a BYE built from that state (``send_stored_bye``): a CSeq above the stored one, through the
route set, from its own SIP endpoint (any node's Via works: the BYE's response comes back
to whoever sent it).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from engine.store import DialogRecord, Store
from sip.dialog import Dialog, DialogState
from sip.errors import LocalProtocolError, RemoteProtocolError
from sip.peers import peer_for_uri
from sip.transaction_types import Peer
from sip.uri import parse_name_addr, parse_uri

if TYPE_CHECKING:
    from sip.endpoint import SipEndpoint

logger = logging.getLogger(__name__)

# how far above the stored CSeq the BYE goes: the stored one is rewritten after every
# re-INVITE (hold), so the next number is one no request of the dialog used
CSEQ_STEP = 1


@dataclass(frozen=True, slots=True)
class LegDialog:
    """What a BYE needs of one answered leg's dialog."""

    call_id: str
    local_tag: str
    remote_tag: str
    local_addr: str  # our From, with our tag
    remote_addr: str  # our To, with theirs
    remote_target: str
    route_set: tuple[str, ...]
    local_seq: int
    transport: str  # where in-dialog requests go
    host: str
    port: int

    @classmethod
    def of(cls, dialog: Dialog, peer: Peer) -> LegDialog:
        """The state of ``dialog`` whose in-dialog requests go to ``peer``."""
        return cls(
            call_id=dialog.call_id,
            local_tag=dialog.local_tag,
            remote_tag=dialog.remote_tag,
            local_addr=str(dialog.local_addr),
            remote_addr=str(dialog.remote_addr),
            remote_target=str(dialog.remote_target),
            route_set=tuple(str(route) for route in dialog.route_set),
            local_seq=dialog.local_seq,
            transport=peer.transport,
            host=peer.host,
            port=peer.port,
        )

    def to_json(self) -> str:
        data = {
            "call_id": self.call_id,
            "local_tag": self.local_tag,
            "remote_tag": self.remote_tag,
            "local_addr": self.local_addr,
            "remote_addr": self.remote_addr,
            "remote_target": self.remote_target,
            "route_set": list(self.route_set),
            "local_seq": self.local_seq,
            "transport": self.transport,
            "host": self.host,
            "port": self.port,
        }
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> LegDialog:
        """``ValueError`` names what is wrong with a stored row."""
        try:
            data = json.loads(text)
            return cls(
                call_id=str(data["call_id"]),
                local_tag=str(data["local_tag"]),
                remote_tag=str(data["remote_tag"]),
                local_addr=str(data["local_addr"]),
                remote_addr=str(data["remote_addr"]),
                remote_target=str(data["remote_target"]),
                route_set=tuple(str(r) for r in data["route_set"]),
                local_seq=int(data["local_seq"]),
                transport=str(data["transport"]),
                host=str(data["host"]),
                port=int(data["port"]),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"bad stored dialog: {exc!r}") from None

    @property
    def peer(self) -> Peer:
        return Peer(self.transport, self.host, self.port)

    def bye(self) -> tuple[Dialog, Peer]:
        """The dialog rebuilt (its next request takes a CSeq above the stored one) and where
        the BYE goes: the first route when there is a route set, else where in-dialog
        requests went (the registered flow of a phone behind NAT)."""
        try:
            dialog = Dialog(
                call_id=self.call_id,
                local_tag=self.local_tag,
                remote_tag=self.remote_tag,
                local_seq=self.local_seq + CSEQ_STEP - 1,
                remote_seq=None,
                local_addr=parse_name_addr(self.local_addr),
                remote_addr=parse_name_addr(self.remote_addr),
                remote_target=parse_uri(self.remote_target),
                route_set=tuple(parse_name_addr(route) for route in self.route_set),
                state=DialogState.CONFIRMED,
            )
        except RemoteProtocolError as exc:
            raise ValueError(f"bad stored dialog: {exc.reason}") from None
        peer = peer_for_uri(dialog.next_hop(), self.transport) if dialog.route_set else self.peer
        return dialog, peer


def leg_dialog(dialog: Dialog, flow: Peer) -> LegDialog:
    """The state of an answered leg's ``dialog`` whose INVITE went to (or came from)
    ``flow``: in-dialog requests go to the first route, else along that flow."""
    peer = peer_for_uri(dialog.next_hop(), flow.transport) if dialog.route_set else flow
    return LegDialog.of(dialog, peer)


class DialogKeeper:
    """Writes and drops the stored dialog state of the legs of this node's calls."""

    def __init__(self, store: Store, node: str) -> None:
        self.store = store
        self.node = node

    def answered(self, phonecall: str, state: LegDialog) -> None:
        """Keep the state of an answered leg (again after a re-INVITE: its CSeq moved)."""
        try:
            self.store.save_dialog(
                DialogRecord(state.call_id, state.local_tag, phonecall, self.node, state.to_json())
            )
        except Exception:
            logger.exception("call %s: could not store the dialog state of a leg", phonecall)

    def ended(self, call_id: str, local_tag: str) -> None:
        try:
            self.store.remove_dialog(call_id, local_tag)
        except Exception:
            logger.exception("could not drop the stored dialog %s", call_id)


async def send_stored_bye(
    endpoint: SipEndpoint, record: DialogRecord, *, user_agent: str = "trio-b2bua"
) -> int | None:
    """BYE the leg of ``record`` from ``endpoint``; the final status, or None when none came
    (64*T1) or the state was unusable (``bye_stored_legs`` drops the row either way: a BYE
    is all there is to do)."""
    status: int | None = None
    try:
        dialog, peer = LegDialog.from_json(record.data).bye()
        bye = dialog.create_request("BYE", headers=[("User-Agent", user_agent)])
    except (ValueError, LocalProtocolError) as exc:
        logger.warning("call %s: cannot BYE stored leg %s: %s", record.phonecall, record, exc)
        return None
    via = endpoint.make_via(peer.transport)
    bye = bye.with_headers(bye.headers.prepend("Via", str(via)))
    logger.info("call %s: BYE to stored leg %s at %s", record.phonecall, record.sip_call_id, peer)
    with trio.move_on_after(64 * endpoint.timer_config.t1):
        async for response in endpoint.request(bye, peer):
            if response.status >= 200:
                status = response.status
    return status
