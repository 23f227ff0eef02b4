"""The offer/answer rules (RFC 3264) a B2BUA needs, on the SDP model.

:func:`make_offer` builds an initial offer (§5); :func:`make_answer` answers an offer stream by
stream (§6): the answer has as many ``m=`` lines as the offer, in the same order; a stream is
accepted with the codecs both sides support in the *offerer's* order (§6.1) and rejected with
port 0 otherwise; the direction is mirrored (sendonly -> recvonly, recvonly -> sendonly,
inactive -> inactive).  Hold and resume are re-offers that change the direction attribute
(RFC 3264 §8.4, RFC 6337 §5): :func:`with_direction`, :func:`hold`.  Media anchoring rewrites the
connection address, the ports and the RFC 3605 ``a=rtcp`` attribute (:func:`rewrite_connection`);
every new offer from the same side must carry a higher ``o=`` version (RFC 3264 §8), which
:func:`bump_version` provides.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Collection, Mapping, Sequence

from sip.errors import LocalProtocolError
from sip.sdp.model import (
    DIRECTION_NAMES,
    Attribute,
    Codec,
    Connection,
    Direction,
    MediaDescription,
    Origin,
    SessionDescription,
    Timing,
    addrtype_of,
)

logger = logging.getLogger(__name__)


DEFAULT_AUDIO_CODECS: tuple[Codec, ...] = (
    Codec(0, "PCMU", 8000),
    Codec(8, "PCMA", 8000),
    Codec(101, "telephone-event", 8000, fmtp="0-16"),
)
DEFAULT_VIDEO_CODECS: tuple[Codec, ...] = (
    Codec(96, "H264", 90000, fmtp="profile-level-id=42e01f;packetization-mode=1"),
    Codec(97, "VP8", 90000),
)

# Formats that carry no media of their own: a stream offering only these is rejected.
_AUXILIARY_CODECS = frozenset({"telephone-event", "cn", "red", "ulpfec", "rtx", "flexfec"})


def _set_direction_attrs(
    attrs: tuple[Attribute, ...], direction: Direction
) -> tuple[Attribute, ...]:
    """Replace the direction attribute (kept where the first one was) or append one."""
    out: list[Attribute] = []
    placed = False
    for attr in attrs:
        if attr.value is None and attr.name in DIRECTION_NAMES:
            if not placed:
                out.append(Attribute(direction.value))
                placed = True
            continue
        out.append(attr)
    if not placed:
        out.append(Attribute(direction.value))
    return tuple(out)


def _media_attributes(codecs: Sequence[Codec], direction: Direction) -> list[Attribute]:
    attrs: list[Attribute] = []
    for codec in codecs:
        attrs.append(Attribute("rtpmap", codec.rtpmap))
        if codec.fmtp is not None:
            attrs.append(Attribute("fmtp", f"{codec.payload_type} {codec.fmtp}"))
    attrs.append(Attribute(direction.value))
    return attrs


def make_offer(
    address: str,
    audio_port: int,
    video_port: int | None = None,
    *,
    audio_codecs: Sequence[Codec] = DEFAULT_AUDIO_CODECS,
    video_codecs: Sequence[Codec] = DEFAULT_VIDEO_CODECS,
    direction: Direction | str = Direction.SENDRECV,
    session_id: str | int,
    version: int = 0,
    username: str = "-",
    session_name: str = "-",
    ptime: int | None = 20,
) -> SessionDescription:
    """An initial offer (RFC 3264 §5): one audio stream and optionally one video stream.

    ``session_id`` is the ``o=`` session id, a number the caller picks (RFC 8866 §5.2: any
    unique number; an NTP timestamp is suggested): this sans-IO module draws no random value."""
    if not audio_codecs:
        raise LocalProtocolError("make_offer: no audio codecs")
    if video_port is not None and not video_codecs:
        raise LocalProtocolError("make_offer: video port given but no video codecs")
    direction = Direction(direction)
    audio_attrs = _media_attributes(audio_codecs, direction)
    if ptime is not None:
        audio_attrs.insert(len(audio_attrs) - 1, Attribute("ptime", str(ptime)))
    media = [
        MediaDescription(
            "audio",
            audio_port,
            "RTP/AVP",
            tuple(str(c.payload_type) for c in audio_codecs),
            attributes=tuple(audio_attrs),
        )
    ]
    if video_port is not None:
        media.append(
            MediaDescription(
                "video",
                video_port,
                "RTP/AVP",
                tuple(str(c.payload_type) for c in video_codecs),
                attributes=tuple(_media_attributes(video_codecs, direction)),
            )
        )
    sid = str(session_id)
    return SessionDescription(
        origin=Origin(username, sid, version, address, addrtype=addrtype_of(address)),
        session_name=session_name,
        connection=Connection.for_address(address),
        times=(Timing(0, 0),),
        media=tuple(media),
    )


_ANSWERABLE_PROTOS = ("RTP/AVP", "RTP/AVPF")

# RFC 8839 attributes that describe ICE candidates and credentials of the original endpoint.
ICE_ATTRIBUTES: frozenset[str] = frozenset(
    {
        "candidate",
        "remote-candidates",
        "end-of-candidates",
        "ice-ufrag",
        "ice-pwd",
        "ice-options",
        "ice-lite",
        "ice-mismatch",
        "ice-pacing",
    }
)


def _rejected(offered: MediaDescription) -> MediaDescription:
    # RFC 3264 §6: port 0; the formats are ignored but SDP needs at least one.
    formats = offered.formats[:1] or ("0",)
    return MediaDescription(offered.media, 0, offered.proto, formats)


def make_answer(
    offer: SessionDescription,
    address: str,
    ports: Sequence[int] | Mapping[str, int],
    *,
    audio_codecs: Sequence[Codec] = DEFAULT_AUDIO_CODECS,
    video_codecs: Sequence[Codec] = DEFAULT_VIDEO_CODECS,
    direction: Direction | str = Direction.SENDRECV,
    session_id: str | int,
    version: int = 0,
    username: str = "-",
    session_name: str = "-",
) -> SessionDescription:
    """Answer ``offer`` stream by stream (RFC 3264 §6).

    ``ports`` gives our RTP port per offered m-line (a sequence as long as ``offer.media``), or
    per media type (``{"audio": 20000, "video": 20002}``; a type without a port is rejected, and
    so is every stream of a type after the first).
    A stream is accepted with the offered formats we support, in the offerer's order, using the
    offerer's payload type numbers, rtpmap and fmtp lines (a relay forwards the payload as is);
    it is rejected (port 0) if it was offered with port 0, uses a profile other than RTP/AVP(F),
    or has no codec in common (telephone-event, CN and the like alone do not count).  The
    direction mirrors the offer's (sendonly -> recvonly, inactive -> inactive), narrowed by
    ``direction``, our own wish.  Check ``answer.has_active_media`` to decide on a 488.
    ``session_id`` is the ``o=`` session id the caller picks (see :func:`make_offer`).
    """
    local = Direction(direction)
    if not isinstance(ports, Mapping) and len(ports) != len(offer.media):
        raise LocalProtocolError(
            f"make_answer: {len(ports)} ports for {len(offer.media)} offered streams"
        )
    supported = {"audio": audio_codecs, "video": video_codecs}
    answered: list[MediaDescription] = []
    seen_types: set[str] = set()
    for index, offered in enumerate(offer.media):
        port: int | None
        if isinstance(ports, Mapping):
            port = None if offered.media in seen_types else ports.get(offered.media)
        else:
            port = ports[index]
        ours = supported.get(offered.media, ())
        if offered.port == 0 or not port or offered.proto not in _ANSWERABLE_PROTOS:
            answered.append(_rejected(offered))
            continue
        common = [c for c in offered.codecs() if any(c.matches(mine) for mine in ours)]
        if not any(c.name.lower() not in _AUXILIARY_CODECS for c in common):
            logger.debug("rejecting %s stream %d: no common codec", offered.media, index)
            answered.append(_rejected(offered))
            continue
        attrs = _media_attributes(common, offer.direction_of(offered).answer(local))
        ptime = offered.attribute("ptime")
        if ptime is not None and offered.media == "audio":
            attrs.insert(len(attrs) - 1, Attribute("ptime", ptime))
        seen_types.add(offered.media)
        answered.append(
            MediaDescription(
                offered.media,
                port,
                offered.proto,
                tuple(str(c.payload_type) for c in common),
                attributes=tuple(attrs),
            )
        )
    sid = str(session_id)
    return SessionDescription(
        origin=Origin(username, sid, version, address, addrtype=addrtype_of(address)),
        session_name=session_name,
        connection=Connection.for_address(address),
        times=(Timing(0, 0),),
        media=tuple(answered),
    )


def bump_version(sd: SessionDescription) -> SessionDescription:
    """The same description with ``o=`` version + 1 (RFC 3264 §8: each new offer increments it)."""
    return dataclasses.replace(
        sd, origin=dataclasses.replace(sd.origin, version=sd.origin.version + 1)
    )


def with_direction(
    sd: SessionDescription,
    direction: Direction | str,
    *,
    bump: bool = False,
) -> SessionDescription:
    """Every active stream gets ``direction`` (hold: sendonly/inactive, resume: sendrecv).

    Session-level direction attributes are removed so the media-level ones rule alone
    (RFC 3264 §8.4, RFC 6337 §5).  Disabled streams (port 0) are left as they are.
    """
    new = Direction(direction)
    session_attrs = tuple(
        a for a in sd.attributes if not (a.value is None and a.name in DIRECTION_NAMES)
    )
    media = tuple(
        m if m.port == 0 else m.with_attributes(_set_direction_attrs(m.attributes, new))
        for m in sd.media
    )
    result = dataclasses.replace(sd, attributes=session_attrs, media=media)
    return bump_version(result) if bump else result


def hold(sd: SessionDescription, *, bump: bool = False) -> SessionDescription:
    """The re-offer that puts our previous offer on hold (RFC 3264 §8.4, RFC 6337 §5).

    We stop receiving but keep sending (music on hold): sendrecv -> sendonly,
    recvonly -> inactive; sendonly and inactive stay.
    """
    media: list[MediaDescription] = []
    for m in sd.media:
        if m.port == 0:
            media.append(m)
            continue
        current = sd.direction_of(m)
        new = Direction.from_flags(current.sends, False)
        media.append(m.with_attributes(_set_direction_attrs(m.attributes, new)))
    session_attrs = tuple(
        a for a in sd.attributes if not (a.value is None and a.name in DIRECTION_NAMES)
    )
    result = dataclasses.replace(sd, attributes=session_attrs, media=tuple(media))
    return bump_version(result) if bump else result


def rewrite_connection(
    sd: SessionDescription,
    address: str,
    ports: Sequence[int | None],
    *,
    bump: bool = False,
    origin_address: bool = True,
    drop_attributes: Collection[str] = ICE_ATTRIBUTES,
) -> SessionDescription:
    """Anchor the media: our ``address`` in every ``c=`` and our RTP port in every ``m=``.

    ``ports`` has one entry per m-line: our RTP port, or None to leave that stream's port as it
    is.  A disabled stream (port 0) stays disabled.  ``a=rtcp`` (RFC 3605) is rewritten to the
    relay's RTCP port (RTP + 1, or the RTP port itself with ``a=rtcp-mux``) and ``address``; the
    session-level ``c=`` is set (or added), media-level ones are replaced.  ``origin_address``
    also puts ``address`` into ``o=``; ``bump`` increments the ``o=`` version (RFC 3264 §8).
    Attributes named in ``drop_attributes`` go, at session and media level: by default the ICE
    ones (RFC 8839), whose candidates name the original address and would let the far end
    bypass the relay, which does not speak ICE.
    """
    if len(ports) != len(sd.media):
        raise LocalProtocolError(
            f"rewrite_connection: {len(ports)} ports for {len(sd.media)} streams"
        )
    conn = Connection.for_address(address)
    media: list[MediaDescription] = []
    for m, port in zip(sd.media, ports, strict=True):
        if m.port == 0:
            media.append(m)
            continue
        new_port = m.port if port is None else port
        attrs: list[Attribute] = []
        for attr in m.attributes:
            if attr.name in drop_attributes:
                continue
            if attr.name == "rtcp":
                rtcp_port = new_port if m.has_attribute("rtcp-mux") else new_port + 1
                old = m.rtcp
                if old is not None and old.connection is not None:
                    attrs.append(Attribute("rtcp", f"{rtcp_port} {conn}"))
                else:
                    attrs.append(Attribute("rtcp", str(rtcp_port)))
            else:
                attrs.append(attr)
        media.append(
            dataclasses.replace(
                m,
                port=new_port,
                connection=None if m.connection is None else conn,
                attributes=tuple(attrs),
                # A second c= line (layered multicast) would still name the old address.
                other_lines=tuple(line for line in m.other_lines if line[0] != "c"),
            )
        )
    origin = sd.origin
    if origin_address:
        origin = dataclasses.replace(origin, address=address, addrtype=conn.addrtype)
    session_attrs = tuple(a for a in sd.attributes if a.name not in drop_attributes)
    result = dataclasses.replace(
        sd, origin=origin, connection=conn, attributes=session_attrs, media=tuple(media)
    )
    return bump_version(result) if bump else result
