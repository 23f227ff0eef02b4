"""Crash billing through the real ``b2bua serve``: a charged call killed with -9 is timed and
charged, on restart, up to the node's last heartbeat before the crash, and its answered legs
get their BYE from the dialog state stored when they were answered."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from datetime import datetime

from .harness import DEFAULT_DIRECTORY, B2buaServer, Sipp
from .uapi import Uapi

HEARTBEAT = 1.0
RATE = 0.02


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_a_killed_call_is_charged_up_to_the_last_heartbeat(
    gateway: Callable[..., Sipp], b2bua_factory: Callable[..., B2buaServer]
) -> None:
    gw = gateway("gateway_answer.xml", rtp_echo=True, timeout=30)
    directory = (
        DEFAULT_DIRECTORY
        + f'\n[[routes]]\nprefix = "5354"\ngateway = "udp:{gw.address}"\nrate = {RATE}\n'
    )
    cluster = {"cluster": {"node": "crash-node", "heartbeat": HEARTBEAT}}
    server = b2bua_factory(directory=directory, config=cluster)
    api = Uapi(server.api_url, "test-user-app", "test-user-secret")
    call_id = api.call_id(api.create(["5354353"], ["0003*00"], query={"callDuration": 120}))
    bridged = api.wait(call_id, lambda r: r.get("state") == "bridged", timeout=15)
    time.sleep(4.5)  # talking: the real process must live a few heartbeats
    killed_at = time.time()
    server.stop(signal.SIGKILL)  # no drain, no BYE, no last write: the process just dies

    store = {"url": f"sqlite:///{server.workdir / 'b2bua.sqlite'}"}
    time.sleep(2)  # down for a while: the restart must not count
    restarted = b2bua_factory(directory=directory, config={**cluster, "store": store})
    record = Uapi(restarted.api_url, "test-user-app", "test-user-secret").get(call_id)

    assert record["state"] == "ended" and record["disposition"] == 0
    assert "restart" in record["hangupCause"]
    ended = _epoch(record["ended"])
    assert killed_at - HEARTBEAT - 0.5 <= ended <= killed_at  # the last beat before the kill
    talked = killed_at - _epoch(record["bridged"])
    assert talked - HEARTBEAT - 1 <= record["duration"] <= talked + 1, (record, talked)
    assert record["duration"] >= 3  # not 0, not up to the restart
    assert record["charge"] == RATE  # one started minute of the answered public party
    assert bridged["bridged"] == record["bridged"]
    # the gateway's leg was left up by the dead process: the restarted one BYEs it, in its
    # dialog (Call-ID and tags of the INVITE's), and the gateway's scenario ends cleanly
    invite = gw.wait_for_message("INVITE")
    bye = gw.wait_for_message("BYE", timeout=10)
    assert bye.call_id == invite.call_id
    assert gw.wait(10) == 0
