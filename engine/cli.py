"""The ``b2bua`` command: ``serve`` and ``demo``.

Exit codes: 0 success; 1 the demo call did not behave as the sandbox numbers promise;
2 bad usage or a bad config/directory file (the message names the key and the problem).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import trio

from engine.config import Config, ConfigError, default_config, load_config
from engine.directory import DirectoryError

logger = logging.getLogger(__name__)

DESCRIPTION = (
    "trio-b2bua: a SIP back-to-back user agent with a VoipNow UnifiedAPI click-to-call facade."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="b2bua", description=DESCRIPTION)
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    serve = commands.add_parser(
        "serve",
        help="run SIP, the RTP relay and the HTTP API in one process",
        description=(
            "Run SIP signalling, the RTP relay and the UAPI HTTP API in one trio run. Without "
            "--config: SIP on 127.0.0.1:5060 UDP+TCP, API on http://127.0.0.1:8080, SQLite store "
            "b2bua.sqlite in the current folder, and the built-in demo directory. A listener "
            "with port 0 prints its real address ('listening sip udp 127.0.0.1:PORT'). "
            "SIGINT/SIGTERM drain: new calls get 503, live calls are hung up, then exit 0. "
            "If the relay process dies the server drains the same way and exits 1."
        ),
    )
    serve.add_argument("--config", metavar="FILE", type=Path, help="TOML configuration file")

    demo = commands.add_parser(
        "demo",
        help="start a server on free ports and place a sandbox-to-sandbox call",
        description=(
            "The main job in one command: start the server on the embedded default (free ports, "
            "a temporary store), get an OAuth token, place a Simple PhoneCall between two sandbox "
            "numbers, show each party's progress live and print the final record. Exit 0 when "
            "the call behaved as the sandbox numbers promise."
        ),
    )
    demo.add_argument("--source", default="0003*00", help="source number (default 0003*00)")
    demo.add_argument(
        "--destination", default="0003*01", help="destination number (default 0003*01)"
    )
    demo.add_argument("--duration", type=int, default=5, help="callDuration in seconds (default 5)")

    check = commands.add_parser(
        "check-config",
        help="validate a configuration file (and its directory) and exit",
        description="Load FILE and its directory file; print problems naming the key; exit 2 "
        "on any problem, 0 when the files are valid.",
    )
    check.add_argument("config", metavar="FILE", type=Path)
    return parser


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _load(path: Path | None) -> Config:
    if path is None:
        return default_config()
    return load_config(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    try:
        if args.command == "serve":
            config = _load(args.config)
            from engine.media.fdlimit import raise_fd_limit
            from engine.server import ServerFailed, load_directory_for, serve

            load_directory_for(config)  # fail early, with exit 2, on a bad directory
            # SIP over TCP and HTTP connections take descriptors too (the relay raises its own)
            raise_fd_limit()

            def announce(line: str) -> None:
                print(line, flush=True)

            try:
                trio.run(lambda: serve(config, announce=announce))
            except ServerFailed as exc:  # e.g. the relay process died: drained, then exit 1
                print(f"b2bua: {exc}", file=sys.stderr)
                return 1
            return 0
        if args.command == "check-config":
            from engine.server import load_directory_for

            load_directory_for(load_config(args.config))
            print(f"{args.config}: ok")
            return 0
        if args.command == "demo":
            from engine.demo import run_demo
            from engine.server import ServerFailed

            try:
                return trio.run(run_demo, args.source, args.destination, args.duration)
            except (ServerFailed, BaseExceptionGroup) as exc:
                # the demo runs serve() in a nursery: its failure arrives in a group
                failed = exc if isinstance(exc, ServerFailed) else exc.subgroup(ServerFailed)
                if failed is None:
                    raise
                print(f"b2bua: {_first(failed)}", file=sys.stderr)
                return 1
    except (ConfigError, DirectoryError) as exc:
        print(f"b2bua: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"b2bua: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    parser.error(f"unknown command {args.command!r}")
    return 2


def _first(error: BaseException) -> BaseException:
    """The first leaf of an exception group (the error itself if it is not a group)."""
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error
