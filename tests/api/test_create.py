"""POST /uapi/phoneCalls/{userId}/simple: every rule and error code of VoipNow's page."""

from __future__ import annotations

import pytest
import trio
from uapi_helpers import PUBLIC_URL, assert_error, auth, simple_body

CREATE = "/uapi/phoneCalls/{}/simple"


async def post(client, body, *, user="@me", kind="user", params=None, headers=None):
    headers = headers or await auth(client, kind)
    return await client.post(CREATE.format(user), json=body, params=params, headers=headers)


async def test_seed_example_sandbox_call_is_accepted(mock_clock, client, engine) -> None:
    response = await post(client, simple_body(view={"callerId": "John Doe <4242425>"}))
    assert response.status_code == 202
    [created] = response.json()
    assert len(created["id"]) == 20 and int(created["id"], 16) >= 0
    assert created["extension"] == "0003*210"
    assert created["link"]["self"] == f"{PUBLIC_URL}/uapi/phoneCalls/@me/0003*210/{created['id']}"
    assert response.headers["location"] == created["link"]["self"]
    call = engine.get_call(created["id"])
    assert call.user_id == 12 and call.extension == "0003*210"
    assert call.sources == ["0003*00"] and call.destinations == ["0003*01"]
    assert call.wait_for_pickup == 25  # the configured default


@pytest.mark.parametrize(
    ("given", "user"),
    [("210", "12"), ("0003*210", "@me"), (None, "@me")],  # None: the first source, "210"
)
async def test_created_extension_is_the_one_get_returns_and_link_self_holds(
    mock_clock, client, given: str | None, user: str
) -> None:
    body = simple_body(source="210", destination="0003*00")
    if given is None:
        del body["extension"]
    else:
        body["extension"] = given
    response = await post(client, body, user=user)
    assert response.status_code == 202, response.text
    [created] = response.json()
    assert created["extension"] == "0003*210"
    link = created["link"]["self"]
    assert link == f"{PUBLIC_URL}/uapi/phoneCalls/{user}/0003*210/{created['id']}"
    got = await client.get(link.removeprefix(PUBLIC_URL), headers=await auth(client))
    assert got.status_code == 200, got.text
    [call] = got.json()["entry"]
    assert call["extension"] == created["extension"]
    assert call["links"]["self"] == link


async def test_source_and_destination_as_arrays_and_query_options(
    mock_clock, client, engine
) -> None:
    body = simple_body(source=["0003*00", "0003*01"], destination=["0003*02"])
    params = {
        "waitForPickup": "2.5",
        "callDuration": "30",
        "allowPublicTransfer": "true",
        "video": "false",
    }
    response = await post(client, body, params=params)
    assert response.status_code == 202, response.text
    call = engine.get_call(response.json()[0]["id"])
    assert call.sources == ["0003*00", "0003*01"]
    assert call.wait_for_pickup == 3  # fractions round up
    assert call.call_duration == 30
    assert call.allow_public_transfer is True and call.video is False


async def test_missing_extension_defaults_to_first_source(mock_clock, client, engine) -> None:
    body = {"phoneCallView": [{"source": ["0003*210"], "destination": ["0003*00"]}]}
    response = await post(client, body)
    assert response.status_code == 202, response.text
    assert response.json()[0]["extension"] == "0003*210"
    assert engine.get_call(response.json()[0]["id"]).extension == "0003*210"


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (
            {"phoneCallView": [{"source": ["5354353"], "destination": ["0003*00"]}]},
            "public first source",
        ),
        ({"phoneCallView": [{"destination": ["0003*00"]}]}, "no extension, no source"),
        (simple_body(extension="0003*999"), "unknown"),
        (simple_body(extension="0003*300"), "a queue, not a Phone Terminal"),
        (simple_body(extension="0003*211"), "owned by user 13"),
        (simple_body(extension="0004*210"), "another organization"),
        (simple_body(extension="@self"), "@self"),
        (simple_body(extension=210), "not a string"),
        (simple_body(extension=""), "empty"),
    ],
)
async def test_extension_invalid(mock_clock, client, body, why) -> None:
    assert_error(await post(client, body), 400, "extension_invalid")


@pytest.mark.parametrize("value", ["0", "-5", "abc", "1.5", "", "604801", "1e3"])
async def test_pc_duration_invalid(mock_clock, client, value) -> None:
    response = await post(client, simple_body(), params={"callDuration": value})
    assert_error(response, 400, "pc_duration_invalid")


@pytest.mark.parametrize("value", ["0", "0.0", "-1", "x", "", "nan", "inf", "604801"])
async def test_pc_timeout_invalid(mock_clock, client, value) -> None:
    response = await post(client, simple_body(), params={"waitForPickup": value})
    assert_error(response, 400, "pc_timeout_invalid")


