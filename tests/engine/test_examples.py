"""The sample files: examples/config.toml and examples/directory.toml are valid and show every
key the loaders know, so they cannot go stale when a key is added."""

from __future__ import annotations

import re
import tomllib
import wave
from pathlib import Path

from engine.config import KNOWN_KEYS as CONFIG_KEYS
from engine.config import load_config
from engine.directory import KNOWN_KEYS as DIRECTORY_KEYS
from engine.directory import ExtensionType, load_directory

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CONFIG = EXAMPLES / "config.toml"
DIRECTORY = EXAMPLES / "directory.toml"
# an optional key shown unset: "# key = value" (prose comments do not look like that)
_UNSET = re.compile(r"^# (?P<key>[a-z_]+) = ", re.MULTILINE)


def test_the_sample_config_is_valid_and_points_at_the_sample_directory() -> None:
    config = load_config(CONFIG)
    assert config.directory.file == DIRECTORY
    assert 'file = "directory.toml"' in CONFIG.read_text()  # relative: works from any folder


def test_the_sample_config_shows_every_key() -> None:
    text = CONFIG.read_text()
    data = tomllib.loads(text)
    assert set(data) == set(CONFIG_KEYS), "one table per section"
    for section, keys in CONFIG_KEYS.items():
        body = text.split(f"[{section}]\n", 1)[1].split("\n[", 1)[0]
        shown = set(data[section]) | {m["key"] for m in _UNSET.finditer(body)}
        assert shown == keys, f"[{section}]: missing {keys - shown}, unknown {shown - keys}"


def test_the_sample_configs_unset_keys_are_valid_too(tmp_path: Path) -> None:
    """Uncommenting an optional key as shown must give a working file."""
    (tmp_path / "directory.toml").write_text(DIRECTORY.read_text())
    (tmp_path / "sounds").mkdir()
    with wave.open(str(tmp_path / "sounds" / "hold.wav"), "wb") as music:  # music_on_hold
        music.setnchannels(1)
        music.setsampwidth(2)
        music.setframerate(8000)
        music.writeframes(bytes(16000))
    config = tmp_path / "config.toml"
    config.write_text(_UNSET.sub(lambda m: f"{m['key']} = ", CONFIG.read_text()))
    loaded = load_config(config)
    assert loaded.api.public_url is not None and loaded.cluster.secret is not None
    assert loaded.calls.music_on_hold == tmp_path / "sounds" / "hold.wav"


def test_the_sample_directory_shows_every_key_type_and_owner_kind() -> None:
    directory = load_directory(DIRECTORY)
    data = tomllib.loads(DIRECTORY.read_text())
    assert set(data) == set(DIRECTORY_KEYS)
    for section, keys in DIRECTORY_KEYS.items():
        shown = {key for entry in data[section] for key in entry}
        assert shown == keys, f"[[{section}]]: missing {keys - shown}"
    assert {e.type for e in directory.extensions} == set(ExtensionType)
    assert {app.owner_kind for app in directory.apps} == {"user", "organization", "admin"}
    assert {peer.port is None for peer in directory.peers} == {True, False}
    assert "" in {route.prefix for route in directory.routes}
    assert {route.gateway_transport for route in directory.routes} == {"udp", "tcp"}
