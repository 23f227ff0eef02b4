"""Property: no input, however odd, gets a 5xx or a body that is not a UAPI error/resource."""

from __future__ import annotations

import json
import random
from typing import Any
from urllib.parse import quote

import httpx
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st
from uapi_helpers import PUBLIC_URL, get_token

from api.app import create_app
from engine.config_model import default_config
from engine.directory import demo_directory
from engine.engine import open_engine
from engine.store import open_store

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
numbers = st.sampled_from(
    ["0003*00", "0003*210", "211", "5354353", "+4930123", "", "0003*", "*", "@self"]
) | st.text(max_size=12)
views = st.fixed_dictionaries(
    {},
    optional={
        "source": numbers | st.lists(numbers, max_size=3) | json_values,
        "destination": numbers | st.lists(numbers, max_size=3) | json_values,
        "callerId": st.sampled_from(["John Doe <4242425>", "x", ""]) | json_values,
        "callerIdDestination": st.text(max_size=20) | json_values,
        "callerDestination": st.text(max_size=20),
        "nonce": st.text(max_size=20) | json_values,
    },
)
bodies = (
    st.fixed_dictionaries(
        {},
        optional={
            "extension": numbers | json_values,
            "phoneCallView": st.lists(views, max_size=2) | json_values,
            "nonce": st.text(max_size=20) | json_values,
            "statusCallback": st.sampled_from(["http://127.0.0.1:9/x", "ftp://x"])
            | st.text(max_size=20),
        },
    )
    | json_values
)
params = st.dictionaries(
    st.sampled_from(
        [
            "waitForPickup",
            "callDuration",
            "allowPublicTransfer",
            "video",
            "count",
            "startIndex",
            "filterBy",
            "filterOp",
            "filterValue",
            "sortOrder",
            "fields",
            "phoneNumber",
            "startDate",
            "disposition",
            "flow",
        ]
    ),
    st.text(max_size=12) | st.sampled_from(["1", "0", "true", "-1", "1e9", "published", "id"]),
    max_size=4,
)


def _quoted(text: str) -> str:
    return quote(text, safe="@*")


segments = st.sampled_from(
    ["@me", "@viewer", "@owner", "12", "13", "999", "@self", "0003*210", "210", "x"]
) | st.text(alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=10).map(
    _quoted
)


async def _exercise(requests: list[tuple[str, str, dict[str, str], Any]]) -> None:
    store = open_store("sqlite:///:memory:")
    async with open_engine(
        default_config(), demo_directory(), store, rng=random.Random(3)
    ) as engine:
        app = create_app(engine, public_url=PUBLIC_URL)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            token = await get_token(client, "org")
            headers = {"Authorization": f"Bearer {token}"}
            for method, path, query, body in requests:
                content = body if isinstance(body, bytes) else json.dumps(body).encode()
                response = await client.request(
                    method, path, params=query, content=content, headers=headers
                )
                assert response.status_code < 500, (method, path, query, body, response.text)
                assert response.status_code not in range(300, 400), (method, path)
                if response.status_code >= 400:
                    error = response.json()["error"]
                    assert isinstance(error["code"], str) and isinstance(error["message"], str)
                elif response.status_code != 204:
                    assert response.json() is not None


requests = st.tuples(
    st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    st.one_of(
        st.builds(lambda u: f"/uapi/phoneCalls/{u}/simple", segments),
        st.builds(lambda u, e: f"/uapi/phoneCalls/{u}/{e}", segments, segments),
        st.builds(
            lambda u, e, i: f"/uapi/phoneCalls/{u}/{e}/{i}",
            segments,
            segments,
            st.text(alphabet="0123456789abcdef", max_size=20),
        ),
        st.builds(lambda o: f"/uapi/cdr/{o}", segments),
    ),
    params,
    bodies | st.binary(max_size=40),
)


@given(st.lists(requests, min_size=1, max_size=6))
def test_no_request_gets_a_server_error(batch) -> None:
    trio.run(_exercise, batch, clock=trio.testing.MockClock(autojump_threshold=0))