@pytest.mark.parametrize("value", ["yes", "1", "", "truth"])
async def test_pc_transfer_invalid(mock_clock, client, value) -> None:
    response = await post(client, simple_body(), params={"allowPublicTransfer": value})
    assert_error(response, 400, "pc_transfer_invalid")


async def test_long_but_sane_times_are_accepted(mock_clock, client, engine) -> None:
    params = {"waitForPickup": "3600", "callDuration": "604800"}
    response = await post(client, simple_body(), params=params)
    assert response.status_code == 202, response.text
    call = engine.get_call(response.json()[0]["id"])
    assert call.wait_for_pickup == 3600 and call.call_duration == 604800


async def test_pc_video_invalid(mock_clock, client) -> None:
    assert_error(await post(client, simple_body(), params={"video": "on"}), 400, "pc_video_invalid")
    assert (await post(client, simple_body(), params={"video": "TRUE"})).status_code == 202


@pytest.mark.parametrize(
    "source", [None, [], [""], ["  "], [5], "0003*999", "abc", ["0003*00", None], ["1" * 70]]
)
async def test_pc_source_invalid(mock_clock, client, source) -> None:
    body = simple_body(source=source)
    if source is None:
        del body["phoneCallView"][0]["source"]
    assert_error(await post(client, body), 400, "pc_source_invalid")


@pytest.mark.parametrize("destination", [None, [], [""], [7], "0003*999", "abc", "0004*210x"])
async def test_pc_destination_invalid(mock_clock, client, destination) -> None:
    body = simple_body(destination=destination)
    if destination is None:
        del body["phoneCallView"][0]["destination"]
    assert_error(await post(client, body), 400, "pc_destination_invalid")


async def test_no_phone_call_view_is_a_missing_source(mock_clock, client) -> None:
    assert_error(await post(client, {"extension": "0003*210"}), 400, "pc_source_invalid")
    body = {"extension": "0003*210", "phoneCallView": "x"}
    assert_error(await post(client, body), 400, "pc_source_invalid")


@pytest.mark.parametrize(
    "view",
    [
        {"callerId": "no brackets"},
        {"callerId": 4242425},
        {"callerId": ""},
        {"callerIdDestination": "John <abc>"},
        {"callerDestination": "<<>>"},
        {"callerIdDestination": "A <123>", "callerDestination": "B <456>"},
    ],
)
async def test_pc_callerid_invalid_format(mock_clock, client, view) -> None:
    assert_error(await post(client, simple_body(view=view)), 400, "pc_callerid_invalid")


async def test_pc_callerid_invalid_when_extension_forbids_setting_it(mock_clock, client) -> None:
    # 0003*212 belongs to user 12 and has allow_caller_id = false
    body = simple_body(extension="0003*212", view={"callerId": "John Doe <4242425>"})
    response = assert_error(await post(client, body), 400, "pc_callerid_invalid")
    assert response["error"]["message"] == "You are not allowed to set the callerid field."
    body = simple_body(extension="0003*212", view={"callerDestination": "John Doe <4242425>"})
    assert_error(await post(client, body), 400, "pc_callerid_invalid")
    # without a caller id the same extension may call
    assert (await post(client, simple_body(extension="0003*212"))).status_code == 202


async def test_caller_destination_synonym_is_stored(mock_clock, client, engine) -> None:
    body = simple_body(view={"callerId": "A B <111>", "callerDestination": "C D <+222>"})
    response = await post(client, body)
    assert response.status_code == 202, response.text
    call = engine.get_call(response.json()[0]["id"])
    assert call.caller_id == "A B <111>"
    assert call.caller_id_destination == "C D <+222>"


@pytest.mark.parametrize("nonce", ["", 5, "x" * 129, "a b", "é", True, ["n"]])
async def test_pc_nonce_invalid(mock_clock, client, nonce) -> None:
    assert_error(await post(client, simple_body(nonce=nonce)), 400, "pc_nonce_invalid")


async def test_repeated_nonce_returns_the_same_call(mock_clock, client, engine) -> None:
    first = await post(client, simple_body(nonce="order-42"))
    second = await post(client, simple_body(nonce="order-42"))
    assert first.status_code == second.status_code == 202
    assert first.json()[0]["id"] == second.json()[0]["id"]
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert len(engine.list_calls(user_id=12)) == 1
    # the nonce may also sit in the view, as VoipNow words it
    third = await post(client, simple_body(view={"nonce": "order-42"}))
    assert third.json()[0]["id"] == first.json()[0]["id"]
    # a replay through another extension of the user points at the call's own extension
    fourth = await post(client, simple_body(extension="0003*212", nonce="order-42"))
    assert fourth.json()[0]["id"] == first.json()[0]["id"]
    assert fourth.json()[0]["extension"] == "0003*210"
    assert fourth.json()[0]["link"]["self"].endswith(f"/@me/0003*210/{first.json()[0]['id']}")


