"""The directory: organizations, users, extensions, Apps, routes and trusted peers.

The package's front door: ``from engine.directory import Directory, load_directory``.  Loaded
once from a TOML file (in the format of ``DEMO_DIRECTORY_TOML``, the embedded demo directory;
``examples/directory.toml`` explains every key) or built from that text, and read-only
afterwards. ``load_directory`` checks every entry before anything starts and raises
``DirectoryError`` listing every problem of the file, each naming the entry and key, e.g.
``extensions[2].user: unknown user 99``.

- :mod:`engine.directory.model`: ``Directory`` and its entries, ``DirectoryError``;
- :mod:`engine.directory.loader`: checking and building one from TOML (``KNOWN_KEYS``);
- :mod:`engine.directory.demo`: the built-in demo directory.
"""

from __future__ import annotations

from engine.directory.demo import DEMO_DIRECTORY_TOML, demo_directory
from engine.directory.loader import (
    KNOWN_KEYS,
    directory_from_dict,
    load_directory,
    parse_directory,
)
from engine.directory.model import (
    App,
    Directory,
    DirectoryError,
    Extension,
    ExtensionType,
    Organization,
    Route,
    TrustedPeer,
    User,
)

__all__ = [
    "DEMO_DIRECTORY_TOML",
    "KNOWN_KEYS",
    "App",
    "Directory",
    "DirectoryError",
    "Extension",
    "ExtensionType",
    "Organization",
    "Route",
    "TrustedPeer",
    "User",
    "demo_directory",
    "directory_from_dict",
    "load_directory",
    "parse_directory",
]
