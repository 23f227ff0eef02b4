"""Configuration: the embedded default, a full file, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import load_config
from engine.config_model import ClusterConfig, ConfigError, ListenAddress, default_config
from engine.config_render import render_config

FULL = """
[sip]
listen = ["udp:127.0.0.1:0", "tcp:[::1]:5070"]
domain = "pbx.test"
digest_algorithms = ["md5"]
max_connections = 100
max_connections_per_source = 10
tcp_idle_timeout = 60
trace_messages = 50
trace_memory = 16

[media]
address = "10.1.2.3"
ports = [30000, 30099]

[api]
listen = "0.0.0.0:0"
public_url = "https://uapi.test/"
callback_allow = ["10.0.0.0/8", "hooks.example.com", "*.crm.example.com", "::1"]

[store]
url = "sqlite:///:memory:"

[calls]
wait_for_pickup = 10
max_duration = 120
drain = 2.5
max_in_parking = 45

[directory]
file = "dir/directory.toml"

[cluster]
node = "node-a"
secret = "0123456789abcdef0123"
heartbeat = 1
failover = 5
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "b2bua.toml"
    path.write_text(text)
    return path


def test_default_config_is_the_contracts_embedded_default() -> None:
    config = default_config()
    assert config.sip.listen == (
        ("udp", "127.0.0.1", 5060),
        ("tcp", "127.0.0.1", 5060),
    )
    assert config.sip.domain == "voip.example.com"
    assert (config.api.host, config.api.port, config.api.public_url) == ("127.0.0.1", 8080, None)
    assert config.api.base_url() == "http://127.0.0.1:8080"
    assert config.store.url == "sqlite:///b2bua.sqlite"
    assert config.directory.file is None
    assert (config.media.address, config.media.ports) == ("127.0.0.1", (20000, 29999))
    assert (config.calls.wait_for_pickup, config.calls.max_duration, config.calls.drain) == (
        25,
        3600,
        10,
    )
    assert config.calls.max_in_parking == 180


def test_empty_file_gives_the_default(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "")) == default_config()


def test_full_file(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "directory.toml").write_text("")
    config = load_config(write(tmp_path, FULL))
    assert config.sip.listen == (
        ListenAddress("udp", "127.0.0.1", 0),
        ListenAddress("tcp", "::1", 5070),
    )
    assert str(config.sip.listen[1]) == "tcp:[::1]:5070"
    transport, host, port = config.sip.listen[0]
    assert (transport, host, port) == ("udp", "127.0.0.1", 0)
    assert config.sip.domain == "pbx.test"
    assert (config.media.address, config.media.ports) == ("10.1.2.3", (30000, 30099))
    assert (config.api.host, config.api.port) == ("0.0.0.0", 0)
    assert config.api.base_url(41234) == "https://uapi.test"  # public_url wins, no trailing /
    assert config.store.url == "sqlite:///:memory:"
    assert (config.calls.wait_for_pickup, config.calls.max_duration, config.calls.drain) == (
        10,
        120,
        2.5,
    )
    assert config.calls.max_in_parking == 45
    # relative to the config file, not the current folder
    assert config.directory.file == (tmp_path / "dir" / "directory.toml").resolve()