@pytest.mark.parametrize("url", ["ftp://x/y", "not a url", "http://", 5, "https://h:99999/"])
async def test_pc_status_callback_invalid(mock_clock, client, url) -> None:
    assert_error(
        await post(client, simple_body(statusCallback=url)), 400, "pc_status_callback_invalid"
    )


async def test_status_callback_without_dispatcher_is_not_implemented(mock_clock, client) -> None:
    response = await post(client, simple_body(statusCallback="http://127.0.0.1:9/cb"))
    assert_error(response, 501, "request_not_implemented")


@pytest.mark.parametrize("raw", [b"{", b"[]", b"null", b'"x"', b'{"a": NaN}', b"\xff", b""])
async def test_malformed_json_is_payload_invalid(mock_clock, client, raw) -> None:
    headers = await auth(client)
    response = await client.post(CREATE.format("@me"), content=raw, headers=headers)
    assert_error(response, 400, "payload_invalid")


async def test_huge_body_is_refused(mock_clock, client) -> None:
    headers = await auth(client)
    response = await client.post(CREATE.format("@me"), content=b" " * 70000, headers=headers)
    assert_error(response, 413, "payload_too_large")


# ----------------------------------------------------------------- who may act for whom


@pytest.mark.parametrize("user", ["abc", "999", "-1", "12.0", "@them", "1" * 30])
async def test_user_invalid(mock_clock, client, user) -> None:
    assert_error(await post(client, simple_body(), user=user), 400, "user_invalid")


async def test_user_app_acts_only_as_itself(mock_clock, client) -> None:
    for user in ["@me", "@viewer", "12", "@owner"]:
        assert (await post(client, simple_body(), user=user)).status_code == 202, user
    assert_error(await post(client, simple_body(), user="13"), 403, "access_denied")
    body = simple_body(extension="0003*211")
    assert_error(await post(client, body, user="@owner"), 403, "access_denied")


async def test_organization_app_acts_for_its_users(mock_clock, client) -> None:
    body = simple_body(extension="211")
    assert (await post(client, body, user="13", kind="org")).status_code == 202
    assert (await post(client, body, user="@owner", kind="org")).status_code == 202
    response = await post(client, simple_body(), user="@me", kind="org")
    body_json = assert_error(response, 400, "user_invalid")
    assert "must be specified" in body_json["error"]["message"]
    other = simple_body(extension="0004*210")
    assert_error(await post(client, other, user="20", kind="org"), 403, "access_denied")
    assert (await post(client, other, user="20", kind="other-org")).status_code == 202


async def test_admin_app_acts_for_anyone_with_extended_numbers_only(mock_clock, client) -> None:
    other = simple_body(extension="0004*210", source="0004*00", destination="0004*01")
    assert (await post(client, other, user="20", kind="admin")).status_code == 202
    assert (await post(client, simple_body(), user="@owner", kind="admin")).status_code == 202
    assert_error(await post(client, simple_body(), user="@me", kind="admin"), 400, "user_invalid")
    short_ext = simple_body(extension="210")
    assert_error(await post(client, short_ext, user="12", kind="admin"), 400, "extension_invalid")
    short_src = simple_body(source="211")
    assert_error(await post(client, short_src, user="12", kind="admin"), 400, "pc_source_invalid")


async def test_short_numbers_resolve_in_the_users_organization(mock_clock, client, engine) -> None:
    body = {"extension": "210", "phoneCallView": [{"source": "211", "destination": "0003*00"}]}
    response = await post(client, body, user="12", kind="org")
    assert response.status_code == 202, response.text
    assert engine.get_call(response.json()[0]["id"]).extension == "0003*210"


async def test_draining_server_refuses_new_calls(mock_clock, client, engine) -> None:
    engine.draining = True
    response = await post(client, simple_body())
    assert_error(response, 503, "service_unavailable")
    assert response.headers["retry-after"]


async def test_each_number_is_resolved_once_for_the_check_and_the_call(
    mock_clock, client, engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import api.fields as fields_module
    import engine.engine.actions as actions_module
    import engine.engine.create as create_module
    import engine.numbers as numbers_module

    resolved: list[str] = []
    real = numbers_module.resolve

    def counting(number, *args, **kwargs):
        resolved.append(number)
        return real(number, *args, **kwargs)

    for module in (fields_module, create_module, actions_module, numbers_module):
        monkeypatch.setattr(module, "resolve", counting)
    body = simple_body(source=["0003*01", "0003*02"], destination=["0003*00"])
    response = await post(client, body, params={"callDuration": "5"})
    assert response.status_code == 202, response.text
    [created] = response.json()
    with trio.fail_after(30):
        while engine.get_call(created["id"]).state != "ended":
            await trio.sleep(0.5)
    call = engine.get_call(created["id"])
    assert call.bridged is not None  # rung, answered and bridged: every number was used
    assert sorted(resolved) == ["0003*00", "0003*01", "0003*02"]  # once each
