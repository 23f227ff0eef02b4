from __future__ import annotations

from uapi_helpers import auth, simple_body


async def test_create_then_get(client) -> None:
    headers = await auth(client)
    response = await client.post("/uapi/phoneCalls/@me/simple", json=simple_body(), headers=headers)
    assert response.status_code == 202, response.text
    call_id = response.json()[0]["id"]
    got = await client.get(f"/uapi/phoneCalls/@me/0003*210/{call_id}", headers=headers)
    assert got.status_code == 200, got.text
    print(got.json())
