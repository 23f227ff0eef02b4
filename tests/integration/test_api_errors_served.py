"""The real ``b2bua serve`` answers every error in the UAPI shape, including the ones its HTTP
server (hypercorn, h11) writes without calling the app: a head too large (431), bytes that are
not HTTP (400), a Transfer-Encoding it does not implement (501), WebSocket handshakes (400).

The requests go over a raw socket so the test controls how the bytes arrive: a large head sent
in one piece reaches the app (``HeadLimit``), the same head in two pieces is refused by h11
while it is still arriving; both must get the same 431.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from api.errors import MAX_HEAD_BYTES

from .harness import B2buaServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[B2buaServer]:
    server = B2buaServer(Path(tmp_path_factory.mktemp("errors")), config={"calls": {"drain": 1}})
    server.start()
    yield server
    server.stop()


@dataclass(frozen=True)
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    def error(self) -> dict[str, str]:
        assert self.headers.get("content-type") == "application/json", self
        assert int(self.headers["content-length"]) == len(self.body), self
        body = json.loads(self.body)
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
        assert body["error"]["message"], body
        return dict(body["error"])


def exchange(server: B2buaServer, pieces: list[bytes]) -> RawAnswer:
    """Send ``pieces`` (a pause between them) and read one answer."""
    host, port = server.api_url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        for index, piece in enumerate(pieces):
            if index:
                time.sleep(0.2)
            sock.sendall(piece)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed before an answer: {data!r}"
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    return RawAnswer(int(lines[0].split()[1]), headers, body)


def request_with_header(size: int) -> bytes:
    return (
        b"GET /uapi/openapi.json HTTP/1.1\r\nHost: test\r\nX-Big: "
        + b"a" * size
        + b"\r\nConnection: close\r\n\r\n"
    )


def test_a_large_head_in_one_piece_is_431_uapi_error(server: B2buaServer) -> None:
    answer = exchange(server, [request_with_header(MAX_HEAD_BYTES + 100)])
    assert answer.status == 431
    assert answer.error()["code"] == "headers_too_large"


def test_a_large_head_in_pieces_is_the_same_431_from_hypercorn(server: B2buaServer) -> None:
    data = request_with_header(MAX_HEAD_BYTES + 100)
    answer = exchange(server, [data[: MAX_HEAD_BYTES + 50], data[MAX_HEAD_BYTES + 50 :]])
    assert answer.status == 431
    assert answer.error()["code"] == "headers_too_large"


def test_a_huge_head_is_431_uapi_error(server: B2buaServer) -> None:
    answer = exchange(server, [request_with_header(200_000)])
    assert answer.status == 431
    assert answer.error()["code"] == "headers_too_large"


def test_a_head_under_the_limit_is_served(server: B2buaServer) -> None:
    data = request_with_header(MAX_HEAD_BYTES - 200)
    answer = exchange(server, [data[:8000], data[8000:]])
    assert answer.status == 200


def test_bytes_that_are_not_http_are_400_uapi_error(server: B2buaServer) -> None:
    answer = exchange(server, [b"HELLO THERE\r\n\r\n"])
    assert answer.status == 400
    assert answer.error()["code"] == "request_invalid"


def test_an_unknown_transfer_encoding_is_501_uapi_error(server: B2buaServer) -> None:
    answer = exchange(
        server,
        [b"POST /oauth/token.php HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: gzip\r\n\r\n"],
    )
    assert answer.status == 501
    assert answer.error()["code"] == "request_not_implemented"


@pytest.mark.parametrize(
    "handshake",
    [
        pytest.param(
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
            id="valid",
        ),
        pytest.param(b"", id="without-key"),
    ],
)
def test_a_websocket_handshake_is_400_uapi_error(server: B2buaServer, handshake: bytes) -> None:
    answer = exchange(
        server,
        [
            b"GET /uapi/openapi.json HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\n"
            b"Upgrade: websocket\r\n" + handshake + b"\r\n"
        ],
    )
    assert answer.status == 400
    assert answer.error()["code"] == "request_invalid"


def test_the_apps_own_errors_are_uapi_errors(server: B2buaServer) -> None:
    """404 outside the routes, 405, 413: what the app answers, seen through the real server."""
    with httpx.Client(base_url=server.api_url, timeout=10) as http:
        token = http.post(
            "/oauth/token.php",
            data={
                "grant_type": "client_credentials",
                "client_id": "test-user-app",
                "client_secret": "test-user-secret",
            },
        ).json()["access_token"]
        cases = [
            (http.get("/nothing/here"), 404, "not_found"),
            (http.delete("/uapi/openapi.json"), 405, "method_not_allowed"),
            (
                http.post(
                    "/uapi/phoneCalls/@me/simple",
                    content=b"{" + b" " * 70_000 + b"}",
                    headers={"Authorization": f"Bearer {token}"},
                ),
                413,
                "payload_too_large",
            ),
        ]
        for response, status, code in cases:
            assert response.status_code == status, response.text
            assert response.headers["content-type"] == "application/json"
            assert response.json()["error"]["code"] == code
