"""The per-call SIP trace of the real ``b2bua serve``, against what SIPp phones sent and saw."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.pcap_reader import read_pcap

from .harness import B2buaServer, SipLogEntry, Sipp
from .test_calls_sipp import registered_phone
from .uapi import Uapi


def key(start_line: str, cseq: str) -> str:
    """``INVITE`` / ``200 INVITE``: what a message is, the same for SIPp's log and the trace."""
    if start_line.startswith("SIP/2.0 "):
        return f"{start_line.split(' ', 2)[1]} {cseq.split()[-1].upper()}"
    return start_line.split(" ", 1)[0]


def trace_key(row: dict[str, Any]) -> str:
    lines = row["message"].split("\r\n")
    cseq = next(line.split(":", 1)[1] for line in lines if line.lower().startswith("cseq:"))
    return key(lines[0], cseq.strip())


def sipp_key(entry: SipLogEntry) -> str:
    return key(entry.start_line, entry.header("cseq") or "")


def wait_trace(
    api: Uapi, path: str, done: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while True:
        reply = api.client.get(path, headers=api.headers)
        assert reply.status_code == 200, reply.text
        rows: list[dict[str, Any]] = reply.json()
        if done(rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def test_trace_of_an_api_call_is_what_the_phone_saw(
    gateway: Callable[..., Sipp], b2bua_factory: Callable[..., B2buaServer]
) -> None:
    server = b2bua_factory()
    phone = registered_phone(gateway, server, "0003*210", "secret210")
    api = Uapi(server.api_url, "test-user-app", "test-user-secret")
    call_id = api.call_id(api.create(["0003*210"], ["0003*00"], query={"callDuration": 2}))
    api.wait_ended(call_id, timeout=20)
    path = f"/uapi/phoneCalls/@me/0003*210/{call_id}/trace"
    rows = wait_trace(api, path, lambda rows: "200 BYE" in [trace_key(r) for r in rows])

    phone_host, phone_port = phone.address.rsplit(":", 1)
    assert {r["party"] for r in rows} == {"0003*210"}
    assert {r["peer"] for r in rows} == {f"{phone_host}:{phone_port}"}
    # what the server sent is what the phone received, in order, and the other way round
    # (the phone's REGISTER is not part of the call)
    sent = [trace_key(r) for r in rows if r["direction"] == "out"]
    received = [trace_key(r) for r in rows if r["direction"] == "in"]
    call_ids = {
        line.split(":", 1)[1].strip()
        for r in rows
        for line in r["message"].split("\r\n")
        if line.lower().startswith("call-id:")
    }
    assert len(call_ids) == 1
    [leg_call_id] = call_ids
    assert sent == [sipp_key(m) for m in phone.received() if m.call_id == leg_call_id]
    assert received == [sipp_key(m) for m in phone.sent() if m.call_id == leg_call_id]
    assert sent[0] == "INVITE" and "BYE" in sent and "200 INVITE" in received
    stamps = [r["ts"] for r in rows]
    assert stamps == sorted(stamps)

    pcap = api.client.get(path, params={"format": "pcap"}, headers=api.headers)
    assert pcap.status_code == 200
    frames = read_pcap(pcap.content)
    assert [f[5].decode() for f in frames] == [r["message"] for r in rows]
    sip_host, sip_port = server.sip_address.rsplit(":", 1)
    first = frames[0]  # our INVITE: from the server's SIP address to the phone
    assert (first[1], first[2], first[3], first[4]) == (
        sip_host,
        int(sip_port),
        phone_host,
        int(phone_port),
    )

    # another user's App may not read it; the organization's may
    other = Uapi(server.api_url, "test-org-app", "test-org-secret")
    assert (
        other.client.get(
            f"/uapi/phoneCalls/12/0003*210/{call_id}/trace", headers=other.headers
        ).status_code
        == 200
    )
    assert httpx.get(f"{server.api_url}{path}").status_code == 401
    api.close()
    other.close()


def test_trace_of_an_inbound_call_starts_with_the_challenge(
    gateway: Callable[..., Sipp], b2bua_factory: Callable[..., B2buaServer]
) -> None:
    server = b2bua_factory()
    callee = registered_phone(gateway, server, "0003*211", "secret211")
    caller = gateway(
        "caller_invite.xml",
        remote=server.sip_address,
        service="211",
        keywords={"caller": "0003*210"},
        auth=("0003*210", "secret210"),
        rtp_echo=True,
        pause_ms=1000,
    )
    assert caller.wait(timeout=20) == 0, caller.describe()
    admin = Uapi(server.api_url, "test-admin-app", "test-admin-secret")
    calls = admin.client.get("/uapi/console/calls", headers=admin.headers).json()["entry"]
    [call] = calls
    assert call["phoneCallView"][0]["number"] == "0003*210"
    path = f"/uapi/phoneCalls/{call['userId']}/{call['extension']}/{call['id']}/trace"
    rows = wait_trace(admin, path, lambda rows: sum(trace_key(r) == "200 BYE" for r in rows) >= 1)
    caller_rows = [trace_key(r) for r in rows if r["party"] == "0003*210"]
    # the INVITE and its 407 came before the PhoneCall existed: they are in its trace
    assert caller_rows[:4] == ["INVITE", "407 INVITE", "ACK", "INVITE"]
    # the whole exchange with the caller, as the caller logged it
    assert caller_rows == [sipp_key(m) for m in caller.messages()]
    destination = call["phoneCallView"][1]["number"]
    callee_rows = [trace_key(r) for r in rows if r["party"] == destination]
    assert callee_rows == [sipp_key(m) for m in callee.messages() if m.cseq_method != "REGISTER"]
    assert callee_rows[0] == "INVITE" and "BYE" in callee_rows
    admin.close()


def test_no_trace_is_kept_when_traces_are_off(
    gateway: Callable[..., Sipp], b2bua_factory: Callable[..., B2buaServer]
) -> None:
    server = b2bua_factory(config={"sip": {"trace_messages": 0}})
    phone = registered_phone(gateway, server, "0003*210", "secret210")
    api = Uapi(server.api_url, "test-user-app", "test-user-secret")
    call_id = api.call_id(api.create(["0003*210"], ["0003*00"], query={"callDuration": 1}))
    api.wait_ended(call_id, timeout=20)
    assert phone.received("BYE")  # the call went through the phone...
    reply = api.client.get(f"/uapi/phoneCalls/@me/0003*210/{call_id}/trace", headers=api.headers)
    assert reply.status_code == 200 and reply.json() == []  # ... and nothing was kept
    api.close()