def test_derived_public_url_uses_the_bound_port(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[api]\nlisten = "127.0.0.1:0"\n'))
    assert config.api.public_url is None
    assert config.api.base_url(40112) == "http://127.0.0.1:40112"
    v6 = load_config(write(tmp_path, '[api]\nlisten = "[::1]:8081"\n'))
    assert v6.api.base_url() == "http://[::1]:8081"
    wildcard = load_config(write(tmp_path, '[api]\nlisten = "0.0.0.0:0"\n'))
    assert wildcard.api.base_url(8090) == "http://127.0.0.1:8090"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[sip]\nlisten = ["udp:127.0.0.1:5060", "foo"]',
            "sip.listen[1]: expected 'udp:HOST:PORT' or 'tcp:HOST:PORT', got 'foo'",
        ),
        ('[sip]\nlisten = ["tls:127.0.0.1:5061"]', "sip.listen[0]: expected 'udp:HOST:PORT'"),
        ('[sip]\nlisten = ["udp:127.0.0.1"]', "sip.listen[0]: expected 'udp:HOST:PORT'"),
        ('[sip]\nlisten = ["udp:127.0.0.1:70000"]', "sip.listen[0]:"),
        ('[sip]\nlisten = ["udp:127.0.0.1:70000"]', "out of range 0-65535"),
        ('[sip]\nlisten = ["udp::1:5060"]', "IPv6 addresses need brackets"),
        ("[sip]\nlisten = []", "sip.listen: needs at least one"),
        ('[sip]\nlisten = "udp:127.0.0.1:5060"', "sip.listen: expected an array"),
        ("[sip]\nlisten = [5060]", "sip.listen[0]: expected a string, got integer 5060"),
        (
            '[sip]\nlisten = ["udp:127.0.0.1:5060", "udp:127.0.0.1:5060"]',
            "sip.listen[1]: 'udp:127.0.0.1:5060' is listed twice",
        ),
        ('[sip]\ndomain = "bad domain"', "sip.domain: bad host 'bad domain'"),
        ("[sip]\nport = 5060", "sip.port: unknown key"),
        ("[sip]\nport = 5060", "sip.port: unknown key (known: digest_algorithms, domain, listen"),
        ("[media]\nports = [20001, 29999]", "media.ports[0]: must be even"),
        (
            "[media]\nports = [30000, 20000]",
            "range [30000, 20000] is empty or inverted",
        ),
        ("[media]\nports = [30000, 30000]", "media.ports: range"),
        ("[media]\nports = [0, 100]", "media.ports[0]: 0 out of range 1-65535"),
        ("[media]\nports = [20000, 70000]", "media.ports[1]: 70000 out of range"),
        ("[media]\nports = [20000]", "media.ports: expected [LOW, HIGH]"),
        ('[media]\nports = ["a", "b"]', "media.ports[0]: expected an integer"),
        ('[media]\naddress = "1.2.3.4:5"', "media.address: expected an address without a port"),
        ('[media]\nbackend = "kernel"', "media.backend: expected 'relay' or 'rtpengine'"),
        ("[media]\nbackend = 1", "media.backend: expected a string"),
        ('[media]\nbackend = "rtpengine"', 'media.rtpengine: backend = "rtpengine" needs'),
        ('[media]\nbackend = "rtpengine"\nrtpengine = []', "media.rtpengine: backend"),
        ('[media]\nrtpengine = "udp:127.0.0.1:2223"', "media.rtpengine: expected an array"),
        ('[media]\nrtpengine = ["127.0.0.1:2223"]', "media.rtpengine[0]: expected 'udp:HOST:PORT'"),
        ('[media]\nrtpengine = ["tcp:127.0.0.1:2223"]', "media.rtpengine[0]: expected 'udp:"),
        ('[media]\nrtpengine = ["udp:127.0.0.1:0"]', "media.rtpengine[0]: port must be 1-65535"),
        ("[media]\nrtpengine = [2223]", "media.rtpengine[0]: expected a string"),
        ('[api]\nlisten = "localhost"', "api.listen: expected 'HOST:PORT', got 'localhost'"),
        ('[api]\nlisten = "127.0.0.1:http"', "api.listen: expected 'HOST:PORT'"),
        ('[api]\npublic_url = "ftp://x"', "api.public_url: expected an http:// or https:// URL"),
        ('[store]\nurl = "mysql://db/x"', "store.url: unsupported store url 'mysql://db/x'"),
        ('[store]\nurl = "sqlite://x.db"', "store.url: unsupported store url 'sqlite://x.db'"),
        (
            '[store]\nurl = "postgresql://u:pw@db:0/x"',
            "store.url: bad store url 'postgresql://u@db:0/x'",
        ),
        ('[store]\nurl = "postgresql://u:pw@db:99999/x"', "store.url: bad store url"),
        (
            '[store]\nurl = "postgresql://u:pw@db:5432"',
            "store.url: bad store url 'postgresql://u@db:5432': no database name",
        ),
        ('[store]\nurl = "postgresql:///x"', "store.url: bad store url 'postgresql:///x': no host"),
        ("[calls]\nwait_for_pickup = 0", "calls.wait_for_pickup: 0 out of range"),
        ("[calls]\nwait_for_pickup = true", "calls.wait_for_pickup: expected an integer"),
        ("[calls]\nmax_duration = 1.5", "calls.max_duration: expected an integer, got number"),
        ("[calls]\nmax_in_parking = 5", "calls.max_in_parking: 5 out of range 10-3600"),
        ("[calls]\nmax_in_parking = 3601", "calls.max_in_parking: 3601 out of range 10-3600"),
        ("[calls]\nmax_in_parking = 60.5", "calls.max_in_parking: expected an integer"),
        ("[calls]\ndrain = -1", "calls.drain: expected a finite number of seconds >= 0"),
        ("[calls]\ndrain = inf", "calls.drain: expected a finite number"),
        ("[calls]\ndrain = nan", "calls.drain: expected a finite number"),
        ('[calls]\ndrain = "10"', "calls.drain: expected a number of seconds, got string"),
        ('[directory]\nfile = "nope.toml"', "directory.file: no such file"),
        ("[directory]\nfile = 3", "directory.file: expected a string"),
        ('[sipp]\nlisten = ["udp:127.0.0.1:5060"]', "sipp: unknown section"),
        ("sip = 3", "sip: expected a [sip] table"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert message in str(info.value)
    assert str(info.value).startswith(f"{info.value.key}: ")


def test_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="invalid TOML") as info:
        load_config(write(tmp_path, "[sip\n"))
    assert info.value.key.endswith("b2bua.toml")
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[sip]\ndomain = "\xe9"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)


