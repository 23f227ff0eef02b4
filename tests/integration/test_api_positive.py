"""The OpenAPI document and the server agree: schemathesis in positive-only mode against the
real ``b2bua serve``.

Every request schemathesis generates here is valid by ``/uapi/openapi.json``; the server may
still refuse one only for a reason no schema can see: a state the request does not control
(``LEGITIMATE``: a user, extension, call, route or App that does not exist, an App outside its
scope), or one of the few rules between parameters that OpenAPI cannot state (each is in the
descriptions). Each entry matches status, code and message, so a syntax error that happens to
share a code with one of them still fails. Any other 4xx means the document calls valid a value
the server rejects: the test fails and names the operation, the status, code and message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import schemathesis

from api.openapi import openapi_document

from .harness import DEFAULT_DIRECTORY, B2buaServer

TOKEN_PATH = "/oauth/token.php"
PLACEHOLDER_URL = "http://127.0.0.1:9"
MAX_EXAMPLES = 40


@dataclass(frozen=True)
class Legitimate:
    """An answer a schema-valid request can still get, and why no schema can rule it out."""

    status: int
    code: str
    message: str  # a regular expression the error message must match (re.search)
    why: str


# the Callback and Conference extensions the documented examples name (500, 400)
CREATE_EXTENSIONS = """
[[extensions]]
number = "400"
organization = 3
user = 12
type = "conference"

