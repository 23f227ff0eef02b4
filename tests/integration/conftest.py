"""Fixtures for integration tests: real SIPp, the real server, RTP endpoints, softphones.

Every test under ``tests/integration/`` is marked ``integration``. Whatever a fixture started is
stopped at teardown, and when a test fails the output, logs and SIP message traces of every
process it started are attached to the failure report.

- ``sipp_factory(scenario, **options) -> Sipp`` (started; see ``harness.Sipp``)
- ``b2bua_factory(directory=..., config=...) -> B2buaServer`` (started, addresses known)
- ``b2bua``: one server on the default test directory (``harness.DEFAULT_DIRECTORY``)
- ``rtp_factory(echo=False) -> RtpEndpoint``
- ``softphone_factory(**options) -> Softphone`` (started pjsua2 subprocess)
- ``rtpengine_daemon``: one rtpengine (userspace) per module, for ``media``
- ``media``: the ``[media]`` config of a test parametrized with ``indirect=["media"]`` over
  ``"relay"`` and ``"rtpengine"``; ``b2bua_factory`` applies it to every server it starts
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.requires import require_module

from .harness import B2buaServer, RtpEndpoint, Sipp
from .rtpengine_daemon import Rtpengine

if TYPE_CHECKING:
    from .softphone import Softphone


_STARTED = pytest.StashKey[list[tuple[str, Any]]]()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.integration)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        for title, thing in item.stash.get(_STARTED, []):
            try:
                text = thing.describe()
            except Exception as exc:  # a report must never hide the real failure
                text = f"(could not describe: {exc!r})"
            report.sections.append((title, text))
    return report


def _remember(request: pytest.FixtureRequest, title: str, thing: object) -> None:
    request.node.stash.setdefault(_STARTED, []).append((title, thing))


@pytest.fixture
def sipp_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Sipp]]:
    """Start SIPp instances: ``sipp_factory("phone_busy.xml", timeout=10)``; killed at teardown."""
    started: list[Sipp] = []

    def start(scenario: str | Path, **options: Any) -> Sipp:
        sipp = Sipp(scenario, tmp_path, **options)
        started.append(sipp)
        _remember(request, f"sipp {sipp.name}", sipp)
        return sipp.start()

    yield start
    for sipp in started:
        sipp.kill()


@pytest.fixture
def b2bua_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., B2buaServer]]:
    """Start real servers: ``b2bua_factory(directory=TOML, config={"calls": {...}})``."""
    started: list[B2buaServer] = []

    def start(
        *, config: Mapping[str, Mapping[str, object]] | None = None, **options: Any
    ) -> B2buaServer:
        if "media" in request.fixturenames:  # a test parametrized over the media backends
            config = {**(config or {}), "media": request.getfixturevalue("media")}
        server = B2buaServer(tmp_path / f"server{len(started)}", config=config, **options)
        started.append(server)
        _remember(request, f"b2bua {len(started)}", server)
        return server.start()

    yield start
    for server in started:
        if server.returncode is None:
            server.stop()


@pytest.fixture
def b2bua(b2bua_factory: Callable[..., B2buaServer]) -> B2buaServer:
    """One real server with the default test directory (extensions 0003*210, 0003*211)."""
    return b2bua_factory()


@pytest.fixture
def rtp_factory() -> Iterator[Callable[..., RtpEndpoint]]:
    """RTP endpoints on free even ports: ``rtp_factory(echo=True)``; closed at teardown."""
    opened: list[RtpEndpoint] = []

    def open_endpoint(**options: Any) -> RtpEndpoint:
        endpoint = RtpEndpoint(**options)
        opened.append(endpoint)
        return endpoint

    yield open_endpoint
    for endpoint in opened:
        endpoint.close()


@pytest.fixture
def softphone_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., Softphone]]:
    """pjsua2 softphones in subprocesses: ``softphone_factory(name="alice")``; quit at teardown."""
    require_module("pjsua2", "pip install -e '.[media]' (pjsua2-python)")
    from .softphone import Softphone

    started: list[Softphone] = []

    def start(**options: Any) -> Softphone:
        phone = Softphone(tmp_path, **options)
        started.append(phone)
        _remember(request, f"softphone {phone.name}", phone)
        return phone.start()

    yield start
    for phone in started:
        phone.close()


@pytest.fixture
def gateway(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Sipp]]:
    """SIPp phones and gateways whose working folder holds ``tone.ulaw`` (3 s of 440 Hz
    mu-law) for scenarios that stream it (``gateway_answer_tone.xml``); killed at teardown."""
    from engine.media.tone import encode_tone

    tone = encode_tone(440.0, 0, -12.0) * 3
    started: list[Sipp] = []

    def start(scenario: str, **options: Any) -> Sipp:
        options.setdefault("timeout", 40.0)
        sipp = Sipp(scenario, tmp_path, **options)
        (sipp.workdir / "tone.ulaw").write_bytes(tone)
        started.append(sipp)
        _remember(request, f"sipp {sipp.name}", sipp)
        return sipp.start()

    yield start
    for sipp in started:
        sipp.kill()


def need_rtpengine() -> None:
    """Skip without rtpengine, except in CI (env ``CI`` set), where a missing one fails."""
    import os

    from .rtpengine_daemon import RTPENGINE, available

    if not available():
        message = f"rtpengine not installed ({RTPENGINE}): apt-get install -y rtpengine-daemon"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def rtpengine_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rtpengine]:
    """One rtpengine in userspace for the module, on a free ng port and port range."""
    from .harness import free_port_range

    need_rtpengine()
    log = tmp_path_factory.mktemp("rtpengine") / "rtpengine.log"
    with Rtpengine(free_port_range(200), log_path=log) as daemon:
        yield daemon


@pytest.fixture
def media(request: pytest.FixtureRequest) -> dict[str, object]:
    """``[media]`` for ``request.param``: "relay" (the default config) or "rtpengine"."""
    backend = getattr(request, "param", "relay")
    if backend == "relay":
        return {"backend": "relay"}
    daemon = request.getfixturevalue("rtpengine_daemon")
    _remember(request, "rtpengine", daemon)
    return {"backend": "rtpengine", "rtpengine": [daemon.address]}