def test_media_backend_rtpengine_with_its_addresses(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            '[media]\nbackend = "rtpengine"\n'
            'rtpengine = ["udp:127.0.0.1:2223", "udp:[::1]:2224", "udp:rtp.example.com:22222"]',
        )
    )
    assert config.media.backend == "rtpengine"
    assert config.media.rtpengine == (
        "udp:127.0.0.1:2223",
        "udp:[::1]:2224",
        "udp:rtp.example.com:22222",
    )
    assert load_config(write(tmp_path, "")).media.backend == "relay"


def test_render_config_round_trips(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, render_config(default_config()))) == default_config()
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "directory.toml").write_text("")
    full = load_config(write(tmp_path, FULL))
    other = tmp_path / "elsewhere"
    other.mkdir()
    copy = other / "copy.toml"
    copy.write_text(render_config(full))
    assert load_config(copy) == full


def test_odd_paths_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"directory\.file: bad path"):
        load_config(write(tmp_path, '[directory]\nfile = "a\\u0000b"\n'))


def test_the_security_and_cluster_keys(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "directory.toml").write_text("")
    config = load_config(write(tmp_path, FULL))
    assert config.sip.digest_algorithms == ("MD5",)
    assert (config.sip.max_connections, config.sip.max_connections_per_source) == (100, 10)
    assert config.sip.tcp_idle_timeout == 60
    assert (config.sip.trace_messages, config.sip.trace_memory) == (50, 16)
    assert config.api.callback_allow == (
        "10.0.0.0/8",
        "hooks.example.com",
        "*.crm.example.com",
        "::1",
    )
    assert config.cluster == ClusterConfig("node-a", "0123456789abcdef0123", 1, 5)
    default = default_config()
    assert default.sip.digest_algorithms == ("MD5", "SHA-256")
    assert default.api.callback_allow is None
    assert default.cluster.secret is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[sip]\ndigest_algorithms = ["SHA-1"]', "sip.digest_algorithms[0]: unknown algorithm"),
        ('[sip]\ndigest_algorithms = ["MD5", "md5"]', "sip.digest_algorithms[1]: 'md5' is listed"),
        ("[sip]\ndigest_algorithms = []", "sip.digest_algorithms: expected at least one"),
        ("[sip]\nmax_connections = 0", "sip.max_connections: 0 out of range"),
        (
            "[sip]\nmax_connections = 5\nmax_connections_per_source = 6",
            "sip.max_connections_per_source: 6 is more than sip.max_connections (5)",
        ),
        ("[sip]\ntcp_idle_timeout = 0", "sip.tcp_idle_timeout: expected a finite number"),
        ("[sip]\ntrace_messages = -1", "sip.trace_messages: -1 out of range"),
        ('[sip]\ntrace_messages = "all"', "sip.trace_messages: expected an integer"),
        ("[sip]\ntrace_memory = 0", "sip.trace_memory: 0 out of range"),
        ('[api]\ncallback_allow = ["10.0.0.0/33"]', "api.callback_allow[0]: expected a CIDR"),
        ('[api]\ncallback_allow = "10.0.0.0/8"', "api.callback_allow: expected an array"),
        ('[cluster]\nsecret = "short"', "cluster.secret: too short"),
        ('[cluster]\nnode = "a b"', "cluster.node: expected 1-64"),
        ("[cluster]\nheartbeat = 5\nfailover = 5", "cluster.failover: 5 s must be longer"),
    ],
)
def test_bad_new_keys_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert message in str(info.value)


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    text = """
[sip]
listen = ["foo", "udp:127.0.0.1:5060", "bar"]
colour = "blue"

[media]
ports = [20001, 20000]

[calls]
drain = -1

[nonsense]
"""
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    keys = [key for key, _ in info.value.problems]
    assert keys == [
        "sip.colour",
        "nonsense",
        "sip.listen[0]",
        "sip.listen[2]",
        "media.ports[0]",
        "calls.drain",
    ]
    assert str(info.value).count("\n") == len(keys) - 1


