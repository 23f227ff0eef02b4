"""The PhoneCall record: codes, ids, JSON round trip, billable seconds."""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from engine.model import (
    CallState,
    Disposition,
    Flow,
    Party,
    PartyStatus,
    PhoneCall,
    format_datetime,
    new_call_id,
    parse_datetime,
)

T0 = datetime(2026, 11, 26, 22, 0, 0, tzinfo=UTC)


def test_uapi_codes() -> None:
    assert [int(d) for d in Disposition] == [0, 1, 2, 3, 4, 5]
    assert Disposition.NO_ANSWER == 3 and Disposition.NOT_ALLOWED == 5
    assert PartyStatus.ON_CALL == 5 and PartyStatus.OTHER_SIDE_RINGING == 4
    assert (Flow.LOCAL, Flow.OUTGOING, Flow.INCOMING) == (2, 4, 8)
    assert CallState.ENDED == "ended"


def test_call_ids_are_20_lowercase_hex_and_reproducible() -> None:
    ids = {new_call_id(random.Random(seed)) for seed in range(200)}
    assert len(ids) == 200
    assert all(re.fullmatch(r"[0-9a-f]{20}", i) for i in ids)
    assert new_call_id(random.Random(7)) == new_call_id(random.Random(7))

    # a generator giving small numbers still yields 20 digits
    class Zero:
        def getrandbits(self, k: int, /) -> int:
            return 1

    assert new_call_id(Zero()) == "0" * 19 + "1"


def full_call() -> PhoneCall:
    return PhoneCall(
        id="b817d2618fe6f1804333",
        user_id=12,
        organization_id=3,
        extension="0003*210",
        sources=["0003*210"],
        destinations=["+4912345", "0003*05"],
        caller_id="John Doe <4242425>",
        caller_id_destination="Jane <1>",
        nonce="n-1",
        wait_for_pickup=10,
        call_duration=60,
        allow_public_transfer=True,
        video=True,
        status_callback="http://127.0.0.1:9/cb",
        published=T0,
        answered=T0 + timedelta(seconds=2, microseconds=500),
        bridged=T0 + timedelta(seconds=5),
        ended=T0 + timedelta(seconds=65, milliseconds=1),
        state=CallState.ENDED,
        disposition=Disposition.ANSWERED,
        hangup_cause="source hung up",
        charge=0.04,
        parties=[
            Party(
                "0003*210",
                "source",
                "extension",
                extension="0003*210",
                status=PartyStatus.ON_CALL,
                flow=Flow.OUTGOING,
                caller_id="Jane <1>",
                ringing=T0,
                answered=T0 + timedelta(seconds=2),
                ended=T0 + timedelta(seconds=65),
                sip_status=200,
                on_hold=T0 + timedelta(seconds=30),
                recording=T0 + timedelta(seconds=10),
                media={"audio": {"packets_in": 3, "bytes_in": 516}},
            ),
            Party("+4912345", "destination", "public", flow=Flow.OUTGOING, sip_status=486),
            Party(
                "0003*211",
                "destination",
                "extension",
                extension="0003*211",
                parked=T0 + timedelta(seconds=40),
                parked_pos=3,
                parked_by="0003*210",
            ),
        ],
        origin="sip",
    )


def test_round_trip_through_json_keeps_everything() -> None:
    call = full_call()
    text = json.dumps(call.to_dict())
    again = PhoneCall.from_dict(json.loads(text))
    assert again == call
    assert again.disposition is Disposition.ANSWERED
    assert again.parties[0].status is PartyStatus.ON_CALL
    assert again.published.tzinfo is not None


def test_dates_are_iso_8601_z() -> None:
    data = full_call().to_dict()
    assert data["published"] == "2026-11-26T22:00:00Z"
    assert data["answered"] == "2026-11-26T22:00:02.000500Z"
    assert data["disposition"] == 0 and data["state"] == "ended"
    assert parse_datetime("2026-11-26T23:00:00+01:00") == T0
    assert format_datetime(datetime(2026, 11, 26, 22, 0)) == "2026-11-26T22:00:00Z"
    assert format_datetime(T0.astimezone(timezone(timedelta(hours=3)))) == "2026-11-26T22:00:00Z"
    with pytest.raises(ValueError):
        parse_datetime("2026-11-26T22:00:00")  # no zone
    with pytest.raises(ValueError):
        parse_datetime("yesterday")


def test_minimal_call_defaults() -> None:
    call = PhoneCall("0" * 20, 12, 3, "0003*210", ["0003*00"], ["0003*01"], published=T0)
    assert call.state is CallState.CREATED
    assert call.disposition is None and call.parties == []
    assert call.billable_seconds == 0
    assert PhoneCall.from_dict(call.to_dict()) == call


def test_billable_seconds_round_up() -> None:
    call = full_call()
    assert call.billable_seconds == 61  # 60.001 s bridged
    call.ended = call.bridged
    assert call.billable_seconds == 0
    call.ended = None
    assert call.billable_seconds == 0


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.pop("id"),
        lambda d: d.update(published="not a date"),
        lambda d: d.update(state="exploded"),
        lambda d: d.update(disposition=9),
        lambda d: d["parties"][0].pop("role"),
        lambda d: d["parties"][0].update(status=42),
    ],
)
def test_bad_records_raise_value_error(mutate: object) -> None:
    data = full_call().to_dict()
    mutate(data)  # type: ignore[operator]
    with pytest.raises(ValueError):
        PhoneCall.from_dict(data)
