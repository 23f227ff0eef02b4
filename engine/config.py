"""The process configuration: one TOML file (README, "Configuration") or the embedded default.

``load_config(path)`` reads and checks the whole file before anything starts, and a mistake
raises ``ConfigError(key, problem)`` whose text names the key, e.g.
``sip.listen[1]: expected 'udp:HOST:PORT' or 'tcp:HOST:PORT', got 'foo'``. Unknown sections and
keys are errors too (a typo must not silently fall back to a default). Missing keys take the
embedded default (``default_config()``).

This module reads the file and knows its sections and keys. The configuration's types are
``engine.config_model``, the checkers of single values ``engine.config_values``, the checks of
each section's keys ``engine.config_sections``, and the TOML text of a configuration
(``render_config``) ``engine.config_render``.
"""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path
from typing import Any

from engine.config_model import Config, ConfigError, Problems

# documented in README ("Embedding"): ``from engine.config import default_config`` keeps working
from engine.config_model import default_config as default_config
from engine.config_sections import (
    parse_api,
    parse_calls,
    parse_cluster,
    parse_directory,
    parse_media,
    parse_sip,
    parse_store,
)
from engine.config_values import type_name

logger = logging.getLogger(__name__)


_SECTIONS: dict[str, frozenset[str]] = {
    "sip": frozenset(
        {
            "listen",
            "domain",
            "digest_algorithms",
            "max_connections",
            "max_connections_per_source",
            "tcp_idle_timeout",
            "trace_messages",
            "trace_memory",
        }
    ),
    "media": frozenset({"address", "ports", "backend", "rtpengine"}),
    "api": frozenset({"listen", "public_url", "callback_allow"}),
    "store": frozenset({"url"}),
    "calls": frozenset(
        {"wait_for_pickup", "max_duration", "drain", "max_in_parking", "music_on_hold"}
    ),
    "directory": frozenset({"file"}),
    "cluster": frozenset({"node", "secret", "heartbeat", "failover"}),
}

KNOWN_KEYS = _SECTIONS  # every section and key a config file may have (examples/config.toml)


def config_from_dict(data: dict[str, Any], base: Path) -> Config:
    """Check and build a Config from parsed TOML; relative paths are taken from ``base``.

    Every problem of the file is found before it raises: the ``ConfigError`` lists them all.
    """
    problems = Problems()
    sections: dict[str, dict[str, Any]] = {}
    for section, value in data.items():
        if section not in _SECTIONS:
            known = ", ".join(f"[{name}]" for name in _SECTIONS)
            problems.found.append((section, f"unknown section (known: {known})"))
            continue
        if not isinstance(value, dict):
            problems.found.append(
                (section, f"expected a [{section}] table, got {type_name(value)}")
            )
            continue
        for key in value:
            if key not in _SECTIONS[section]:
                known = ", ".join(sorted(_SECTIONS[section]))
                problems.found.append((f"{section}.{key}", f"unknown key (known: {known})"))
        sections[section] = {k: v for k, v in value.items() if k in _SECTIONS[section]}
    config = Config(
        sip=parse_sip(sections.get("sip", {}), problems),
        media=parse_media(sections.get("media", {}), problems),
        api=parse_api(sections.get("api", {}), problems),
        store=parse_store(sections.get("store", {}), problems),
        calls=parse_calls(sections.get("calls", {}), base, problems),
        directory=parse_directory(sections.get("directory", {}), base, problems),
        cluster=parse_cluster(sections.get("cluster", {}), problems),
    )
    try:
        problems.raise_any()
    except ConfigError as exc:
        exc.config = config
        raise
    return config


def load_config(path: str | Path) -> Config:
    """Read and check a config file. Raises ``ConfigError`` (the file itself as the key for
    unreadable files and TOML syntax errors)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), f"not UTF-8 text: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"invalid TOML: {exc}") from None
    config = config_from_dict(data, path.resolve().parent)
    logger.debug("loaded config from %s", path)
    return config