def test_a_postgresql_store_url_is_checked_without_connecting(tmp_path: Path) -> None:
    url = "postgresql://b2bua:secret@db.example.com:5432/b2bua"  # no such host: not contacted
    config = load_config(write(tmp_path, f'[store]\nurl = "{url}"\n'))
    assert config.store.url == url
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, '[store]\nurl = "postgresql://b2bua:secret@db:70000/b2bua"\n'))
    assert "store.url" in str(caught.value) and "secret" not in str(caught.value)


def _wav(path: Path, *, rate: int = 8000, channels: int = 1) -> Path:
    import wave

    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(bytes(2 * channels * 800))
    return path


def test_music_on_hold_is_a_checked_wav_file_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "sounds").mkdir()
    music = _wav(tmp_path / "sounds" / "hold.wav")
    config = load_config(write(tmp_path, '[calls]\nmusic_on_hold = "sounds/hold.wav"'))
    assert config.calls.music_on_hold == music.resolve()
    assert default_config().calls.music_on_hold is None
    rendered = render_config(config)
    assert load_config(write(tmp_path, rendered)) == config
    _wav(tmp_path / "stereo.wav", channels=2)
    _wav(tmp_path / "wide.wav", rate=44100)
    for name, message in [
        ("nope.wav", "calls.music_on_hold: no such file"),
        ("stereo.wav", "calls.music_on_hold: "),
        ("wide.wav", "expected 8000 Hz mono 16-bit PCM, got 44100 Hz"),
    ]:
        with pytest.raises(ConfigError) as info:
            load_config(write(tmp_path, f'[calls]\nmusic_on_hold = "{name}"'))
        assert message in str(info.value)
        assert info.value.key == "calls.music_on_hold"
    (tmp_path / "notes.txt").write_text("not audio")
    with pytest.raises(ConfigError, match="not a readable WAV file"):
        load_config(write(tmp_path, '[calls]\nmusic_on_hold = "notes.txt"'))