[[extensions]]
number = "500"
organization = 3
user = 12
type = "callback"
"""
UNKNOWN_NUMBER = (
    r"cannot be called: (unknown organization code|unknown extension|no route for public number)"
)
LEGITIMATE = [
    Legitimate(
        401,
        "invalid_client",
        r"^Unknown client or wrong client secret$",
        "client credentials that are not an App's",
    ),
    Legitimate(
        429,
        "slow_down",
        r"^Too many failed attempts: try again in \d+ s$",
        "a source that kept sending credentials that are not an App's (password guessing)",
    ),
    Legitimate(400, "user_invalid", r"^Unknown user \d+$", "a user id that names no user"),
    Legitimate(
        403,
        "access_denied",
        r"^This App may not act on behalf of user \d+$",
        "a user outside the App's scope",
    ),
    Legitimate(
        400,
        "extension_invalid",
        r"^Unknown extension |is not owned by user",
        "an extension that does not exist, or is not the user's",
    ),
    Legitimate(404, "pc_not_found", r"^No PhoneCall ", "a call id that names no call of the user"),
    Legitimate(
        400,
        "pc_source_invalid",
        UNKNOWN_NUMBER,
        "a number of an organization, extension or route that does not exist",
    ),
    Legitimate(
        400,
        "pc_destination_invalid",
        UNKNOWN_NUMBER,
        "a number of an organization, extension or route that does not exist",
    ),
    Legitimate(
        400,
        "pc_callerid_invalid",
        r"^You are not allowed to set the callerid field\.$",
        "an extension that may not set a caller id (the directory's allow_caller_id)",
    ),
    Legitimate(
        400,
        "extension_invalid",
        r"is not a (Callback|Phone Terminal or Conference) extension$",
        "an extension of another type than the create takes (Callback, ConferenceInvite)",
    ),
    Legitimate(
        400,
        "pc_conference_invalid",
        r"is not a conference extension$",
        "a conference number that names no conference extension",
    ),
    Legitimate(
        400,
        "pc_source_invalid",
        r"cannot be called here: it is extension ",
        "a callback's party that is an extension (public numbers only, as described)",
    ),
    Legitimate(
        400,
        "pc_destination_invalid",
        r"cannot be called here: (it is extension |\S+ is a conference, not a party)",
        "a callback's party that is an extension, an invite's that is a conference",
    ),
    Legitimate(
        409,
        "pc_conference_full",
        r"^conference \S+ is full ",
        "a conference holding (or ringing) as many parties as it takes",
    ),
    # Rules between parameters, which OpenAPI cannot state (each is in the descriptions).
    Legitimate(
        400,
        "pc_pin_invalid",
        r"^the PIN of conference \S+ is (missing|wrong)$",
        "the pin must be the conference's own (which the directory holds)",
    ),
    Legitimate(
        400,
        "user_invalid",
        r"^userId @owner needs an extension number, not @self$",
        "@owner names the owner of one extension: it cannot go with @self",
    ),
    Legitimate(
        400,
        "filtervalue_invalid",
        r"^filterValue is missing$|^filterValue must be an ISO 8601 date for ",
        "filterValue is required with filterBy, and a date for a date field",
    ),
    Legitimate(
        400,
        "cdr_enddate_invalid",
        r"^endDate is before startDate$",
        "endDate must not be before startDate",
    ),
]


def legitimate(status: int, code: object, message: object) -> bool:
    return any(
        entry.status == status
        and entry.code == code
        and isinstance(message, str)
        and re.search(entry.message, message)
        for entry in LEGITIMATE
    )


@pytest.fixture(scope="module")
def positive_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[B2buaServer]:
    server = B2buaServer(
        Path(tmp_path_factory.mktemp("positive")),
        config={"calls": {"wait_for_pickup": 2, "drain": 1}},
        directory=DEFAULT_DIRECTORY + CREATE_EXTENSIONS,
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def user_token(positive_server: B2buaServer) -> str:
    reply = httpx.post(
        f"{positive_server.api_url}{TOKEN_PATH}",
        data={
            "grant_type": "client_credentials",
            "client_id": "test-user-app",
            "client_secret": "test-user-secret",
        },
        timeout=10,
    )
    reply.raise_for_status()
    return str(reply.json()["access_token"])


def valid_data_accepted(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    if not 400 <= response.status_code < 500:
        return None
    try:
        error = json.loads(response.text).get("error")
    except (ValueError, AttributeError):
        raise AssertionError(f"{response.status_code} without a JSON error body") from None
    if isinstance(error, dict):  # UAPI: {"error": {"code", "message"}}
        code, message = error.get("code"), error.get("message")
    else:  # OAuth (the token endpoint): {"error", "error_description"}
        code, message = error, json.loads(response.text).get("error_description")
    if legitimate(response.status_code, code, message):
        return None
    raise AssertionError(
        f"a request valid by the document got {response.status_code} {code}: {message}"
    )


schema = schemathesis.openapi.from_dict(
    openapi_document(PLACEHOLDER_URL),
    config=schemathesis.Config.from_dict(
        {
            "seed": 20261207,
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "mode": "positive",
            },
            "phases": {
                "examples": {"extra-data-sources": {"responses": False}},
                "coverage": {"extra-data-sources": {"responses": False}},
                "fuzzing": {
                    "extra-data-sources": {"responses": False},
                    "error-feedback": {"enabled": False},
                },
            },
        }
    ),
)


@schema.parametrize()
def test_valid_requests_are_accepted(
    case: schemathesis.Case, positive_server: B2buaServer, user_token: str
) -> None:
    headers = {} if case.operation.path == TOKEN_PATH else {"Authorization": f"Bearer {user_token}"}
    case.call_and_validate(
        base_url=positive_server.api_url,
        headers=headers,
        checks=[valid_data_accepted],
        timeout=10,
    )


def test_the_legitimate_answers_are_narrow() -> None:
    assert legitimate(
        400,
        "pc_source_invalid",
        "source '0*0' cannot be called: unknown organization code 0 in 0*0",
    )
    assert legitimate(400, "user_invalid", "Unknown user 99")
    # same codes, but the request's own syntax: never legitimate for a schema-valid request
    assert not legitimate(
        400,
        "pc_source_invalid",
        "source '+1' cannot be called: number +1 is too short for a public number",
    )
    assert not legitimate(400, "user_invalid", "userId must be a user id or one of @me, @viewer")
    assert not legitimate(400, "pc_duration_invalid", "callDuration must be a positive integer")
